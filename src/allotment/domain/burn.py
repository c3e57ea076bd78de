"""The burn-down engine: grants, usage, overage and resets over a cut timeline.

What must hold (README.md has the prose and a worked example for each rule):

- The timeline from a start state to `until` is cut at every grant start, expiry, void, grant
  recurrence and reset (automatic and manual): the *natural* cuts. Between two cuts the set of
  active grants and their burn order cannot change.
- Each segment burns its usage plus the overage carried into it through the active grants in burn
  order; what no grant covers is overage, carried forward inside the usage period.
- At a natural cut, in this order: grants whose window ended drop out (their balance is lost);
  a reset rolls every grant still active over (`min(max, max(balance, min))`), burns the
  preserved overage (if preserved) from the rolled-over balances, and zeroes the period counters;
  recurring grants refill to `amount`; grants starting there join at `amount`; then any carried
  overage is burnt at once from the new balances, so a state never shows both overage and a
  positive balance.
- An `EngineState` at instant `t` is the state after everything that happens at `t`, so a value
  read at a reset instant already shows the new period, and a run can resume from any state.
- Additive usage (SUM, COUNT, UNIQUE_COUNT) makes extra cuts harmless: burning `a` then `b` equals
  burning `a + b` when nothing else changes. That is why a run may be split at any minute and
  resumed, and why `observe` points never change a result.
- LATEST usage is different: grants are limits, restored to `amount` at the start of every
  segment, and a segment's usage is the latest value in it; an `observe` point inside a segment
  is a read ("peek") that does not split it.

Usage is data, never fetched: the caller plans the windows (`plan_usage_windows`), fetches them in
one query, and passes a mapping or a function to `run`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Context, Decimal, Inexact, InvalidOperation, localcontext
from enum import StrEnum
from types import MappingProxyType

from allotment.domain.grants import Grant, as_decimal
from allotment.domain.periods import Period
from allotment.domain.time import require_minute
from allotment.domain.usage_periods import ResetPoint, UsagePeriodTimeline
from allotment.errors import InvalidInput

ZERO = Decimal(0)

# Additions, subtractions, min and max of Decimals are exact given enough digits; 60 significant
# digits is far beyond any real amount, and trapping Inexact turns a silent rounding into an
# error instead of a wrong balance.
_ENGINE_CONTEXT = Context(prec=60, traps=[Inexact, InvalidOperation])


class UsageMode(StrEnum):
    """How a meter's values become usage in the engine."""

    ADDITIVE = "additive"
    """SUM, COUNT, UNIQUE_COUNT: a window's usage adds up; grants are budgets."""
    LATEST = "latest"
    """LATEST: a segment's usage is the latest value in it; grants are limits."""

    @classmethod
    def for_aggregation(cls, aggregation: str) -> UsageMode:
        """The mode for a meter aggregation; AVG, MIN and MAX cannot back an entitlement."""
        name = aggregation.strip().upper()
        if name in ("SUM", "COUNT", "UNIQUE_COUNT"):
            return cls.ADDITIVE
        if name == "LATEST":
            return cls.LATEST
        raise InvalidInput(
            f"a metered entitlement needs a SUM, COUNT, UNIQUE_COUNT or LATEST meter, "
            f"not {aggregation}",
            field="meterSlug",
        )


@dataclass(frozen=True)
class MeteredTerms:
    """Everything about a metered entitlement the engine needs, apart from its grants."""

    timeline: UsagePeriodTimeline
    preserve_overage_at_reset: bool = False
    usage_mode: UsageMode = UsageMode.ADDITIVE
    is_soft_limit: bool = False


@dataclass(frozen=True)
class UsageWindow:
    """A request for usage in `[start, end)`.

    `period_start` is the start of the usage period containing `start`. ADDITIVE callers use
    it for UNIQUE_COUNT only: usage = uniq(period_start, end) - uniq(period_start, start), so a
    value seen in two windows of one period counts once. LATEST callers return the latest value
    in `[start, end)`.
    """

    start: datetime
    end: datetime
    period_start: datetime


UsageSource = Callable[[UsageWindow], Decimal] | Mapping[UsageWindow, Decimal]
"""Usage given as data: a function of a window, or a mapping of the planned windows."""


