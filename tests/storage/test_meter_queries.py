"""Meter queries in SQL on SQLite and PostgreSQL, checked against the domain rules."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from allotment.domain.group_filters import parse_filter
from allotment.domain.meters import (
    Aggregation,
    Meter,
    MeterBucket,
    MeterQuery,
    WindowSize,
    check_query,
    parse_number,
    resolve_time_zone,
    window_start,
)
from allotment.domain.time import utc
from allotment.storage import Database
from tests.factories import event, meter, store_events

T = utc(2024, 1, 15, 10)

# Seven events of one subject: four countable values, and three that no SUM can count.
MIXED_VALUES: list[Any] = [0.1, 0.2, "0.3", 5, "abc", None, {"nested": 1}]


def aggregate(database: Database, definition: Meter, **query_fields: Any) -> list[MeterBucket]:
    query = MeterQuery(**query_fields)
    grouping, errors = check_query(definition, query)
    assert errors.errors == []
    with database.unit_of_work() as uow:
        return uow.meters.aggregate(definition, query, grouping)


def total(database: Database, definition: Meter, **query_fields: Any) -> Decimal | None:
    buckets = aggregate(database, definition, **query_fields)
    assert len(buckets) <= 1
    return buckets[0].value if buckets else None


@pytest.fixture
def mixed(database: Database) -> Database:
    batch = [
        event(f"e{i}", T + timedelta(minutes=i), {"tokens": value})
        for i, value in enumerate(MIXED_VALUES)
    ]
    batch.append(event("no-data", T + timedelta(minutes=9)))
    store_events(database, batch)
    return database


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        # 0.1 + 0.2 + 0.3 + 5, exactly: never 5.6000000000000005.
        (Aggregation.SUM, Decimal("5.6")),
        (Aggregation.COUNT, Decimal(8)),
        (Aggregation.AVG, Decimal("1.4")),
        (Aggregation.MIN, Decimal("0.1")),
        (Aggregation.MAX, Decimal(5)),
        # The latest countable event is e3 (5); e4..e6 and no-data are later but not numbers.
        (Aggregation.LATEST, Decimal(5)),
        # 0.1, 0.2, 0.3, 5 and "abc" are five distinct values; null and an object are not counted.
        (Aggregation.UNIQUE_COUNT, Decimal(5)),
    ],
)
def test_each_aggregation_counts_only_valid_values(
    mixed: Database, aggregation: Aggregation, expected: Decimal
) -> None:
    assert total(mixed, meter(aggregation)) == expected


def test_an_aggregate_over_the_whole_range_spans_the_events(mixed: Database) -> None:
    (bucket,) = aggregate(mixed, meter(Aggregation.SUM))
    # Only the countable events: e0 at 10:00 to e3 at 10:03.
    assert (bucket.earliest, bucket.latest) == (T, T + timedelta(minutes=3))


def test_sums_stay_exact_over_many_small_amounts(database: Database) -> None:
    store_events(database, [event(f"e{i}", T, {"tokens": "0.000001"}) for i in range(1000)])
    store_events(database, [event("big", T, {"tokens": "12345678901234567890.123456789"})])
    assert total(database, meter()) == Decimal("12345678901234567890.124456789")


def test_unique_count_compares_numbers_by_value(database: Database) -> None:
    values = [1, 1.0, "1", "1.00", "1e0", 2, "two", True, "true"]
    store_events(database, [event(f"e{i}", T, {"user": v}) for i, v in enumerate(values)])
    unique = meter(Aggregation.UNIQUE_COUNT, value_property="$.user")
    # {1, 2, "two", true}: "true" the string and true the boolean read alike.
    assert total(database, unique) == Decimal(4)


def test_latest_is_the_greatest_event_time_not_the_last_ingested(database: Database) -> None:
    store_events(database, [event("late", T + timedelta(hours=1), {"tokens": 7})])
    store_events(database, [event("early", T, {"tokens": 9})])
    store_events(database, [event("tie", T + timedelta(hours=1), {"tokens": 8})])
    # "late" and "tie" share the greatest time; the one ingested later wins.
    assert total(database, meter(Aggregation.LATEST)) == Decimal(8)


def test_json_paths_read_members_and_indexes_strictly(database: Database) -> None:
    store_events(
        database,
        [
            event("a", T, {"usage": {"input tokens": 3, "items": [{"n": 10}, {"n": 20}]}}),
            event("b", T, {"usage": {"input tokens": 4, "items": {"0": {"n": 99}}}}),
        ],
    )
    assert total(database, meter(value_property="$.usage['input tokens']")) == Decimal(7)
    # An index reads array elements only: b's object with a key "0" does not match.
    assert total(database, meter(value_property="$.usage.items[1].n")) == Decimal(20)
    assert total(database, meter(value_property="$.usage.items[0].n")) == Decimal(10)
    assert total(database, meter(value_property="$.usage.items['0'].n")) == Decimal(99)


def test_group_by_values_and_filters(database: Database) -> None:
    store_events(
        database,
        [
            event("1", T, {"tokens": 10, "model": "gpt-4", "tier": 1}, subject="acme"),
            event("2", T, {"tokens": 20, "model": "gpt-4", "tier": 2}, subject="beta"),
            event("3", T, {"tokens": 30, "model": "claude", "tier": True}, subject="acme"),
            event("4", T, {"tokens": 40, "tier": None}, subject="acme"),
        ],
    )
    definition = meter(group_by={"model": "$.model", "tier": "$.tier"})
    rows = aggregate(database, definition, group_by=("model",))
    assert sorted((b.group_values, b.value) for b in rows if b.group_values[0]) == [
        (("claude",), Decimal(30)),
        (("gpt-4",), Decimal(30)),
    ]
    assert [b.value for b in rows if b.group_values == (None,)] == [Decimal(40)]
    tiers = aggregate(database, definition, group_by=("tier",))
    assert {b.group_values[0]: b.value for b in tiers} == {
        "1": Decimal(10),
        "2": Decimal(20),
        "true": Decimal(30),
        None: Decimal(40),
    }
    by_subject = aggregate(database, definition, subjects=("acme",), group_by=("model",))
    assert sorted(
        (b.subject, b.group_values, b.value) for b in by_subject if b.group_values[0]
    ) == [
        ("acme", ("claude",), Decimal(30)),
        ("acme", ("gpt-4",), Decimal(10)),
    ]
    filtered = aggregate(database, definition, filter_group_by={"model": ("gpt-4", "none")})
    assert [b.value for b in filtered] == [Decimal(30)]


def test_event_from_and_the_query_range(database: Database) -> None:
    store_events(database, [event(f"e{h}", utc(2024, 1, 15, h), {"tokens": h}) for h in range(10)])
    # from inclusive, to exclusive: hours 2, 3, 4.
    assert total(database, meter(), from_time=utc(2024, 1, 15, 2), to_time=utc(2024, 1, 15, 5)) == 9
    # Events before event_from never count, whatever the query asks.
    late_meter = meter(event_from=utc(2024, 1, 15, 8))
    assert total(database, late_meter) == Decimal(17)
    assert total(database, late_meter, from_time=utc(2024, 1, 15)) == Decimal(17)


ZONES = [
    "UTC",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "America/Havana",
    "America/Santiago",
]
# Instants around DST changes (LA, Havana, Santiago, Lord Howe) and month and year ends.
INSTANTS = [
    utc(2024, 3, 10, 9, 59, 59),
    utc(2024, 3, 10, 10),
    utc(2024, 11, 3, 8, 30),
    utc(2024, 11, 3, 9, 30),
    utc(2023, 11, 5, 4, 30),
    utc(2023, 11, 5, 5, 30),
    utc(2024, 9, 8, 3, 59),
    utc(2024, 9, 8, 4),
    utc(2024, 4, 6, 15, 10),
    # Santiago falls back across midnight: 23:00-24:00 of April 6 happens twice.
    utc(2024, 4, 7, 2, 30),
    utc(2024, 4, 7, 3, 30),
    utc(2024, 4, 7, 4, 30),
    utc(2024, 2, 29, 23, 59, 59),
    utc(2024, 12, 31, 23, 30),
    utc(1969, 12, 31, 23, 59, 30),
]


@pytest.mark.parametrize("size", list(WindowSize))
def test_database_windows_agree_with_the_domain(database: Database, size: WindowSize) -> None:
    store_events(
        database,
        [event(f"e{i}", t, {"tokens": 1}, subject=f"s{i}") for i, t in enumerate(INSTANTS)],
    )
    for zone in ZONES:
        buckets = aggregate(
            database, meter(), window_size=size, time_zone=zone, group_by=("subject",)
        )
        found = {b.subject: b.window_start for b in buckets}
        expected = {
            f"s{i}": window_start(t, size, resolve_time_zone(zone)) for i, t in enumerate(INSTANTS)
        }
        assert found == expected, zone


def test_numeric_strings_match_the_domain_rule(database: Database) -> None:
    candidates = [
        "12",
        "-1.5",
        "+3",
        ".5",
        "5.",
        "1e3",
        "1E-2",
        " 7",
        "7 ",
        "1,000",
        "0x1",
        "1e1000",
    ]
    store_events(
        database, [event(c, T, {"tokens": c}, subject=f"s{i}") for i, c in enumerate(candidates)]
    )
    buckets = aggregate(database, meter(), group_by=("subject",))
    counted = {b.subject: b.value for b in buckets}
    expected = {
        f"s{i}": parse_number(c) for i, c in enumerate(candidates) if parse_number(c) is not None
    }
    assert counted == expected
    assert sorted(expected) == ["s0", "s1", "s2", "s3", "s4", "s5", "s6"]


def test_subjects_and_group_values_lists(database: Database) -> None:
    store_events(
        database,
        [
            event("1", T, {"tokens": 1, "model": "b"}, subject="zed"),
            event("2", T, {"tokens": 1, "model": "a"}, subject="amy"),
            event("3", T, {"tokens": "x", "model": "c"}, subject="bob"),
            event("4", T, {"tokens": 1}, subject="amy"),
            event("5", T, {"tokens": 1, "model": "z"}, subject="old", type="other"),
        ],
    )
    definition = meter(group_by={"model": "$.model"})
    with database.unit_of_work() as uow:
        # Only events the meter counts: bob's value is not a number.
        assert uow.meters.subjects(definition, None, None) == ["amy", "zed"]
        assert uow.meters.subjects(definition, T + timedelta(seconds=1), None) == []
        assert uow.meters.group_values(definition, "model", None, None) == ["a", "b"]


MODELS: list[Any] = ["gpt-4", "gpt-4o", "GPT-4o", "claude", "100%", "1000", "b", "B", "", None]
FILTERS: list[dict[str, Any]] = [
    {"$eq": "gpt-4"},
    {"$ne": "gpt-4"},
    {"$in": ["b", "claude"]},
    {"$nin": ["b", "claude"]},
    {"$like": "gpt%"},
    {"$ilike": "gpt%"},
    {"$nlike": "gpt_4%"},
    {"$nilike": "GPT%"},
    {"$like": "100\\%"},
    {"$like": "%0_"},
    {"$gt": "b"},
    {"$gte": "B"},
    {"$lt": "b"},
    {"$lte": "1000"},
    {"$and": [{"$like": "gpt%"}, {"$ne": "gpt-4"}]},
    {"$or": [{"$eq": "b"}, {"$ilike": "claude"}]},
]


@pytest.mark.parametrize("raw", FILTERS, ids=[str(f) for f in FILTERS])
def test_database_filters_agree_with_the_domain(database: Database, raw: dict[str, Any]) -> None:
    store_events(
        database,
        [
            event(f"e{i}", T, {"tokens": 1, "model": model}, subject=f"s{i}")
            for i, model in enumerate(MODELS)
        ],
    )
    store_events(database, [event("missing", T, {"tokens": 1}, subject="missing")])
    condition = parse_filter(raw, "filter")
    definition = meter(group_by={"model": "$.model"})
    buckets = aggregate(
        database, definition, advanced_filters={"model": condition}, group_by=("subject",)
    )
    expected = {f"s{i}" for i, model in enumerate(MODELS) if condition.matches(model)}
    if condition.matches(None):
        expected.add("missing")
    assert {b.subject for b in buckets} == expected
