"""Engine properties on random scenarios, checked against the naive minute-by-minute model.

ALLOTMENT_PROPERTY_EXAMPLES=5000 runs a deeper search than the default, which is sized to keep
the domain suite well under a minute.
"""

from __future__ import annotations

import bisect
import itertools
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allotment.domain.burn import (
    EngineRun,
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
from allotment.domain.periods import Interval, Recurrence
from allotment.domain.usage_periods import ManualReset, UsagePeriodTimeline
from tests.domain.helpers import T0
from tests.domain.reference_model import NaiveGrant, NaiveReset, NaiveScenario, simulate

PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("ALLOTMENT_PROPERTY_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def minute(offset: int) -> datetime:
    return T0 + timedelta(minutes=offset)


amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(400), places=2)
usage_amounts = st.one_of(
    st.integers(min_value=0, max_value=150).map(Decimal),
    st.decimals(min_value=Decimal(0), max_value=Decimal(60), places=3),
)


@dataclass
class Scenario:
    naive: NaiveScenario
    terms: MeteredTerms
    grants: list[Grant]
    until: datetime
    horizon: int
    _times: list[datetime]
    _values: list[Decimal]
    _prefix: list[Decimal]

    def usage(self, window: UsageWindow) -> Decimal:
        lo = bisect.bisect_left(self._times, window.start)
        hi = bisect.bisect_left(self._times, window.end)
        return self._prefix[hi] - self._prefix[lo]

    def total_usage(self, start: datetime, end: datetime) -> Decimal:
        return self.usage(UsageWindow(start, end, start))

    def grant(self, grant_id: str) -> Grant:
        return next(g for g in self.grants if g.id == grant_id)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    horizon = draw(st.integers(min_value=20, max_value=1200))
    period_minutes = draw(st.sampled_from([60, 90, 180, 360, 1440]))
    period_anchor = minute(draw(st.integers(min_value=-3000, max_value=3000)))
    naive_grants: list[NaiveGrant] = []
    for i in range(draw(st.integers(min_value=0, max_value=5))):
        amount = draw(amounts)
        effective = draw(st.integers(min_value=0, max_value=horizon))
        expires = draw(st.none() | st.integers(min_value=effective + 1, max_value=2 * horizon))
        voided = draw(st.none() | st.integers(min_value=0, max_value=horizon + 10))
        recurrence = draw(
            st.none()
            | st.tuples(
                st.sampled_from([60, 120, 240, 1440]), st.integers(min_value=-500, max_value=500)
            )
        )
        naive_grants.append(
            NaiveGrant(
                id=f"g{i}",
                amount=amount,
                priority=draw(st.integers(min_value=1, max_value=3)),
                effective=minute(effective),
                created=minute(draw(st.integers(min_value=-100, max_value=0))),
                expires=None if expires is None else minute(expires),
                voided=None if voided is None else minute(voided),
                min_rollover=draw(st.decimals(min_value=0, max_value=amount, places=2)),
                max_rollover=draw(st.decimals(min_value=0, max_value=amount * 2, places=2)),
                recurrence_anchor=None if recurrence is None else minute(effective + recurrence[1]),
                recurrence_minutes=None if recurrence is None else recurrence[0],
            )
        )
    usage = draw(
        st.dictionaries(st.integers(min_value=-30, max_value=horizon), usage_amounts, max_size=40)
    )
    reset_offsets = draw(
        st.lists(st.integers(min_value=1, max_value=horizon), unique=True, max_size=3)
    )
    naive_resets = [
        NaiveReset(minute(offset), draw(st.booleans()), draw(st.booleans()))
        for offset in sorted(reset_offsets)
    ]
    naive = NaiveScenario(
        start=T0,
        period_minutes=period_minutes,
        period_anchor=period_anchor,
        grants=naive_grants,
        usage={minute(k): v for k, v in usage.items()},
        resets=naive_resets,
        preserve_default=draw(st.booleans()),
    )
    mode_terms = _engine_terms(naive)
    grants = [
        Grant(
            id=g.id,
            amount=g.amount,
            priority=g.priority,
            effective_at=g.effective,
            created_at=g.created,
            expires_at=g.expires,
            voided_at=g.voided,
            min_rollover_amount=g.min_rollover,
            max_rollover_amount=g.max_rollover,
            recurrence=None
            if g.recurrence_minutes is None or g.recurrence_anchor is None
            else Recurrence(Interval(seconds=60 * g.recurrence_minutes), g.recurrence_anchor),
        )
        for g in naive_grants
    ]
    times = sorted(naive.usage)
    values = [naive.usage[t] for t in times]
    prefix = [Decimal(0)]
    for v in values:
        prefix.append(prefix[-1] + v)
    until = minute(draw(st.integers(min_value=0, max_value=horizon)))
    return Scenario(naive, mode_terms, grants, until, horizon, times, values, prefix)


def _engine_terms(naive: NaiveScenario) -> MeteredTerms:
    resets = tuple(
        ManualReset(at=r.at, anchor=anchor, preserve_overage=r.preserve_overage)
        for r, (_, anchor) in zip(naive.resets, naive.anchors()[1:], strict=True)
    )
    timeline = UsagePeriodTimeline(
        naive.start,
        Recurrence(Interval(seconds=60 * naive.period_minutes), naive.period_anchor),
        resets,
    )
    return MeteredTerms(timeline, preserve_overage_at_reset=naive.preserve_default)


def full_run(
    s: Scenario, until: datetime | None = None, observe: list[datetime] | None = None
) -> EngineRun:
    end = s.until if until is None else until
    return run(s.terms, s.grants, initial_state(s.terms, s.grants), end, s.usage, observe or [])


def assert_same_state(a: EngineState, b: EngineState) -> None:
    assert a.at == b.at
    assert dict(a.grant_balances) == dict(b.grant_balances)
    assert a.overage == b.overage
    assert a.period_usage == b.period_usage
    assert a.period_grant_usage == b.period_grant_usage
    assert a.period_start == b.period_start


@PROPERTY_SETTINGS
@given(scenarios())
def test_engine_matches_the_naive_minute_by_minute_model(s: Scenario) -> None:
    expected = simulate(s.naive, s.until)
    state = full_run(s).state
    assert dict(state.grant_balances) == expected.balances
    assert state.overage == expected.overage
    assert state.period_usage == expected.period_usage
    assert state.period_grant_usage == expected.period_grant_usage
    assert state.period_start == expected.period_start


@PROPERTY_SETTINGS
@given(scenarios())
def test_every_unit_of_usage_is_burnt_from_a_grant_or_is_overage(s: Scenario) -> None:
    result = full_run(s)
    for seg in result.segments:
        burnt = sum((u.usage for u in seg.grant_usages), Decimal(0))
        assert seg.usage + seg.overage_at_start == burnt + seg.overage
        assert seg.balance_at_end == seg.balance_at_start - burnt
    usage_segments = [seg for seg in result.segments if seg.kind is SegmentKind.USAGE]
    assert sum((seg.usage for seg in usage_segments), Decimal(0)) == s.total_usage(T0, s.until)
    # The segments tile the run without gaps or overlaps.
    cursor = T0
    for seg in usage_segments:
        assert seg.period.start == cursor
        cursor = seg.period.end
    assert cursor == s.until or not usage_segments


@PROPERTY_SETTINGS
@given(scenarios())
def test_no_balance_below_zero_and_no_burn_from_an_inactive_grant(s: Scenario) -> None:
    result = full_run(
        s, observe=[minute(k) for k in range(0, s.horizon + 1, 17) if minute(k) <= s.until]
    )
    for seg in result.segments:
        for grant_id, balance in {
            **seg.grant_balances_at_start,
            **seg.grant_balances_at_end,
        }.items():
            assert balance >= 0
            assert s.grant(grant_id).active_at(seg.period.start)
        for used in seg.grant_usages:
            assert used.usage > 0
            assert s.grant(used.grant_id).active_at(seg.period.start)
            if seg.period.end > seg.period.start:
                last_minute = seg.period.end - timedelta(minutes=1)
                assert s.grant(used.grant_id).active_at(last_minute)
    for state in [*result.observed.values(), result.state]:
        for grant_id, balance in state.grant_balances.items():
            assert balance >= 0
            assert s.grant(grant_id).active_at(state.at)
        assert state.overage >= 0
        # Carried overage is paid at once from any balance that appears.
        assert state.overage == 0 or state.balance == 0


@PROPERTY_SETTINGS
@given(scenarios())
def test_burn_order_is_priority_then_expiry_then_creation(s: Scenario) -> None:
    order = [g.id for g in sorted(s.grants, key=lambda g: g.burn_order_key)]
    for seg in full_run(s).segments:
        used_ids = [u.grant_id for u in seg.grant_usages]
        # Reported in burn order ...
        assert used_ids == sorted(used_ids, key=order.index)
        # ... and a grant is only burnt once every grant before it is empty.
        for used in used_ids:
            for earlier in order[: order.index(used)]:
                if earlier in seg.grant_balances_at_end:
                    assert seg.grant_balances_at_end[earlier] == 0


@PROPERTY_SETTINGS
@given(scenarios(), st.data())
def test_split_at_any_minute_and_resume_gives_the_same_result(
    s: Scenario, data: st.DataObject
) -> None:
    whole = full_run(s)
    split = minute(
        data.draw(st.integers(min_value=0, max_value=int((s.until - T0).total_seconds()) // 60))
    )
    first = full_run(s, until=split)
    # The checkpoint goes through a rebuild, as it would through a database row.
    saved = first.state
    checkpoint = EngineState(
        at=saved.at,
        grant_balances=dict(saved.grant_balances),
        overage=saved.overage,
        period_usage=saved.period_usage,
        period_grant_usage=saved.period_grant_usage,
        period_start=saved.period_start,
    )
    resumed = run(s.terms, s.grants, checkpoint, s.until, s.usage)
    assert_same_state(resumed.state, whole.state)
    if split < s.until:  # a zero-length run has no "before": it starts after `until`'s events
        assert_same_state(resumed.state_before_until, whole.state_before_until)


@PROPERTY_SETTINGS
@given(scenarios(), st.lists(st.integers(min_value=0, max_value=1200), max_size=25))
def test_extra_observe_cuts_change_nothing_for_additive_usage(
    s: Scenario, offsets: list[int]
) -> None:
    points = [minute(k) for k in offsets if minute(k) <= s.until]
    plain = full_run(s)
    observed = full_run(s, observe=points)
    assert_same_state(plain.state, observed.state)
    assert plain.segments == observed.segments
    for p in points:
        # Each observed state is what a run stopping there would end with.
        assert_same_state(observed.observed[p], full_run(s, until=p).state)


@PROPERTY_SETTINGS
@given(scenarios())
def test_resets_bound_balances_by_the_rollover_rule(s: Scenario) -> None:
    result = full_run(s)
    previous_end: dict[str, Decimal] = {}
    for seg in result.segments:
        if seg.kind is SegmentKind.ROLLOVER:
            for grant_id, rolled in seg.grant_balances_at_start.items():
                g = s.grant(grant_id)
                assert rolled <= g.max_rollover_amount
                assert rolled == g.rollover(previous_end[grant_id])
        previous_end = dict(seg.grant_balances_at_end)


@PROPERTY_SETTINGS
@given(scenarios(), st.lists(st.integers(min_value=0, max_value=1200), max_size=5))
def test_plan_lists_exactly_the_windows_the_run_asks_for(s: Scenario, offsets: list[int]) -> None:
    points = [minute(k) for k in offsets if minute(k) <= s.until]
    start = initial_state(s.terms, s.grants)
    asked: list[UsageWindow] = []

    def recording(window: UsageWindow) -> Decimal:
        asked.append(window)
        return s.usage(window)

    planned = plan_usage_windows(s.terms, s.grants, start, s.until, points)
    run(s.terms, s.grants, start, s.until, recording, points)
    assert asked == planned
    # Windows never overlap and never start before measurement.
    for a, b in itertools.pairwise(planned):
        assert a.end <= b.start
    assert all(w.start >= T0 for w in planned)


@PROPERTY_SETTINGS
@given(scenarios(), st.lists(st.integers(min_value=0, max_value=1200), max_size=8))
def test_latest_mode_observe_points_are_reads_that_change_nothing(
    s: Scenario, offsets: list[int]
) -> None:
    latest_terms = MeteredTerms(s.terms.timeline, usage_mode=UsageMode.LATEST)
    start = initial_state(latest_terms, s.grants)
    points = [minute(k) for k in offsets if minute(k) <= s.until]

    def latest(window: UsageWindow) -> Decimal:
        lo = bisect.bisect_left(s._times, window.start)
        hi = bisect.bisect_left(s._times, window.end)
        return s._values[hi - 1] if hi > lo else Decimal(0)

    plain = run(latest_terms, s.grants, start, s.until, latest)
    observed = run(latest_terms, s.grants, start, s.until, latest, points)
    assert_same_state(plain.state, observed.state)
    for p in points:
        read = run(latest_terms, s.grants, start, p, latest)
        assert_same_state(observed.observed[p], read.state)
        # Limits: a grant's balance is its amount minus at most the latest value.
        for grant_id, balance in read.state.grant_balances.items():
            assert 0 <= balance <= s.grant(grant_id).amount