def _frozen_balances(balances: Mapping[str, Decimal]) -> Mapping[str, Decimal]:
    return MappingProxyType(dict(balances))


@dataclass(frozen=True, kw_only=True)
class EngineState:
    """The credit state of one entitlement right after everything that happens at `at`.

    `grant_balances` holds exactly the grants active at `at`. `overage` is usage no grant
    covered, still outstanding. `period_usage` is the usage since `period_start` (the start of
    the usage period containing `at`); `period_grant_usage` is what grants absorbed in that
    period, including preserved overage burnt at its reset (with the balance it gives
    totalAvailableGrantAmount). A state is a complete checkpoint: a run from it equals a run from
    measurement start.
    """

    at: datetime
    grant_balances: Mapping[str, Decimal]
    overage: Decimal
    period_usage: Decimal
    period_grant_usage: Decimal
    period_start: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", require_minute(self.at, "state.at"))
        object.__setattr__(
            self, "period_start", require_minute(self.period_start, "state.period_start")
        )
        object.__setattr__(
            self,
            "grant_balances",
            _frozen_balances(
                {k: as_decimal(v, f"balance of {k}") for k, v in self.grant_balances.items()}
            ),
        )
        for name in ("overage", "period_usage", "period_grant_usage"):
            object.__setattr__(self, name, as_decimal(getattr(self, name), name))

    @classmethod
    def _of_engine(
        cls,
        *,
        at: datetime,
        grant_balances: Mapping[str, Decimal],
        overage: Decimal,
        period_usage: Decimal,
        period_grant_usage: Decimal,
        period_start: datetime,
    ) -> EngineState:
        """A state of values the engine computed from checked ones (minute-aligned UTC
        instants, finite Decimals), so not checked again: a read of 100 features built 500
        states, and their checks were a tenth of its time."""
        state = object.__new__(cls)
        for name, value in (
            ("at", at),
            ("grant_balances", _frozen_balances(grant_balances)),
            ("overage", overage),
            ("period_usage", period_usage),
            ("period_grant_usage", period_grant_usage),
            ("period_start", period_start),
        ):
            object.__setattr__(state, name, value)
        return state

    @property
    def balance(self) -> Decimal:
        """Sum of the balances of the grants active at `at` (never negative)."""
        return sum(self.grant_balances.values(), ZERO)

    @property
    def total_available_grant_amount(self) -> Decimal:
        """What grants made available in this period: burnt so far plus what is left."""
        return self.period_grant_usage + self.balance


class SegmentKind(StrEnum):
    USAGE = "usage"
    """A stretch of time in which usage burns the active grants."""
    ROLLOVER = "rollover"
    """A zero-length segment at a reset: rolled-over balances and preserved-overage burn."""


@dataclass(frozen=True)
class GrantUsage:
    grant_id: str
    usage: Decimal


@dataclass(frozen=True)
class Segment:
    """One line of the burn-down history.

    `balance_at_start` is the sum of `grant_balances_at_start` (carried overage is reported
    separately in `overage_at_start`, not subtracted); `grant_usages` lists, in burn order, what
    each grant absorbed (carried overage included); `overage` is the overage at the end.
    `usage + overage_at_start == sum(grant_usages) + overage` always holds.
    """

    period: Period
    kind: SegmentKind
    usage: Decimal
    overage_at_start: Decimal
    overage: Decimal
    balance_at_start: Decimal
    grant_balances_at_start: Mapping[str, Decimal]
    grant_usages: tuple[GrantUsage, ...]
    balance_at_end: Decimal
    grant_balances_at_end: Mapping[str, Decimal]


@dataclass(frozen=True)
class EngineRun:
    """The result of `run`.

    `state` is the state at `until` (checkpointable, except for LATEST when `until` is not a
    natural cut); `state_before_until` is the state at `until` before the things that happen
    exactly at `until` (resets, grant changes) — a read at a sub-minute time uses it, because
    the instant it rounds up to has not happened yet. `observed` maps each observe point to the
    state there; `usage_by_window` lists every window asked for, in order, with its usage.
    """

    start: EngineState
    state: EngineState
    state_before_until: EngineState
    segments: tuple[Segment, ...]
    observed: Mapping[datetime, EngineState]
    usage_by_window: tuple[tuple[UsageWindow, Decimal], ...]


