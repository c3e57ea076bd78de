"""Entitlement values for all types, windowed history, and checkpoint rules."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allotment.domain.access import (
    NO_ACCESS,
    EntitlementValue,
    boolean_value,
    is_active,
    metered_value,
    plan_metered_read,
    static_value,
)
from allotment.domain.burn import UsageMode, UsageWindow, initial_state, run
from allotment.domain.grants import Grant
from allotment.domain.history import (
    HistoryQuery,
    WindowSize,
    build_history,
    history_query,
    plan_history,
)
from allotment.domain.snapshots import (
    Change,
    checkpoint_instant,
    invalid_from,
    latest_saveable_instant,
    may_save,
)
from allotment.domain.usage_periods import ManualReset
from allotment.errors import InvalidInput
from tests.domain.helpers import T0, Events, at, grant, run_from_start, terms

# -- values -------------------------------------------------------------------------------------


def test_activity_window_is_half_open() -> None:
    assert is_active(T0, at(days=1), T0)
    assert not is_active(T0, at(days=1), at(days=1))
    assert not is_active(T0, T0, T0)
    assert is_active(T0, None, at(days=9999))
    assert not is_active(T0, None, T0 - timedelta(seconds=1))


def test_boolean_and_static_values() -> None:
    assert boolean_value(T0, None, at(hours=1)) == EntitlementValue(has_access=True)
    assert boolean_value(T0, at(hours=1), at(hours=1)) == NO_ACCESS
    config = '{"allowed": ["gpt-4o-mini"]}'
    assert static_value(config, T0, None, at(hours=1)) == EntitlementValue(
        has_access=True, config=config
    )
    assert static_value(config, at(hours=2), None, at(hours=1)) == NO_ACCESS
    assert NO_ACCESS.balance is None and NO_ACCESS.config is None


def test_metered_read_uses_exactly_the_planned_windows() -> None:
    t = terms()
    grants = [grant("g", 100)]
    events = Events().add(at(minutes=3), 40)
    when = at(hours=2, minutes=0.5)
    windows = plan_metered_read(t, grants, when)
    value, result = metered_value(t, grants, when, {w: events.sum(w) for w in windows})
    assert (value.balance, value.usage, value.has_access) == (60, 40, True)
    assert [w for w, _ in result.usage_by_window] == windows
    assert windows[-1].end == at(hours=2, minutes=1)  # rounded up


def test_metered_read_before_measurement_starts_shows_the_grants_untouched() -> None:
    later = at(days=10)
    t = terms(anchor=later, measure_from=later)
    grants = [grant("g", 100, effective_at=T0)]
    value, result = metered_value(t, grants, at(days=1), {})
    assert (value.balance, value.usage, value.overage, value.has_access) == (100, 0, 0, True)
    assert plan_metered_read(t, grants, at(days=1)) == []
    assert result.segments == ()


def test_metered_read_refuses_a_checkpoint_after_the_read() -> None:
    t = terms()
    grants = [grant("g", 100)]
    later = run_from_start(t, grants, at(hours=5), Events()).state
    with pytest.raises(ValueError, match="after the read"):
        metered_value(t, grants, at(hours=4), {}, later)


def test_a_stale_checkpoint_is_refused_instead_of_giving_a_wrong_balance() -> None:
    t = terms()
    old = run_from_start(t, [grant("g", 100)], at(hours=5), Events().add(at(hours=1), 10)).state
    backdated = grant("new", 50, effective_at=at(hours=2))
    with pytest.raises(ValueError, match="stale"):
        run(t, [grant("g", 100), backdated], old, at(hours=6), Events().sum)
    reset_later = terms(resets=[ManualReset(at=at(hours=3), anchor=at(hours=3))])
    with pytest.raises(ValueError, match="stale"):
        run(reset_later, [grant("g", 100)], old, at(hours=6), Events().sum)


def test_a_grant_starting_exactly_at_a_checkpoint_joins_at_its_amount() -> None:
    t = terms()
    events = Events().add(at(hours=1), 130)
    checkpoint = run_from_start(t, [grant("g", 100)], at(hours=2), events).state
    assert checkpoint.overage == 30
    both = [grant("g", 100), grant("new", 50, effective_at=at(hours=2))]
    resumed = run(t, both, checkpoint, at(hours=3), events.sum).state
    whole = run_from_start(t, both, at(hours=3), events).state
    assert resumed == whole
    assert dict(resumed.grant_balances) == {"g": 0, "new": 20}


def test_negative_usage_never_restores_a_balance() -> None:
    events = Events().add(at(minutes=1), 40).add(at(hours=1, minutes=1), -25)
    value, _ = metered_value(
        terms(), [grant("g", 100)], at(hours=2), events.sum, None, [at(hours=1)]
    )
    assert (value.balance, value.usage) == (60, 40)


# -- history ------------------------------------------------------------------------------------


def openmeter_history_case() -> tuple[list[Grant], Events]:
    grants = [
        grant("g1", 10000),
        grant("g2", 10000, effective_at=at(hours=3)),
        grant("g3", 10000, effective_at=at(hours=5, minutes=30)),
    ]
    events = Events()
    for offset in (
        timedelta(minutes=1),
        timedelta(hours=2, minutes=1),
        timedelta(hours=3, minutes=1),
        timedelta(hours=5, minutes=1),
    ):
        events.add(T0 + offset, 100)
    events.add(at(hours=8, minutes=1), 1100)
    events.add(T0 + timedelta(hours=11, minutes=59, seconds=59), 100)
    return grants, events


def test_hourly_history_matches_openmeter_scenario() -> None:
    grants, events = openmeter_history_case()
    t = terms()
    query = history_query(T0, at(hours=12), "HOUR", "UTC", T0)
    plan = plan_history(t, grants, query)
    history = build_history(t, grants, query, {w: events.sum(w) for w in plan})
    assert [int(w.balance_at_start) for w in history.windows] == [
        10000,
        9900,
        9900,
        19800,
        19700,
        19700,
        29600,
        29600,
        29600,
        28500,
        28500,
        28500,
    ]
    assert [int(w.usage) for w in history.windows] == [
        100,
        0,
        100,
        100,
        0,
        100,
        0,
        0,
        1100,
        0,
        0,
        100,
    ]
    assert [(s.period.start, s.period.end) for s in history.segments] == [
        (T0, at(hours=3)),
        (at(hours=3), at(hours=5, minutes=30)),
        (at(hours=5, minutes=30), at(hours=12)),
    ]


def test_history_adds_up_across_windows() -> None:
    grants, events = openmeter_history_case()
    t = terms()
    query = history_query(
        at(hours=1, minutes=17), at(hours=11, minutes=3, seconds=5), "HOUR", "UTC", T0
    )
    history = build_history(t, grants, query, events.sum)
    assert history.windows[0].period.start == at(hours=1, minutes=17)  # clipped to `from`
    assert history.windows[-1].period.end == at(hours=11, minutes=4)  # `to` rounded up
    change_points = {at(hours=3), at(hours=5, minutes=30)}
    for window, following in itertools.pairwise(history.windows):
        crossing = any(window.period.start < c <= window.period.end for c in change_points)
        if not crossing:
            assert window.balance_at_start - window.usage == following.balance_at_start
    assert sum(w.usage for w in history.windows) == sum(s.usage for s in history.segments)
    assert history.segments[0].period.start == query.start
    assert history.state_at_end.balance == history.segments[-1].balance_at_end


@settings(max_examples=40, deadline=None)
@given(
    start_minute=st.integers(min_value=0, max_value=600),
    length=st.integers(min_value=1, max_value=900),
    size=st.sampled_from(list(WindowSize)),
    zone=st.sampled_from(["UTC", "America/Los_Angeles", "Asia/Kolkata", "Australia/Lord_Howe"]),
)
def test_every_history_window_balance_is_what_a_read_at_its_start_shows(
    start_minute: int, length: int, size: WindowSize, zone: str
) -> None:
    if size is WindowSize.MINUTE:
        length = min(length, 120)
    grants, events = openmeter_history_case()
    t = terms("PT7H", preserve_overage=True)
    query = history_query(
        at(minutes=start_minute), at(minutes=start_minute + length), size, zone, T0
    )
    history = build_history(t, grants, query, events.sum)
    assert history.windows[0].period.start == query.start
    assert history.windows[-1].period.end == query.end
    for window in history.windows:
        value, _ = metered_value(t, grants, window.period.start, events.sum)
        assert window.balance_at_start == value.balance
        assert window.usage == events.sum(UsageWindow(window.period.start, window.period.end, T0))


def test_day_windows_follow_local_midnight_across_daylight_saving() -> None:
    query = history_query(
        datetime(2024, 3, 9, 10, tzinfo=UTC),
        datetime(2024, 3, 12, 10, tzinfo=UTC),
        "DAY",
        "America/Los_Angeles",
        T0,
    )
    assert [(w.start, w.duration) for w in query.windows] == [
        (datetime(2024, 3, 9, 10, tzinfo=UTC), timedelta(hours=22)),  # clipped at `from`
        (datetime(2024, 3, 10, 8, tzinfo=UTC), timedelta(hours=23)),  # spring forward
        (datetime(2024, 3, 11, 7, tzinfo=UTC), timedelta(hours=24)),
        (datetime(2024, 3, 12, 7, tzinfo=UTC), timedelta(hours=3)),  # clipped at `to`
    ]
    november = history_query(
        datetime(2024, 11, 3, 7, tzinfo=UTC),
        datetime(2024, 11, 4, 8, tzinfo=UTC),
        "DAY",
        "America/Los_Angeles",
        T0,
    )
    assert [w.duration for w in november.windows] == [timedelta(hours=25)]  # fall back


def test_hour_windows_in_a_half_hour_zone_start_on_the_half_hour_utc() -> None:
    query = history_query(at(hours=1), at(hours=3), "HOUR", "Asia/Kolkata", T0)
    assert [w.start.minute for w in query.windows] == [0, 30, 30]


def test_month_windows_start_on_local_first_of_the_month() -> None:
    query = history_query(T0, datetime(2024, 3, 15, tzinfo=UTC), "MONTH", "Europe/Berlin", T0)
    assert [w.start for w in query.windows] == [
        T0,
        datetime(2023, 12, 31, 23, tzinfo=UTC) + timedelta(days=31),
        datetime(2024, 2, 29, 23, tzinfo=UTC),
    ]


@pytest.mark.parametrize(
    ("from_", "to", "size", "zone", "field"),
    [
        (T0 - timedelta(minutes=1), at(days=1), "DAY", "UTC", "from"),
        (at(days=1), at(days=1), "DAY", "UTC", "to"),
        (T0, at(days=1), "WEEK", "UTC", "windowSize"),
        (T0, at(days=1), "DAY", "Mars/Olympus_Mons", "windowTimeZone"),
        (T0, at(days=1), "DAY", "../../etc/passwd", "windowTimeZone"),
        (T0, at(days=400), "MINUTE", "UTC", "windowSize"),
    ],
)
def test_history_query_validation(
    from_: datetime, to: datetime, size: str, zone: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        history_query(from_, to, size, zone, T0)
    assert raised.value.field == field


def test_latest_history_reports_the_latest_value_per_window() -> None:
    t = terms(mode=UsageMode.LATEST)
    grants = [grant("limit", 100)]
    events = Events().add(at(minutes=10), 30).add(at(minutes=70), 50).add(at(minutes=80), 20)
    query: HistoryQuery = history_query(T0, at(hours=3), "HOUR", "UTC", T0)
    windows = plan_history(t, grants, query)
    history = build_history(t, grants, query, {w: events.latest(w) for w in windows})
    assert [int(w.usage) for w in history.windows] == [30, 20, 0]
    # One segment (no grant changes): the limit minus the latest value so far at each start.
    assert [int(w.balance_at_start) for w in history.windows] == [100, 70, 80]


# -- checkpoints --------------------------------------------------------------------------------


def test_checkpoints_are_never_saved_inside_the_grace_window_or_in_the_future() -> None:
    now = datetime(2024, 1, 10, 12, 0, 30, tzinfo=UTC)
    grace = timedelta(minutes=5)
    assert latest_saveable_instant(now, grace) == datetime(2024, 1, 10, 11, 55, tzinfo=UTC)
    t = terms()
    assert checkpoint_instant(t, start_at=T0, until=at(days=20), now=now, grace=grace) == datetime(
        2024, 1, 10, 11, 55, tzinfo=UTC
    )
    assert checkpoint_instant(t, start_at=T0, until=at(days=2), now=now, grace=grace) == at(days=2)
    assert (
        checkpoint_instant(t, start_at=at(days=2), until=at(days=2), now=now, grace=grace) is None
    )
    state = run_from_start(t, [], at(days=20), Events()).state
    assert not may_save(t, state, now, grace)


def test_latest_meters_only_checkpoint_at_resets() -> None:
    now = datetime(2024, 1, 10, 12, tzinfo=UTC)
    t = terms("DAY", mode=UsageMode.LATEST)
    assert checkpoint_instant(t, start_at=T0, until=now, now=now) == at(days=9)
    assert checkpoint_instant(t, start_at=T0, until=at(hours=20), now=now) is None
    g = [grant("g", 10)]
    at_reset = run_from_start(t, g, at(days=9), Events()).state
    mid_day = run_from_start(t, g, at(days=9, hours=3), Events()).state
    assert may_save(t, at_reset, now)
    assert not may_save(t, mid_day, now)


def test_a_checkpoint_observed_mid_run_resumes_to_the_same_value() -> None:
    now = datetime(2024, 1, 20, tzinfo=UTC)
    t = terms()
    grants = [grant("g", 1000, recurrence=None), grant("h", 50, effective_at=at(days=3))]
    events = Events().add(at(days=1), 300).add(at(days=5), 900).add(at(days=18), 5)
    cut = checkpoint_instant(t, start_at=T0, until=at(days=19), now=now)
    assert cut == datetime(2024, 1, 19, 23, 55, tzinfo=UTC)  # now - grace, inside the run
    value, result = metered_value(t, grants, at(days=19), events.sum, None, [cut])
    saved = result.observed[cut]
    assert may_save(t, saved, now)
    again, _ = metered_value(t, grants, at(days=19), events.sum, saved)
    assert again == value


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (Change.GRANT_CREATED, datetime(2024, 1, 5, 10, 1, tzinfo=UTC)),
        (Change.GRANT_VOIDED, datetime(2024, 1, 5, 10, 1, tzinfo=UTC)),
        (Change.USAGE, datetime(2024, 1, 5, 10, 1, tzinfo=UTC)),
        (Change.MANUAL_RESET, datetime(2024, 1, 5, 10, 0, tzinfo=UTC)),
    ],
)
def test_what_each_change_invalidates(change: Change, expected: datetime) -> None:
    assert invalid_from(change, datetime(2024, 1, 5, 10, 0, 42, tzinfo=UTC)) == expected


@settings(max_examples=30, deadline=None)
@given(
    event_minute=st.integers(min_value=0, max_value=300),
    checkpoint_minute=st.integers(min_value=0, max_value=300),
)
def test_a_late_event_only_matters_to_checkpoints_the_rule_invalidates(
    event_minute: int, checkpoint_minute: int
) -> None:
    t = terms("PT2H")
    grants = [grant("g", 500, max_rollover=500)]
    base = Events().add(at(minutes=5), 100)
    late_time = at(minutes=event_minute) + timedelta(seconds=31)
    with_late = Events(list(base.items)).add(late_time, 7)
    checkpoint = run_from_start(t, grants, at(minutes=checkpoint_minute), base).state
    truth = run_from_start(t, grants, at(minutes=320), with_late).state
    resumed = run(t, grants, checkpoint, at(minutes=320), with_late.sum).state
    if checkpoint.at < invalid_from(Change.USAGE, late_time):
        assert resumed == truth
    else:
        # The rule is tight: a checkpoint it keeps would really miss the event.
        assert resumed.balance == truth.balance + 7


def test_initial_state_holds_every_grant_active_at_measurement_start() -> None:
    t = terms()
    grants = [grant("a", 5), grant("b", 7, effective_at=at(hours=1)), grant("c", 9, voided_at=T0)]
    state = initial_state(t, grants)
    assert dict(state.grant_balances) == {"a": Decimal(5)}
    assert (state.at, state.period_start, state.overage) == (T0, T0, 0)


@pytest.mark.parametrize(
    ("from_", "to", "size", "zone", "expected"),
    [
        # DST: the first whole day in Los Angeles starts at local midnight (08:00Z), the 23-hour
        # day of the change follows, and `to` inside the next day gives that day whole.
        (
            datetime(2024, 3, 9, 10, tzinfo=UTC),
            datetime(2024, 3, 11, 9, tzinfo=UTC),
            "DAY",
            "America/Los_Angeles",
            [
                ("2024-03-09T08:00", "2024-03-10T08:00"),
                ("2024-03-10T08:00", "2024-03-11T07:00"),
                ("2024-03-11T07:00", "2024-03-12T07:00"),
            ],
        ),
        # `to` on a boundary: no window after it.
        (
            datetime(2024, 1, 15, 10, 20, tzinfo=UTC),
            datetime(2024, 1, 15, 12, tzinfo=UTC),
            "HOUR",
            "UTC",
            [("2024-01-15T10:00", "2024-01-15T11:00"), ("2024-01-15T11:00", "2024-01-15T12:00")],
        ),
        # One window holding both ends, and half-hour zones.
        (
            datetime(2024, 2, 10, tzinfo=UTC),
            datetime(2024, 2, 11, tzinfo=UTC),
            "MONTH",
            "Asia/Kolkata",
            [("2024-01-31T18:30", "2024-02-29T18:30")],
        ),
    ],
)
def test_aligned_windows_cover_the_windows_holding_from_and_to(
    from_: datetime, to: datetime, size: str, zone: str, expected: list[tuple[str, str]]
) -> None:
    query = history_query(from_, to, size, zone, datetime(2024, 1, 1, tzinfo=UTC))
    aligned = [query.aligned(window) for window in query.windows]
    assert [(p.start.isoformat()[:16], p.end.isoformat()[:16]) for p in aligned] == expected
    # The clipped windows the engine counts are still exactly the range.
    assert query.windows[0].start == from_ and query.windows[-1].end == to
