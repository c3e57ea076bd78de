"""The meter rules on their own: paths, values, unique keys, windows, definitions, queries."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from allotment.domain.events import Event, validation_error
from allotment.domain.meters import (
    MISSING,
    Aggregation,
    JsonPath,
    Meter,
    MeterDefinition,
    MeterQuery,
    WindowSize,
    check_definition,
    check_query,
    parse_number,
    resolve_time_zone,
    unique_value_key,
    window_end,
    window_start,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def meter(aggregation: Aggregation = Aggregation.SUM, **overrides: object) -> Meter:
    fields: dict[str, object] = {
        "id": "01HZZZZZZZZZZZZZZZZZZZZZZZ",
        "slug": "tokens",
        "name": "tokens",
        "aggregation": aggregation,
        "event_type": "prompt",
        "created_at": T0,
        "updated_at": T0,
        "value_property": None if aggregation is Aggregation.COUNT else "$.tokens",
        "group_by": {"model": "$.model"},
    }
    fields.update(overrides)
    return Meter(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("$.tokens", ("tokens",)),
        ("$.usage.input", ("usage", "input")),
        ("$['a b']", ("a b",)),
        ('$["model"]', ("model",)),
        ("$.items[0]", ("items", 0)),
        ("$.items[12].price", ("items", 12, "price")),
        ("$['it''s']".replace("''", "\\'"), ("it's",)),
        ("$.größe", ("größe",)),
        ("$.x-y", ("x-y",)),
    ],
)
def test_supported_json_paths(text: str, segments: tuple[object, ...]) -> None:
    assert JsonPath.parse(text).segments == segments


@pytest.mark.parametrize(
    "text",
    ["tokens", "$", "$.", "$..tokens", "$.items[*]", "$.items[-1]", "$[?(@.a)]", "$['a", "$.a b"],
)
def test_unsupported_json_paths_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match=r"JSONPath|member name"):
        JsonPath.parse(text)


def test_path_extraction_is_strict_about_members_and_indexes() -> None:
    data = {"a": [{"b": 1}], "n": {"0": "zero"}}
    assert JsonPath.parse("$.a[0].b").extract(data) == 1
    assert JsonPath.parse("$.a[1]").extract(data) is MISSING
    # A name never reads an array element, an index never reads an object member.
    assert JsonPath.parse("$.a.0").extract(data) is MISSING
    assert JsonPath.parse("$.n[0]").extract(data) is MISSING
    assert JsonPath.parse("$.n['0']").extract(data) == "zero"


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (5, Decimal(5)),
        (0.1, Decimal("0.1")),
        ("12.50", Decimal("12.50")),
        ("-3", Decimal(-3)),
        ("1e3", Decimal(1000)),
        (".5", Decimal("0.5")),
        ("5.", Decimal(5)),
        (10**30, Decimal(10**30)),
    ],
)
def test_numbers_and_numeric_strings_count(value: object, number: Decimal) -> None:
    assert parse_number(value) == number


@pytest.mark.parametrize(
    "value",
    [None, True, "abc", "", " 5", "5 ", "0x10", "NaN", "Infinity", "1e1000", float("nan"), [1], {}],
)
def test_other_values_do_not_count(value: object) -> None:
    assert parse_number(value) is None


def test_unique_keys_compare_numbers_by_value() -> None:
    assert unique_value_key(1) == unique_value_key(1.0) == unique_value_key("1") == "1"
    assert unique_value_key("1.50") == unique_value_key(1.5) == "1.5"
    assert unique_value_key("1e2") == "100"
    assert unique_value_key("-0.0") == "0"
    assert unique_value_key("user-7") == "user-7"
    assert unique_value_key(True) == "true"
    assert unique_value_key(None) is None
    assert unique_value_key({"a": 1}) is None


def test_value_problems_explain_why_an_event_is_not_counted() -> None:
    sum_meter = meter()
    assert sum_meter.value_problem({"tokens": 5}) is None
    assert sum_meter.value_problem({"tokens": "5"}) is None
    assert sum_meter.value_problem(None) == (
        "the event has no data, so value property '$.tokens' is missing"
    )
    assert sum_meter.value_problem({}) == "missing value property '$.tokens'"
    assert sum_meter.value_problem({"tokens": None}) == "value property '$.tokens' is null"
    assert sum_meter.value_problem({"tokens": "many"}) == (
        "value property '$.tokens' is the string 'many', not a number"
    )
    assert sum_meter.value_problem({"tokens": True}) == (
        "value property '$.tokens' is a boolean, not a number"
    )
    assert meter(Aggregation.COUNT).value_problem(None) is None
    unique = meter(Aggregation.UNIQUE_COUNT)
    assert unique.value_problem({"tokens": "abc"}) is None
    assert "UNIQUE_COUNT counts strings" in (unique.value_problem({"tokens": [1]}) or "")


def test_validation_error_names_each_meter_of_the_event_type() -> None:
    meters = [meter(), meter(slug="cost", value_property="$.cost"), meter(event_type="other")]
    event = Event(id="1", source="s", type="prompt", subject="acme", data={"tokens": 3})
    assert validation_error(event, meters) == "meter cost: missing value property '$.cost'"
    assert validation_error(Event(id="2", source="s", type="nothing", subject="a"), meters) is None


# Windows -------------------------------------------------------------------------------------

LA = resolve_time_zone("America/Los_Angeles")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_day_windows_follow_local_midnight_across_dst() -> None:
    # 2024-03-10: Los Angeles springs forward (UTC-8 -> UTC-7), the local day lasts 23 hours.
    start = window_start(utc(2024, 3, 10, 20), WindowSize.DAY, LA)
    assert start == utc(2024, 3, 10, 8)
    assert window_end(start, WindowSize.DAY, LA) == utc(2024, 3, 11, 7)
    # 2024-11-03: falls back, the local day lasts 25 hours.
    start = window_start(utc(2024, 11, 3, 12), WindowSize.DAY, LA)
    assert start == utc(2024, 11, 3, 7)
    assert window_end(start, WindowSize.DAY, LA) == utc(2024, 11, 4, 8)


def test_month_windows_are_calendar_months_in_the_zone() -> None:
    start = window_start(utc(2024, 2, 29, 23), WindowSize.MONTH, resolve_time_zone("UTC"))
    assert (start, window_end(start, WindowSize.MONTH, resolve_time_zone("UTC"))) == (
        utc(2024, 2, 1),
        utc(2024, 3, 1),
    )
    # 2024-03-01 05:00 UTC is still February in Los Angeles.
    start = window_start(utc(2024, 3, 1, 5), WindowSize.MONTH, LA)
    assert (start, window_end(start, WindowSize.MONTH, LA)) == (
        utc(2024, 2, 1, 8),
        utc(2024, 3, 1, 8),
    )
    start = window_start(utc(2024, 12, 31, 12), WindowSize.MONTH, LA)
    assert window_end(start, WindowSize.MONTH, LA) == utc(2025, 1, 1, 8)


def test_hour_windows_align_on_the_local_hour_mark() -> None:
    kolkata = resolve_time_zone("Asia/Kolkata")  # UTC+05:30
    assert window_start(utc(2024, 1, 1, 10, 10), WindowSize.HOUR, kolkata) == utc(2024, 1, 1, 9, 30)
    # The repeated hour of a fall-back is two windows of one hour each.
    first = window_start(utc(2024, 11, 3, 8, 30), WindowSize.HOUR, LA)
    second = window_start(utc(2024, 11, 3, 9, 30), WindowSize.HOUR, LA)
    assert (first, second) == (utc(2024, 11, 3, 8), utc(2024, 11, 3, 9))


def test_skipped_and_repeated_midnights_start_the_day_at_its_first_instant() -> None:
    # Santiago skips 2024-09-08 00:00 (clocks jump to 01:00 at 04:00 UTC).
    santiago = resolve_time_zone("America/Santiago")
    assert window_start(utc(2024, 9, 8, 12), WindowSize.DAY, santiago) == utc(2024, 9, 8, 4)
    # Havana repeats 2023-11-05 00:00 (01:00 CDT back to 00:00 CST): the day starts at the first.
    havana = resolve_time_zone("America/Havana")
    assert window_start(utc(2023, 11, 5, 12), WindowSize.DAY, havana) == utc(2023, 11, 5, 4)


@given(
    instant=st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)
    ),
    size=st.sampled_from(list(WindowSize)),
    zone=st.sampled_from(
        [
            "UTC",
            "America/Los_Angeles",
            "Asia/Kolkata",
            "Australia/Lord_Howe",
            "America/Santiago",
            "America/Havana",
        ]
    ),
)
def test_every_instant_lies_in_its_window(instant: datetime, size: WindowSize, zone: str) -> None:
    tz = resolve_time_zone(zone)
    start = window_start(instant, size, tz)
    end = window_end(start, size, tz)
    assert start <= instant < end


def test_time_zones_must_be_iana_names() -> None:
    assert str(resolve_time_zone("Europe/Berlin")) == "Europe/Berlin"
    for bad in ["", "Mars/Olympus", "UTC+3", "../etc/passwd", "localtime"]:
        with pytest.raises(ValueError, match="unknown time zone"):
            resolve_time_zone(bad)


# Definitions and queries ---------------------------------------------------------------------


def fields_of(errors: object) -> list[str]:
    return [e.field for e in errors.errors]  # type: ignore[attr-defined]


def test_definition_rules_name_their_fields() -> None:
    good = MeterDefinition(
        slug="tokens",
        aggregation=Aggregation.SUM,
        event_type="prompt",
        value_property="$.tokens",
        group_by={"model": "$.model"},
    )
    assert fields_of(check_definition(good)) == []
    count_with_value = MeterDefinition(
        slug="n", aggregation=Aggregation.COUNT, event_type="p", value_property="$.x"
    )
    assert fields_of(check_definition(count_with_value)) == ["valueProperty"]
    sum_without = MeterDefinition(slug="n", aggregation=Aggregation.SUM, event_type="p")
    assert fields_of(check_definition(sum_without)) == ["valueProperty"]
    bad = MeterDefinition(
        slug="Bad Slug",
        aggregation=Aggregation.MAX,
        event_type="p",
        value_property="tokens",
        group_by={"1bad": "$.a", "subject": "$.s", "same": "$.v", "deep": "$..x"},
    )
    bad = MeterDefinition(**{**bad.__dict__, "value_property": "$.v"})
    assert fields_of(check_definition(bad)) == [
        "slug",
        "groupBy.1bad",
        "groupBy.subject",
        "groupBy.same",
        "groupBy.deep",
    ]


def test_query_rules() -> None:
    grouping, errors = check_query(meter(), MeterQuery(group_by=("model", "subject")))
    assert (grouping.by_subject, grouping.keys, errors.errors) == (True, ("model",), [])
    _, errors = check_query(
        meter(),
        MeterQuery(
            from_time=utc(2024, 1, 2),
            to_time=utc(2024, 1, 2),
            time_zone="Nowhere/City",
            group_by=("colour", "customer_id"),
            filter_group_by={"colour": ("red",)},
        ),
    )
    assert fields_of(errors) == [
        "to",
        "windowTimeZone",
        "groupBy",
        "groupBy",
        "filterGroupBy.colour",
    ]