# -- planning ---------------------------------------------------------------------------------


@dataclass
class _Cut:
    at: datetime
    natural: bool = False
    observe: bool = False
    last: bool = False
    reset: ResetPoint | None = None
    recurring: list[Grant] = field(default_factory=list)
    starting: list[Grant] = field(default_factory=list)


@dataclass(frozen=True)
class _Step:
    cut: _Cut
    window: UsageWindow
    peek: bool  # LATEST only: a read inside a segment that does not close it


def _schedule(
    terms: MeteredTerms,
    grants: Sequence[Grant],
    start_at: datetime,
    until: datetime,
    observe: Iterable[datetime],
) -> list[_Cut]:
    """Every instant in `(start_at, until]` where the run must stop, in order."""
    if until <= start_at:
        return []
    cuts: dict[datetime, _Cut] = {}

    def cut_at(t: datetime) -> _Cut:
        found = cuts.get(t)
        if found is None:
            found = cuts[t] = _Cut(t)
        return found

    for grant in grants:
        end = grant.active_until
        if end is not None and end <= grant.effective_at:
            continue  # never active
        if start_at < grant.effective_at <= until:
            c = cut_at(grant.effective_at)
            c.natural = True
            c.starting.append(grant)
        if end is not None and start_at < end <= until:
            cut_at(end).natural = True
        for r in grant.recurrences_between(start_at, until):
            c = cut_at(r)
            c.natural = True
            c.recurring.append(grant)
    for reset in terms.timeline.resets_between(start_at, until):
        c = cut_at(reset.at)
        c.natural = True
        c.reset = reset
    for o in observe:
        if start_at < o <= until:
            cut_at(o).observe = True
    cut_at(until).last = True
    return [cuts[t] for t in sorted(cuts)]


def _steps(
    cuts: list[_Cut], start_at: datetime, period_start: datetime, mode: UsageMode
) -> list[_Step]:
    """The usage window each cut asks for (the single source of truth for plan and run)."""
    steps: list[_Step] = []
    segment_start = start_at
    window_start = start_at
    for c in cuts:
        closes = c.natural or c.last
        if mode is UsageMode.LATEST:
            steps.append(_Step(c, UsageWindow(segment_start, c.at, period_start), not closes))
        else:
            steps.append(_Step(c, UsageWindow(window_start, c.at, period_start), False))
        window_start = c.at
        if closes:
            segment_start = c.at
        if c.reset is not None:
            period_start = c.at
    return steps


def _normalise_observe(observe: Iterable[datetime]) -> list[datetime]:
    return sorted({require_minute(o, "observe point") for o in observe})


def plan_usage_windows(
    terms: MeteredTerms,
    grants: Sequence[Grant],
    start_state: EngineState,
    until: datetime,
    observe: Iterable[datetime] = (),
) -> list[UsageWindow]:
    """Exactly the windows `run` with the same arguments will ask usage for, in order.

    The windows depend only on the timeline, grants, start instant and observe points, never on
    usage, so the caller can fetch them all in one query before running.
    """
    return _plan(terms, grants, start_state.at, start_state.period_start, until, observe)


def plan_windows_from(
    terms: MeteredTerms,
    grants: Sequence[Grant],
    start_at: datetime,
    until: datetime,
    observe: Iterable[datetime] = (),
) -> list[UsageWindow]:
    """Like `plan_usage_windows`, for a run that will start at `start_at` from a state not yet
    computed (its period start is read off the timeline)."""
    start_u = require_minute(start_at, "start_at")
    period_start = terms.timeline.current_period_at(start_u).start
    return _plan(terms, grants, start_u, period_start, until, observe)


def _plan(
    terms: MeteredTerms,
    grants: Sequence[Grant],
    start_at: datetime,
    period_start: datetime,
    until: datetime,
    observe: Iterable[datetime],
) -> list[UsageWindow]:
    until_u = require_minute(until, "until")
    cuts = _schedule(terms, grants, start_at, until_u, _normalise_observe(observe))
    return [s.window for s in _steps(cuts, start_at, period_start, terms.usage_mode)]


# -- running ----------------------------------------------------------------------------------


