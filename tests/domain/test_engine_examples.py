"""Worked examples with real numbers, one rule each (most from OpenMeter's own scenarios).

T0 is 2024-01-01 00:00 UTC; unless a test says otherwise the usage period is monthly from T0.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from allotment.domain.access import EntitlementValue, metered_value
from allotment.domain.burn import (
    EngineState,
    MeteredTerms,
    SegmentKind,
    UsageMode,
    UsageWindow,
    initial_state,
    plan_usage_windows,
    run,
)
from allotment.domain.grants import Grant
from allotment.domain.usage_periods import ManualReset
from tests.domain.helpers import T0, D, Events, at, every, grant, run_from_start, terms


def value_at(
    t: MeteredTerms,
    grants: list[Grant],
    when: datetime,
    events: Events,
    start: EngineState | None = None,
) -> EntitlementValue:
    source = events.latest if t.usage_mode is UsageMode.LATEST else events.sum
    value, _ = metered_value(t, grants, when, source, start)
    return value


def manual_reset(
    when: datetime, *, anchor: datetime | None = None, preserve: bool = False
) -> ManualReset:
    return ManualReset(
        at=when, anchor=when if anchor is None else anchor, preserve_overage=preserve
    )


# -- burn order -------------------------------------------------------------------------------


def test_lower_priority_number_burns_first() -> None:
    grants = [grant("g1", 100, priority=1), grant("g2", 100, priority=2)]
    events = Events().add(at(hours=1), 120)
    state = run_from_start(terms(), grants, at(hours=2), events).state
    assert dict(state.grant_balances) == {"g1": 0, "g2": 80}


def test_equal_priority_the_grant_expiring_first_burns_first() -> None:
    grants = [
        grant("late", 100, expires_at=at(days=36500)),
        grant("soon", 100, expires_at=at(days=30)),
    ]
    events = Events().add(at(hours=1), 120)
    state = run_from_start(terms(), grants, at(days=1), events).state
    assert dict(state.grant_balances) == {"soon": 0, "late": 80}


def test_a_grant_without_expiry_burns_after_grants_that_expire() -> None:
    grants = [grant("forever", 100), grant("expiring", 100, expires_at=at(days=3650))]
    state = run_from_start(terms(), grants, at(days=1), Events().add(at(hours=1), 150)).state
    assert dict(state.grant_balances) == {"expiring": 0, "forever": 50}


def test_full_tie_break_priority_expiry_creation_id() -> None:
    base = T0
    grants = [
        grant("p2", 10, priority=2, expires_at=base + timedelta(minutes=30)),
        grant("no-expiration", 10, created_at=base - timedelta(hours=3)),
        grant("later-expiration", 10, expires_at=base + timedelta(hours=2)),
        grant(
            "cursor-b",
            10,
            expires_at=base + timedelta(hours=1),
            created_at=base - timedelta(hours=1),
        ),
        grant(
            "cursor-a",
            10,
            expires_at=base + timedelta(hours=1),
            created_at=base - timedelta(hours=1),
        ),
        # Expires 0.9 s later than the cursors: the same minute once truncated, created earlier.
        grant(
            "created-first",
            10,
            expires_at=base + timedelta(hours=1, seconds=0.9),
            created_at=base - timedelta(hours=2),
        ),
    ]
    order = [g.id for g in sorted(grants, key=lambda g: g.burn_order_key)]
    assert order == [
        "created-first",
        "cursor-a",
        "cursor-b",
        "later-expiration",
        "no-expiration",
        "p2",
    ]


def test_among_ten_thousand_grants_the_one_expiring_first_takes_the_usage() -> None:
    grants = [grant(f"g{i:05}", 100, expires_at=at(days=20)) for i in range(10_000)]
    grants.append(grant("first", 100, expires_at=at(days=19)))
    state = run_from_start(terms(), grants, at(hours=1), Events().add(at(minutes=5), 99)).state
    assert state.grant_balances["first"] == 1
    assert all(b == 100 for gid, b in state.grant_balances.items() if gid != "first")


# -- overage ------------------------------------------------------------------------------------


def test_without_grants_all_usage_is_overage_and_access_is_denied() -> None:
    events = Events().add(at(minutes=10), 50)
    value = value_at(terms(), [], at(hours=1), events)
    assert value == EntitlementValue(
        has_access=False,
        balance=D(0),
        usage=D(50),
        overage=D(50),
        total_available_grant_amount=D(0),
        grant_balances={},
    )


def test_soft_limit_keeps_access_past_zero() -> None:
    grants = [grant("g", 100)]
    events = Events().add(at(minutes=10), 150)
    value = value_at(terms(soft=True), grants, at(hours=1), events)
    assert (value.has_access, value.balance, value.usage, value.overage) == (True, 0, 150, 50)
    hard = value_at(terms(), grants, at(hours=1), events)
    assert (hard.has_access, hard.balance, hard.overage) == (False, 0, 50)


def test_overage_before_a_grant_starts_is_paid_by_that_grant() -> None:
    start = T0 - timedelta(days=1)
    t = terms(anchor=start, measure_from=start)
    grants = [grant("g", 100, effective_at=T0)]
    events = Events().add(T0 - timedelta(hours=1), 25).add(T0 + timedelta(hours=1), 25)
    result = run_from_start(t, grants, T0 + timedelta(days=1), events)
    assert result.state.grant_balances == {"g": 50}
    first, second = result.segments
    assert (first.usage, first.overage, first.balance_at_start) == (25, 25, 0)
    assert (second.balance_at_start, second.overage_at_start, second.overage) == (100, 25, 0)
    assert [(u.grant_id, u.usage) for u in second.grant_usages] == [("g", 50)]


def test_top_up_pays_off_overage_first() -> None:
    """overage 1,000, top-up 500,000 -> balance 499,000 and overage 0."""
    allowance = grant("monthly", 10_000_000, min_rollover=10_000_000, max_rollover=10_000_000)
    events = Events().add(at(days=2), 9_999_000).add(at(days=3), 2_000)
    before = value_at(terms(), [allowance], at(days=4), events)
    assert (before.has_access, before.balance, before.overage) == (False, 0, 1_000)
    top_up = grant(
        "top-up", 500_000, effective_at=at(days=4), expires_at=at(days=4) + timedelta(days=31)
    )
    after = value_at(terms(), [allowance, top_up], at(days=4) + timedelta(seconds=20), events)
    assert (after.has_access, after.balance, after.overage, after.usage) == (
        True,
        499_000,
        0,
        10_001_000,
    )
    assert after.total_available_grant_amount == 10_500_000


def test_recurring_refill_pays_the_carried_overage() -> None:
    grants = [grant("daily", 100, recurrence=every("DAY"))]
    events = Events().add(at(hours=1), 120)
    just_before = value_at(terms(), grants, at(days=1) - timedelta(minutes=1), events)
    assert (just_before.balance, just_before.overage) == (0, 20)
    assert value_at(terms(), grants, at(days=1, hours=1), events).balance == 80


# -- recurrence ---------------------------------------------------------------------------------


def test_recurrence_is_not_reapplied_when_another_grant_starts() -> None:
    g1 = grant("g1", 100, priority=1, recurrence=every("DAY", at(days=1)))
    g2 = grant("g2", 100, priority=2, effective_at=at(days=1, hours=1))
    events = Events().add(at(days=1, minutes=30), 30).add(at(days=1, hours=1, minutes=30), 20)
    result = run_from_start(terms(), [g1, g2], at(days=1, hours=2), events)
    assert dict(result.state.grant_balances) == {"g1": 50, "g2": 100}
    starts = {s.period.start: s.grant_balances_at_start.get("g1") for s in result.segments}
    assert starts[at(days=1)] == 100
    assert starts[at(days=1, hours=1)] == 70


def test_total_available_counts_every_refill_of_a_recurring_grant() -> None:
    grants = [grant("daily", 100, recurrence=every("DAY"))]
    events = (
        Events().add(at(hours=1), 100).add(at(days=1, hours=1), 90).add(at(days=2, hours=1), 80)
    )
    at_refill = value_at(terms(), grants, at(days=3), events)
    assert (at_refill.balance, at_refill.total_available_grant_amount) == (100, 370)
    before = value_at(terms(), grants, at(days=3) - timedelta(hours=1), events)
    assert (before.balance, before.total_available_grant_amount) == (20, 290)
    assert (
        value_at(terms(), grants, at(days=3, hours=1), events).total_available_grant_amount == 370
    )
    # An unused refill adds nothing: 270 used + 100 left.
    assert value_at(terms(), grants, at(days=4), events).total_available_grant_amount == 370


def test_recurrence_exactly_at_the_read_is_already_applied() -> None:
    grants = [grant("daily", 100, recurrence=every("DAY"))]
    events = Events().add(at(hours=1), 70)
    assert value_at(terms(), grants, at(days=1), events).balance == 100
    assert value_at(terms(), grants, at(days=1) - timedelta(minutes=1), events).balance == 30


def test_recurrence_at_a_reset_wins_over_rollover() -> None:
    t = terms(resets=[manual_reset(at(days=1))])
    grants = [grant("daily", 100, max_rollover=0, recurrence=every("DAY"))]
    value = value_at(t, grants, at(days=1), Events().add(at(hours=1), 10))
    assert (value.balance, value.usage) == (100, 0)


# -- expiry and void ----------------------------------------------------------------------------


def test_a_grant_expiring_with_balance_left_loses_it() -> None:
    grants = [grant("short", 100, expires_at=at(hours=2))]
    events = Events().add(at(hours=1), 10).add(at(hours=3), 10)
    value = value_at(terms(), grants, at(days=1), events)
    assert (value.balance, value.usage, value.overage) == (0, 20, 10)
    assert value.total_available_grant_amount == 10
    assert value.grant_balances == {}


def test_voiding_drops_the_balance_but_keeps_what_was_used() -> None:
    g = grant("g", 100, voided_at=at(hours=2))
    value = value_at(terms(), [g], at(hours=3), Events().add(at(hours=1), 60))
    assert (value.balance, value.usage, value.total_available_grant_amount) == (0, 60, 60)


def test_a_grant_voided_mid_period_stops_burning_and_the_next_grant_takes_over() -> None:
    g1 = grant("g1", 100, priority=1, voided_at=at(days=10))
    g2 = grant("g2", 100, priority=2)
    events = Events().add(at(days=2), 30).add(at(days=12), 50)
    value = value_at(terms(), [g1, g2], at(days=15), events)
    assert value.grant_balances == {"g2": 50}
    assert (value.balance, value.usage, value.overage) == (50, 80, 0)
    assert value.total_available_grant_amount == 130  # 30 from g1 + 50 from g2 + 50 left


# -- simple reads -------------------------------------------------------------------------------


def test_future_grants_and_future_usage_are_not_in_a_read() -> None:
    query = at(hours=1)
    grants = [grant("now", 1000), grant("later", 1000, effective_at=query + timedelta(hours=1))]
    events = Events().add(at(minutes=1), 100).add(query + timedelta(minutes=1), 100)
    value = value_at(terms(), grants, query, events)
    assert (value.usage, value.balance, value.overage) == (100, 900, 0)


def test_usage_before_measurement_starts_never_counts() -> None:
    grants = [grant("g", 100)]
    events = Events().add(T0 - timedelta(minutes=1), 100)
    value = value_at(terms(), grants, at(hours=1), events)
    assert (value.usage, value.overage, value.balance) == (0, 0, 100)


def test_a_sub_minute_read_includes_its_partial_minute() -> None:
    events = Events().add(at(hours=1) + timedelta(seconds=10), 7)
    grants = [grant("g", 100)]
    assert value_at(terms(), grants, at(hours=1) + timedelta(seconds=30), events).usage == 7
    assert value_at(terms(), grants, at(hours=1), events).usage == 0


def test_a_read_seconds_before_a_reset_still_shows_the_old_period() -> None:
    end_of_january = datetime(2024, 2, 1, tzinfo=UTC)
    grants = [grant("g", 100, min_rollover=100, max_rollover=100)]
    events = Events().add(end_of_january - timedelta(seconds=20), 30)
    before = value_at(terms(), grants, end_of_january - timedelta(seconds=10), events)
    assert (before.usage, before.balance) == (30, 70)
    after = value_at(terms(), grants, end_of_january, events)
    assert (after.usage, after.balance) == (0, 100)


# -- resets and rollover ------------------------------------------------------------------------


def test_rollover_clamps_to_the_maximum() -> None:
    reset_at = at(hours=5)
    t = terms(resets=[manual_reset(reset_at)])
    grants = [grant("g", 100, max_rollover=50)]
    result = run_from_start(t, grants, at(hours=6), Events().add(at(hours=1), 10))
    assert result.state.grant_balances == {"g": 50}
    kinds = [(s.kind, s.period.start, s.period.end) for s in result.segments]
    assert kinds == [
        (SegmentKind.USAGE, T0, reset_at),
        (SegmentKind.ROLLOVER, reset_at, reset_at),
        (SegmentKind.USAGE, reset_at, at(hours=6)),
    ]
    assert result.segments[1].balance_at_start == 50


def test_preserved_overage_is_burnt_from_the_rolled_over_balance() -> None:
    reset_at = at(hours=5)
    t = terms(resets=[manual_reset(reset_at, preserve=True)])
    grants = [grant("g", 100, min_rollover=50, max_rollover=50)]
    result = run_from_start(t, grants, reset_at, Events().add(at(hours=1), 110))
    rollover = result.segments[-1]
    assert rollover.kind is SegmentKind.ROLLOVER
    assert (rollover.balance_at_start, rollover.overage_at_start, rollover.balance_at_end) == (
        50,
        10,
        40,
    )
    assert result.state.balance == 40
    assert result.state.period_grant_usage == 10  # counts in totalAvailableGrantAmount


def test_mixed_rollover_limits_over_two_resets() -> None:
    r1, r2 = at(hours=5), at(hours=10)
    t = terms(resets=[manual_reset(r1), manual_reset(r2)])
    g1 = grant("g1", 1000, priority=1, effective_at=at(hours=2), max_rollover=1000)
    g2 = grant("g2", 1000, priority=3, effective_at=at(hours=2), max_rollover=100)
    g3 = grant("g3", 1000, priority=1, effective_at=r1 + timedelta(hours=1), max_rollover=1000)
    events = Events().add(at(minutes=1), 600).add(r1 + timedelta(minutes=10), 300)
    after_first = value_at(t, [g1, g2, g3], r1, events)
    assert after_first.grant_balances == {"g1": 400, "g2": 100}
    assert (after_first.balance, after_first.usage) == (500, 0)
    after_second = value_at(t, [g1, g2, g3], r2, events)
    assert after_second.grant_balances == {"g1": 100, "g2": 100, "g3": 1000}
    assert after_second.balance == 1200


@pytest.mark.parametrize(
    ("used", "preserve", "balance", "overage"),
    [
        (2100, True, 400, 0),  # 100 overage paid from g2's 500 rollover
        (2600, True, 0, 100),  # 600 overage: g2's 500 is not enough
        (2600, False, 500, 0),  # overage forgiven
    ],
)
def test_preserve_overage_at_reset(used: int, preserve: bool, balance: int, overage: int) -> None:
    reset_at = at(days=1)
    t = terms(resets=[manual_reset(reset_at, preserve=preserve)])
    g1 = grant("g1", 1000, priority=1, max_rollover=1000)
    g2 = grant("g2", 1000, priority=3, min_rollover=500, max_rollover=500)
    value = value_at(t, [g1, g2], reset_at, Events().add(at(hours=1), used))
    assert (value.balance, value.overage, value.usage) == (balance, overage, 0)


def test_ten_million_one_time_grant_rolls_over_only_up_to_its_cap() -> None:
    g = grant("big", 10_000_000, min_rollover=0, max_rollover=1_000_000)
    events = Events().add(at(days=10), 4_000_000)
    feb = datetime(2024, 2, 1, tzinfo=UTC)
    assert value_at(terms(), [g], feb - timedelta(minutes=1), events).balance == 6_000_000
    assert value_at(terms(), [g], feb, events).balance == 1_000_000


def test_ten_million_recurring_monthly_refills_over_the_rollover() -> None:
    g = grant("big", 10_000_000, max_rollover=1_000_000, recurrence=every("MONTH"))
    events = Events().add(at(days=10), 4_000_000)
    assert value_at(terms(), [g], datetime(2024, 2, 1, tzinfo=UTC), events).balance == 10_000_000


@pytest.mark.parametrize(("preserve", "balance"), [(False, 10_000_000), (True, 8_000_000)])
def test_issue_after_reset_returns_to_the_allowance_every_period(
    preserve: bool, balance: int
) -> None:
    allowance = grant("default", 10_000_000, min_rollover=10_000_000, max_rollover=10_000_000)
    events = Events().add(at(days=20), 12_000_000)
    t = terms(preserve_overage=preserve)
    value = value_at(t, [allowance], datetime(2024, 2, 1, tzinfo=UTC), events)
    assert (value.balance, value.usage, value.overage) == (balance, 0, 0)


@pytest.mark.parametrize(("max_rollover", "balance"), [(0, 0), (500, 300)])
def test_v1_and_v2_rollover_defaults(max_rollover: int, balance: int) -> None:
    """v1 defaults maxRolloverAmount to 0 (drops to 0), v2 to the amount (keeps the rest)."""
    g = grant("g", 500, max_rollover=max_rollover)
    value = value_at(terms("DAY"), [g], at(days=1), Events().add(at(hours=1), 200))
    assert value.balance == balance


def test_a_grant_starting_at_a_reset_starts_full() -> None:
    reset_at = at(hours=5)
    t = terms(resets=[manual_reset(reset_at)])
    old = grant("old", 1000, max_rollover=0)
    new = grant("new", 1000, effective_at=reset_at)
    events = Events().add(at(hours=1), 10)
    assert value_at(t, [old], reset_at, events).balance == 0
    assert value_at(t, [old, new], reset_at, events).balance == 1000
    assert value_at(t, [old, new], reset_at + timedelta(minutes=1), events).balance == 1000


def test_a_grant_expiring_exactly_at_a_reset_rolls_over_nothing() -> None:
    reset_at = at(hours=5)
    t = terms(resets=[manual_reset(reset_at)])
    g = grant("g", 1000, max_rollover=1000, expires_at=reset_at)
    assert value_at(t, [g], reset_at, Events()).balance == 0


def test_a_reset_without_grants_forgets_overage() -> None:
    reset_at = at(hours=3)
    t = terms(resets=[manual_reset(reset_at)])
    events = Events().add(at(hours=1), 100)
    value = value_at(t, [], reset_at, events)
    assert (value.balance, value.usage, value.overage) == (0, 0, 0)
    events.add(reset_at + timedelta(minutes=5), 600)
    later = value_at(t, [], reset_at + timedelta(hours=1), events)
    assert (later.balance, later.usage, later.overage) == (0, 600, 600)


def test_manual_reset_without_retain_anchor_moves_the_period_grid() -> None:
    reset_at = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)
    t = terms()
    moved, reset = t.timeline.with_manual_reset(
        reset_at, retain_anchor=False, preserve_overage=False
    )
    assert reset.anchor == reset_at
    period = moved.current_period_at(reset_at + timedelta(days=1))
    assert (period.start, period.end) == (reset_at, datetime(2024, 2, 15, 12, 0, tzinfo=UTC))
    kept, reset = t.timeline.with_manual_reset(reset_at, retain_anchor=True, preserve_overage=False)
    assert reset.anchor == T0
    period = kept.current_period_at(reset_at + timedelta(days=1))
    assert (period.start, period.end) == (reset_at, datetime(2024, 2, 1, tzinfo=UTC))
    # The next automatic reset follows the grid: Feb 15 when moved, Feb 1 when kept.
    g = grant("g", 100, min_rollover=100, max_rollover=100)
    events = Events().add(datetime(2024, 1, 20, tzinfo=UTC), 30)
    feb_2 = datetime(2024, 2, 2, tzinfo=UTC)
    moved_terms = MeteredTerms(moved)
    kept_terms = MeteredTerms(kept)
    assert value_at(moved_terms, [g], feb_2, events).usage == 30
    assert value_at(kept_terms, [g], feb_2, events).usage == 0


def test_manual_reset_preserve_overage_overrides_the_entitlement_default() -> None:
    reset_at = at(days=5)
    g = grant("g", 100, min_rollover=100, max_rollover=100)
    events = Events().add(at(days=1), 130)
    preserved = terms(resets=[manual_reset(reset_at, preserve=True)], preserve_overage=False)
    forgiven = terms(resets=[manual_reset(reset_at, preserve=False)], preserve_overage=True)
    assert value_at(preserved, [g], reset_at, events).balance == 70
    assert value_at(forgiven, [g], reset_at, events).balance == 100


# -- calendars ----------------------------------------------------------------------------------


def test_an_allowance_anchored_on_the_31st_resets_on_every_month_end() -> None:
    anchor = datetime(2024, 1, 31, tzinfo=UTC)
    t = terms(anchor=anchor, measure_from=anchor)
    g = grant("allowance", 1000, effective_at=anchor, min_rollover=1000, max_rollover=1000)
    events = Events()
    for day in (datetime(2024, 2, 10), datetime(2024, 3, 10), datetime(2024, 4, 10)):
        events.add(day.replace(tzinfo=UTC), 400)
    resets = t.timeline.resets_between(anchor, datetime(2024, 6, 1, tzinfo=UTC))
    assert [r.at.date().isoformat() for r in resets] == [
        "2024-02-29",
        "2024-03-31",
        "2024-04-30",
        "2024-05-31",
    ]
    assert value_at(t, [g], datetime(2024, 2, 28, tzinfo=UTC), events).balance == 600
    assert value_at(t, [g], datetime(2024, 2, 29, tzinfo=UTC), events).balance == 1000
    assert value_at(t, [g], datetime(2024, 3, 30, tzinfo=UTC), events).usage == 400
    assert value_at(t, [g], datetime(2024, 4, 30, tzinfo=UTC), events).usage == 0


def test_leap_year_february_is_a_29_day_period() -> None:
    anchor = datetime(2024, 1, 29, 9, 0, tzinfo=UTC)
    t = terms(anchor=anchor, measure_from=anchor)
    period = t.timeline.current_period_at(datetime(2024, 3, 1, tzinfo=UTC))
    assert (period.start, period.end) == (
        datetime(2024, 2, 29, 9, 0, tzinfo=UTC),
        datetime(2024, 3, 29, 9, 0, tzinfo=UTC),
    )
    yearly = terms(
        "YEAR",
        anchor=datetime(2024, 2, 29, tzinfo=UTC),
        measure_from=datetime(2024, 2, 29, tzinfo=UTC),
    )
    resets = yearly.timeline.resets_between(
        datetime(2024, 2, 29, tzinfo=UTC), datetime(2029, 1, 1, tzinfo=UTC)
    )
    assert [r.at.date().isoformat() for r in resets] == [
        "2025-02-28",
        "2026-02-28",
        "2027-02-28",
        "2028-02-29",
    ]


# -- other meters -------------------------------------------------------------------------------


def test_latest_meter_treats_grants_as_limits() -> None:
    t = terms(mode=UsageMode.LATEST)
    grants = [
        grant("g1", 50, priority=1, expires_at=at(hours=1)),
        grant("g2", 100, priority=2),
        grant("g3", 75, priority=3, effective_at=at(hours=1)),
        grant("g4", 200, priority=1, effective_at=at(hours=4)),
    ]
    events = Events().add(T0, 15).add(at(hours=1), 30).add(at(hours=2), 10)
    value, result = metered_value(t, grants, at(hours=3), events.latest)
    assert (value.balance, value.usage, value.overage) == (165, 25, 0)
    assert value.total_available_grant_amount == 190  # 25 used within the limits + 165 left
    assert result.state.period_grant_usage == 25
    assert len(result.segments) == 2


def test_latest_meter_overage_is_not_carried_between_segments() -> None:
    t = terms(mode=UsageMode.LATEST)
    grants = [grant("seats", 10), grant("extra", 5, effective_at=at(hours=2))]
    events = Events().add(at(minutes=1), 12).add(at(hours=2, minutes=1), 12)
    assert value_at(t, grants, at(hours=1), events).overage == 2
    later = value_at(t, grants, at(hours=3), events)
    assert (later.overage, later.balance) == (0, 3)  # 12 seats against a limit of 15


def test_unique_count_counts_a_value_once_per_period() -> None:
    values: list[tuple[datetime, str]] = [(at(minutes=i), f"user-{i % 10}") for i in range(1, 21)]

    def unique(window: UsageWindow) -> Decimal:
        def distinct(until: datetime) -> int:
            return len({v for t, v in values if window.period_start <= t < until})

        return Decimal(distinct(window.end) - distinct(window.start))

    reset_at = at(hours=1)
    t = terms(resets=[manual_reset(reset_at)])
    g = grant("g", 100, min_rollover=0, max_rollover=100)
    # Observe points split the usage into windows; the difference form still counts 10.
    start = initial_state(t, [g])
    result = run(t, [g], start, at(minutes=59), unique, [at(minutes=7), at(minutes=15)])
    assert (result.state.period_usage, result.state.balance) == (10, 90)
    after_reset = run(t, [g], start, reset_at + timedelta(minutes=1), unique)
    assert (after_reset.state.period_usage, after_reset.state.balance) == (0, 90)


# -- checkpoints --------------------------------------------------------------------------------


def test_a_read_from_a_checkpoint_at_a_period_start_equals_a_full_read() -> None:
    t = terms("DAY")
    g = grant("g", 1000, max_rollover=1000)
    events = Events().add(at(hours=1), 200)
    checkpoint = run_from_start(t, [g], at(days=1), events).state
    assert (checkpoint.balance, checkpoint.period_usage, checkpoint.period_start) == (
        800,
        0,
        at(days=1),
    )
    full = value_at(t, [g], at(days=9), events)
    resumed = value_at(t, [g], at(days=9), events, start=checkpoint)
    assert full == resumed
    assert (resumed.balance, resumed.usage) == (800, 0)


def test_a_checkpoint_carries_period_usage_and_grant_usage_forward() -> None:
    g = grant("g", 1000)
    events = Events().add(at(minutes=10), 200).add(at(hours=1, minutes=10), 100)
    checkpoint = run_from_start(terms(), [g], at(hours=1), events).state
    assert (checkpoint.period_usage, checkpoint.period_grant_usage, checkpoint.balance) == (
        200,
        200,
        800,
    )
    value = value_at(terms(), [g], at(hours=2), events, start=checkpoint)
    assert (value.usage, value.balance, value.total_available_grant_amount) == (300, 700, 1000)


def test_late_events_on_both_sides_of_a_read_keep_the_books_balanced() -> None:
    g = grant("g", 1000)
    query = at(days=3)
    events = Events().add(at(days=1), 200)
    events.add(query - timedelta(minutes=1, seconds=1), 5).add(query - timedelta(seconds=59), 5)
    value = value_at(terms(), [g], query - timedelta(minutes=1), events)
    assert value.usage is not None and value.balance is not None and value.overage is not None
    assert value.usage + value.balance - value.overage == 1000
    assert value.usage == 205


# -- decimals -----------------------------------------------------------------------------------


def test_a_million_small_decimal_debits_come_out_exact() -> None:
    debits = [Decimal("0.07"), Decimal("0.013"), Decimal("1.1"), Decimal("0.0009")]
    events: list[tuple[datetime, Decimal]] = []
    minute = timedelta(minutes=1)
    for i in range(1_000_000):
        events.append((T0 + (i // 40) * minute, debits[i % 4]))
    expected_used = sum(debits) * 250_000  # 1.1839 * 250,000 = 295,975
    assert expected_used == Decimal("295975.0000")
    g = grant("tokens", 10_000_000)
    t = terms()
    until = at(days=30)
    # Checkpoint every day: 30 windows of sums, all exact.
    checkpoints = [at(days=d) for d in range(1, 30)]
    times = [e[0] for e in events]
    prefix = [Decimal(0)]
    for _, v in events:
        prefix.append(prefix[-1] + v)

    def usage(window: UsageWindow) -> Decimal:
        import bisect

        lo = bisect.bisect_left(times, window.start)
        hi = bisect.bisect_left(times, window.end)
        return prefix[hi] - prefix[lo]

    start = initial_state(t, [g])
    windows = plan_usage_windows(t, [g], start, until, checkpoints)
    result = run(t, [g], start, until, {w: usage(w) for w in windows}, checkpoints)
    assert result.state.balance == Decimal("9704025.0000")
    assert result.state.balance == Decimal(10_000_000) - expected_used
    assert float(10_000_000) - sum(float(v) for _, v in events) != 9704025.0  # floats drift


# -- the announcement scenario ---------------------------------------------------------------


def test_ten_million_tokens_a_month_with_a_top_up() -> None:
    """Spec scenario: allowance, overage, top-up paying it off, next month's refill."""
    created = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    t = terms(anchor=created, measure_from=created)
    allowance = grant(
        "allowance",
        10_000_000,
        effective_at=created,
        min_rollover=10_000_000,
        max_rollover=10_000_000,
    )
    events = Events()
    assert value_at(t, [allowance], created, events).balance == 10_000_000
    events.add(created + timedelta(hours=1), 9_999_000)
    assert value_at(t, [allowance], created + timedelta(hours=2), events).balance == 1_000
    events.add(created + timedelta(hours=3), 2_000)
    over = value_at(t, [allowance], created + timedelta(hours=4), events)
    assert (over.has_access, over.balance, over.overage) == (False, 0, 1_000)
    top_up_at = created + timedelta(hours=5)
    v1_top_up = grant(
        "top-up",
        500_000,
        effective_at=top_up_at,
        expires_at=datetime(2024, 7, 1, 17, 0, tzinfo=UTC),
    )
    grants = [allowance, v1_top_up]
    topped = value_at(t, grants, top_up_at + timedelta(seconds=5), events)
    assert (topped.has_access, topped.balance, topped.overage) == (True, 499_000, 0)
    july = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)
    next_month = value_at(t, grants, july, events)
    assert next_month.grant_balances == {"allowance": 10_000_000, "top-up": 0}  # v1: max rollover 0
    v2_top_up = grant(
        "top-up",
        500_000,
        effective_at=top_up_at,
        expires_at=datetime(2024, 7, 1, 17, 0, tzinfo=UTC),
        max_rollover=500_000,
    )
    kept = value_at(t, [allowance, v2_top_up], july, events)
    assert kept.grant_balances == {"allowance": 10_000_000, "top-up": 499_000}
    gone = value_at(t, [allowance, v2_top_up], datetime(2024, 7, 1, 17, 0, tzinfo=UTC), events)
    assert gone.grant_balances == {"allowance": 10_000_000}
