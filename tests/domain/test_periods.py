"""Intervals, recurrences, periods and expirations: calendar arithmetic."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import given, settings
from hypothesis import strategies as st

from allotment.domain.periods import Expiration, ExpirationDuration, Interval, Period, Recurrence
from allotment.domain.time import ceil_to_minute, truncate_to_minute, utc
from allotment.errors import InvalidInput

# -- time helpers -------------------------------------------------------------------------------


def test_minute_truncation_floors_and_reads_round_up() -> None:
    t = utc(2024, 5, 1, 10, 0, 30)
    assert truncate_to_minute(t) == utc(2024, 5, 1, 10, 0)
    assert ceil_to_minute(t) == utc(2024, 5, 1, 10, 1)
    assert ceil_to_minute(utc(2024, 5, 1, 10, 0)) == utc(2024, 5, 1, 10, 0)
    assert ceil_to_minute(utc(2024, 5, 1, 10, 0) + timedelta(microseconds=1)) == utc(
        2024, 5, 1, 10, 1
    )


def test_times_in_other_zones_become_utc_and_naive_times_are_refused() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert truncate_to_minute(datetime(2024, 5, 1, 12, 0, 59, tzinfo=plus_two)) == utc(
        2024, 5, 1, 10, 0
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        truncate_to_minute(datetime(2024, 5, 1))


# -- intervals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "iso", "api_name"),
    [
        ("DAY", "P1D", "DAY"),
        ("week", "P1W", "WEEK"),
        ("Month", "P1M", "MONTH"),
        ("YEAR", "P1Y", "YEAR"),
        ("P1M", "P1M", "MONTH"),
        ("P12M", "P1Y", "YEAR"),
        ("P7D", "P1W", "WEEK"),
        ("P2W", "P2W", "P2W"),
        ("PT6H", "PT6H", "PT6H"),
        ("PT90M", "PT1H30M", "PT1H30M"),
        ("P1DT12H", "P1DT12H", "P1DT12H"),
        ("PT24H", "PT24H", "PT24H"),
        ("P1.5Y", "P1Y6M", "P1Y6M"),
        ("PT1.5H", "PT1H30M", "PT1H30M"),
        ("P0.5D", "PT12H", "PT12H"),
        ("p3m", "P3M", "P3M"),
        ("PT3600S", "PT1H", "PT1H"),
    ],
)
def test_interval_parses_enum_and_iso_forms(text: str, iso: str, api_name: str) -> None:
    interval = Interval.parse(text)
    assert interval.iso == iso
    assert interval.api_name == api_name
    assert Interval.parse(interval.iso) == interval


@pytest.mark.parametrize(
    "text",
    [
        "",
        "HOUR",
        "P",
        "PT",
        "P1DT",
        "P0D",
        "PT0S",
        "-P1D",
        "P0.5M",
        "PT30S",
        "PT1.5M1S",
        "1 month",
        "P1H",
    ],
)
def test_interval_rejects_garbage_with_the_field_name(text: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        Interval.parse(text, field="usagePeriod.interval")
    assert raised.value.field == "usagePeriod.interval"


@pytest.mark.parametrize(
    ("text", "long_enough"),
    [("PT59M", False), ("PT1H", True), ("P1D", True), ("P1M", True), ("PT30M", False)],
)
def test_a_usage_period_must_last_at_least_an_hour(text: str, long_enough: bool) -> None:
    assert Interval.parse(text).is_at_least_one_hour() is long_enough


def test_adding_months_clamps_to_the_month_end_and_returns_to_the_31st() -> None:
    month = Interval.parse("P1M")
    jan_31 = utc(2025, 1, 31, 15)
    assert [month.add(jan_31, n).date().isoformat() for n in range(0, 6)] == [
        "2025-01-31",
        "2025-02-28",
        "2025-03-31",
        "2025-04-30",
        "2025-05-31",
        "2025-06-30",
    ]
    assert month.add(utc(2024, 1, 31), 1) == utc(2024, 2, 29)
    assert month.add(jan_31, -2) == utc(2024, 11, 30, 15)
    # Months first, then days: Jan 31 + P1M1D = Feb 28 + 1 day.
    assert Interval.parse("P1M1D").add(jan_31) == utc(2025, 3, 1, 15)


# -- recurrences --------------------------------------------------------------------------------


def test_month_end_anchor_periods() -> None:
    monthly = Recurrence(Interval.parse("MONTH"), utc(2025, 1, 31, 15))
    assert monthly.period_containing(utc(2025, 8, 13)) == Period(
        utc(2025, 7, 31, 15), utc(2025, 8, 31, 15)
    )
    assert monthly.period_containing(utc(2025, 9, 30, 15)) == Period(
        utc(2025, 9, 30, 15), utc(2025, 10, 31, 15)
    )
    assert monthly.period_containing(utc(2025, 2, 10)) == Period(
        utc(2025, 1, 31, 15), utc(2025, 2, 28, 15)
    )
    thirtieth = Recurrence(Interval.parse("MONTH"), utc(2025, 1, 30))
    assert thirtieth.period_containing(utc(2025, 2, 1)) == Period(
        utc(2025, 1, 30), utc(2025, 2, 28)
    )


def test_periods_exist_before_the_anchor() -> None:
    daily = Recurrence(Interval.parse("DAY"), utc(2024, 6, 10, 6))
    assert daily.period_containing(utc(2024, 6, 1, 3)) == Period(
        utc(2024, 5, 31, 6), utc(2024, 6, 1, 6)
    )
    assert daily.period_containing(utc(2024, 6, 1, 6)) == Period(
        utc(2024, 6, 1, 6), utc(2024, 6, 2, 6)
    )


def test_anchor_is_floored_to_the_minute() -> None:
    assert Recurrence(Interval.parse("DAY"), utc(2024, 6, 1, 6, 0, 45)).anchor == utc(2024, 6, 1, 6)


def test_boundaries_between_is_open_on_the_left_and_closed_on_the_right() -> None:
    six_hourly = Recurrence(Interval.parse("PT6H"), utc(2024, 1, 1))
    assert six_hourly.boundaries_between(utc(2024, 1, 1), utc(2024, 1, 2)) == [
        utc(2024, 1, 1, 6),
        utc(2024, 1, 1, 12),
        utc(2024, 1, 1, 18),
        utc(2024, 1, 2),
    ]
    assert six_hourly.boundaries_between(utc(2024, 1, 2), utc(2024, 1, 2)) == []


def test_lookups_far_from_the_anchor_are_fast() -> None:
    hourly = Recurrence(Interval.parse("PT1H"), utc(2000, 1, 1))
    monthly = Recurrence(Interval.parse("P1M"), utc(1970, 1, 31))
    started = time.perf_counter()
    for year in range(2000, 2400, 4):
        assert hourly.period_containing(utc(year, 3, 1, 5, 30)).start == utc(year, 3, 1, 5)
        period = monthly.period_containing(utc(year, 3, 1))
        assert period.start.day in (28, 29) and period.start.month == 2
    assert time.perf_counter() - started < 1.0


@settings(max_examples=150, deadline=None)
@given(
    anchor=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2060, 1, 1)).map(
        lambda d: truncate_to_minute(d.replace(tzinfo=UTC))
    ),
    months=st.integers(min_value=0, max_value=14),
    days=st.integers(min_value=0, max_value=9),
    minutes=st.sampled_from([0, 1, 45, 60, 361, 1440]),
    steps=st.integers(min_value=-400, max_value=400),
    extra_permille=st.integers(min_value=0, max_value=2999),
)
def test_period_containing_agrees_with_a_naive_walk(
    anchor: datetime, months: int, days: int, minutes: int, steps: int, extra_permille: int
) -> None:
    if months == days == minutes == 0:
        minutes = 60
    interval = Interval(months=months, days=days, seconds=60 * minutes)
    recurrence = Recurrence(interval, anchor)

    # Naive: boundary k written out with relativedelta; walk k until it brackets t.
    def naive(k: int) -> datetime:
        return (
            anchor
            + relativedelta(months=months * k)
            + timedelta(days=days * k, minutes=minutes * k)
        )

    # Up to three interval lengths past boundary `steps`, so the walk stays short.
    extra = timedelta(seconds=interval.approximate_seconds() * extra_permille / 1000)
    t = naive(steps) + extra
    period = recurrence.period_containing(t)
    assert period.start <= t < period.end
    k = steps
    while naive(k) > t:
        k -= 1
    while naive(k + 1) <= t:
        k += 1
    assert period == Period(naive(k), naive(k + 1))


# -- expiration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "count", "effective", "expected"),
    [
        ("HOUR", 5, utc(2025, 1, 31, 22), utc(2025, 2, 1, 3)),
        ("DAY", 2, utc(2025, 1, 31), utc(2025, 2, 2)),
        ("WEEK", 1, utc(2025, 1, 31), utc(2025, 2, 7)),
        ("MONTH", 1, utc(2025, 1, 31), utc(2025, 2, 28)),  # OpenMeter: 2025-03-03
        ("MONTH", 1, utc(2024, 1, 31), utc(2024, 2, 29)),  # OpenMeter: 2024-03-02
        ("MONTH", 2, utc(2025, 1, 31), utc(2025, 3, 31)),
        ("YEAR", 1, utc(2024, 2, 29), utc(2025, 2, 28)),
        ("year", 4, utc(2024, 2, 29), utc(2028, 2, 29)),
    ],
)
def test_expiration_clamps_month_ends(
    duration: str, count: int, effective: datetime, expected: datetime
) -> None:
    assert Expiration.parse(duration, count).expires_at(effective) == expected


@pytest.mark.parametrize(
    ("duration", "count", "field"),
    [
        ("FORTNIGHT", 1, "expiration.duration"),
        ("DAY", 0, "expiration.count"),
        ("DAY", 1001, "expiration.count"),
    ],
)
def test_expiration_rejects_bad_input(duration: str, count: int, field: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        Expiration.parse(duration, count)
    assert raised.value.field == field


def test_expiration_accepts_the_limits() -> None:
    assert Expiration(ExpirationDuration.HOUR, 1000).expires_at(utc(2024, 1, 1)) == utc(
        2024, 2, 11, 16
    )