def initial_state(terms: MeteredTerms, grants: Sequence[Grant]) -> EngineState:
    """The state at `measure_usage_from`: every grant active then at its full amount."""
    start = terms.timeline.measure_usage_from
    return EngineState(
        at=start,
        grant_balances={g.id: g.amount for g in grants if g.active_at(start)},
        overage=ZERO,
        period_usage=ZERO,
        period_grant_usage=ZERO,
        period_start=start,
    )


def usage_lookup(usage: UsageSource) -> Callable[[UsageWindow], Decimal]:
    """Turn either form of usage into a function; a window missing from a mapping is a
    ValueError naming the window (the caller planned the query wrong)."""
    if isinstance(usage, Mapping):
        table: Mapping[UsageWindow, Decimal] = usage

        def from_table(window: UsageWindow) -> Decimal:
            try:
                return table[window]
            except KeyError:
                raise ValueError(
                    f"no usage given for window [{window.start.isoformat()}, "
                    f"{window.end.isoformat()}); use plan_usage_windows to plan the query"
                ) from None

        return from_table
    return usage


class _Engine:
    """Mutable working state of one run; `run` is the only way in."""

    def __init__(
        self,
        terms: MeteredTerms,
        grants: Sequence[Grant],
        start: EngineState,
    ) -> None:
        self.terms = terms
        self.latest = terms.usage_mode is UsageMode.LATEST
        self.by_id: dict[str, Grant] = {}
        for g in grants:
            if g.id in self.by_id:
                raise ValueError(f"grant {g.id} given twice")
            self.by_id[g.id] = g
        self.order = sorted(grants, key=lambda g: g.burn_order_key)
        self.at = start.at
        self.overage = start.overage
        self.period_usage = start.period_usage
        self.period_grant_usage = start.period_grant_usage
        self.period_start = start.period_start
        self.balances: dict[str, Decimal] = {}
        self.active: list[Grant] = []
        self.segments: list[Segment] = []
        self._load(start)
        # The open segment.
        self.segment_start = self.at
        self.segment_balances_at_start: dict[str, Decimal] = {}
        self.segment_overage_at_start = ZERO
        self.segment_usage = ZERO
        self.segment_grant_usage: dict[str, Decimal] = {}

    def _load(self, start: EngineState) -> None:
        """Adopt a start state, checking it still fits the grants and the timeline."""
        timeline = self.terms.timeline
        if start.at < timeline.measure_usage_from:
            raise ValueError("a state cannot precede measureUsageFrom")
        expected_period_start = timeline.current_period_at(start.at).start
        if start.period_start != expected_period_start:
            raise ValueError(
                f"state at {start.at.isoformat()} belongs to a period starting "
                f"{start.period_start.isoformat()}, but the timeline says "
                f"{expected_period_start.isoformat()}: the checkpoint is stale"
            )
        for grant_id, balance in start.grant_balances.items():
            grant = self.by_id.get(grant_id)
            if grant is None:
                raise ValueError(f"state has a balance for unknown grant {grant_id}")
            if balance < 0:
                raise ValueError(f"state has a negative balance for grant {grant_id}")
            if grant.active_at(start.at):
                self.balances[grant_id] = balance
        for grant in self.order:
            if grant.active_at(start.at) and grant.id not in self.balances:
                # A grant starting exactly at the checkpoint joins at its amount (a checkpoint
                # is only invalidated by changes strictly before it); anything older means the
                # checkpoint missed a change and must not be used.
                if grant.effective_at != start.at and start.at != timeline.measure_usage_from:
                    raise ValueError(
                        f"grant {grant.id} was active before the state at "
                        f"{start.at.isoformat()} but has no balance in it: the checkpoint "
                        "is stale"
                    )
                self.balances[grant.id] = grant.amount
        self._refresh_active()

    # -- helpers ------------------------------------------------------------------------------

    def _refresh_active(self) -> None:
        self.active = [g for g in self.order if g.id in self.balances]

    def _burn(
        self, amount: Decimal, balances: dict[str, Decimal]
    ) -> tuple[Decimal, list[GrantUsage]]:
        """Take `amount` from `balances` in burn order; return what is left and who paid."""
        remaining = amount
        burnt: list[GrantUsage] = []
        for grant in self.active:
            if remaining <= 0:
                break
            balance = balances[grant.id]
            if balance <= 0:
                continue
            take = min(balance, remaining)
            balances[grant.id] = balance - take
            remaining -= take
            burnt.append(GrantUsage(grant.id, take))
        return remaining, burnt

    def state(self) -> EngineState:
        return EngineState._of_engine(
            at=self.at,
            grant_balances=self.balances,
            overage=self.overage,
            period_usage=self.period_usage,
            period_grant_usage=self.period_grant_usage,
            period_start=self.period_start,
        )

    def _record_burn(self, burnt: list[GrantUsage]) -> None:
        for item in burnt:
            self.segment_grant_usage[item.grant_id] = (
                self.segment_grant_usage.get(item.grant_id, ZERO) + item.usage
            )

    # -- segments -----------------------------------------------------------------------------

    def open_segment(self) -> None:
        """Start a segment at `self.at`; LATEST limits are restored here; carried overage is
        burnt at once from balances that appeared (it is reported in this segment)."""
        if self.latest:
            for grant in self.active:
                self.balances[grant.id] = grant.amount
            self.overage = ZERO
        self.segment_start = self.at
        self.segment_balances_at_start = dict(self.balances)
        self.segment_overage_at_start = self.overage
        self.segment_usage = ZERO
        self.segment_grant_usage = {}
        if self.overage > 0:
            before = self.overage
            self.overage, burnt = self._burn(self.overage, self.balances)
            self.period_grant_usage += before - self.overage
            self._record_burn(burnt)

    def close_segment(self, end: datetime, *, keep_empty: bool = True) -> None:
        if end == self.segment_start and not self.segment_grant_usage and not keep_empty:
            return
        usages = tuple(
            GrantUsage(g.id, self.segment_grant_usage[g.id])
            for g in self.order
            if self.segment_grant_usage.get(g.id, ZERO) > 0
        )
        self.segments.append(
            Segment(
                period=Period(self.segment_start, end),
                kind=SegmentKind.USAGE,
                usage=self.segment_usage,
                overage_at_start=self.segment_overage_at_start,
                overage=self.overage,
                balance_at_start=sum(self.segment_balances_at_start.values(), ZERO),
                grant_balances_at_start=_frozen_balances(self.segment_balances_at_start),
                grant_usages=usages,
                balance_at_end=sum(self.balances.values(), ZERO),
                grant_balances_at_end=_frozen_balances(self.balances),
            )
        )

    # -- time passing -------------------------------------------------------------------------

    def burn_window(self, usage: Decimal) -> None:
        """ADDITIVE: burn one window's usage (plus carried overage) into the open segment."""
        before = self.overage
        self.overage, burnt = self._burn(usage + self.overage, self.balances)
        self.segment_usage += usage
        self.period_usage += usage
        self.period_grant_usage += usage + before - self.overage
        self._record_burn(burnt)

    def burn_latest(self, latest: Decimal) -> None:
        """LATEST: the segment's usage is `latest`, measured against the limits at its start."""
        self.balances = dict(self.segment_balances_at_start)
        self.overage, burnt = self._burn(latest, self.balances)
        self.segment_usage = latest
        self.period_usage += latest
        self.period_grant_usage += latest - self.overage
        self.segment_grant_usage = {}
        self._record_burn(burnt)

    def peek_latest(self, at: datetime, latest: Decimal) -> EngineState:
        """LATEST: the state a read at `at` would see, without closing the segment."""
        balances = dict(self.segment_balances_at_start)
        overage, _ = self._burn(latest, balances)
        return EngineState._of_engine(
            at=at,
            grant_balances=balances,
            overage=overage,
            period_usage=self.period_usage + latest,
            period_grant_usage=self.period_grant_usage + latest - overage,
            period_start=self.period_start,
        )

    def apply_instant(self, c: _Cut) -> None:
        """Everything that happens at a natural cut, in the documented order."""
        at = c.at
        self.at = at
        for grant_id in [gid for gid in self.balances if not self.by_id[gid].active_at(at)]:
            del self.balances[grant_id]  # expired or voided: the rest of its balance is lost
        self._refresh_active()
        if c.reset is not None:
            self.apply_reset(c.reset)
        for grant in c.recurring:
            if grant.active_at(at):
                self.balances[grant.id] = grant.amount
        for grant in c.starting:
            if grant.active_at(at):
                self.balances[grant.id] = grant.amount
        self._refresh_active()

    def apply_reset(self, reset: ResetPoint) -> None:
        for grant in self.active:
            self.balances[grant.id] = grant.rollover(self.balances[grant.id])
        rolled = dict(self.balances)
        preserve = not self.latest and reset.preserves_overage(self.terms.preserve_overage_at_reset)
        preserved = self.overage if preserve else ZERO
        self.overage, burnt = self._burn(preserved, self.balances)
        self.segments.append(
            Segment(
                period=Period(reset.at, reset.at),
                kind=SegmentKind.ROLLOVER,
                usage=ZERO,
                overage_at_start=preserved,
                overage=self.overage,
                balance_at_start=sum(rolled.values(), ZERO),
                grant_balances_at_start=_frozen_balances(rolled),
                grant_usages=tuple(burnt),
                balance_at_end=sum(self.balances.values(), ZERO),
                grant_balances_at_end=_frozen_balances(self.balances),
            )
        )
        self.period_usage = ZERO
        self.period_grant_usage = preserved - self.overage
        self.period_start = reset.at


def clean_usage(value: Decimal | int, window: UsageWindow) -> Decimal:
    """Usage as an exact Decimal; a negative value (e.g. refunds in a SUM meter) counts as 0:
    usage never restores a grant's balance."""
    amount = as_decimal(value, f"usage for [{window.start.isoformat()}, {window.end.isoformat()})")
    return amount if amount > 0 else ZERO


def run(
    terms: MeteredTerms,
    grants: Sequence[Grant],
    start_state: EngineState,
    until: datetime,
    usage: UsageSource,
    observe: Iterable[datetime] = (),
) -> EngineRun:
    """Burn usage from `start_state` up to and including everything that happens at `until`.

    `grants` must include every grant of the entitlement that may matter after
    `start_state.at` and every grant the state has a balance for (passing all of them is
    always right). `observe` points in `[start_state.at, until]` (minute-aligned) get their
    state recorded in `EngineRun.observed`. Raises ValueError for inconsistent inputs (a stale
    checkpoint, a missing usage window, misaligned instants).
    """
    until_u = require_minute(until, "until")
    if until_u < start_state.at:
        raise ValueError("until is before the start state")
    points = _normalise_observe(observe)
    for o in points:
        if not start_state.at <= o <= until_u:
            raise ValueError(f"observe point {o.isoformat()} is outside the run")
    lookup = usage_lookup(usage)
    with localcontext(_ENGINE_CONTEXT):
        engine = _Engine(terms, grants, start_state)
        engine.open_segment()
        start = engine.state()
        observed: dict[datetime, EngineState] = {}
        if points and points[0] == start.at:
            observed[start.at] = start
        cuts = _schedule(terms, grants, start.at, until_u, points)
        steps = _steps(cuts, start.at, start.period_start, terms.usage_mode)
        asked: list[tuple[UsageWindow, Decimal]] = []
        before_until = start
        for step in steps:
            c = step.cut
            value = clean_usage(lookup(step.window), step.window)
            asked.append((step.window, value))
            if step.peek:
                observed[c.at] = engine.peek_latest(c.at, value)
                continue
            if engine.latest:
                engine.burn_latest(value)
            else:
                engine.burn_window(value)
            engine.at = c.at
            if c.last:
                before_until = engine.state()
            if c.natural:
                engine.close_segment(c.at)
                engine.apply_instant(c)
                engine.open_segment()
            elif c.last:
                engine.close_segment(c.at)
            if c.observe:
                observed[c.at] = engine.state()
        if not cuts or cuts[-1].natural:
            # The segment opened at `until` is empty but for a carried-overage burn at that
            # very instant; report it only if there was one.
            engine.close_segment(until_u, keep_empty=False)
        final = engine.state()
        return EngineRun(
            start=start,
            state=final,
            state_before_until=before_until,
            segments=tuple(engine.segments),
            observed=MappingProxyType(observed),
            usage_by_window=tuple(asked),
        )
