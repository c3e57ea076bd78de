"""The value of an entitlement at an instant: boolean, static and metered.

- Outside its active window `[active_from, active_to)` an entitlement gives `hasAccess: false`
  and nothing else, whatever its type.
- boolean: `hasAccess: true`. static: `hasAccess: true` and the config string, unchanged.
- metered: read at `ceil_to_minute(at)`, so the usage of the minute `at` falls in counts;
  `balance` is the sum of the balances of the grants active then, `usage` the period usage,
  `overage` what no grant covered, `totalAvailableGrantAmount` = what grants absorbed this
  period + balance, `hasAccess` = soft limit or balance > 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType

from allotment.domain.burn import (
    EngineRun,
    EngineState,
    MeteredTerms,
    UsageSource,
    UsageWindow,
    initial_state,
    plan_usage_windows,
    run,
)
from allotment.domain.grants import Grant
from allotment.domain.time import ceil_to_minute, ensure_utc, is_minute_aligned, truncate_to_minute


@dataclass(frozen=True)
class EntitlementValue:
    """What GET .../value returns; None marks a field that does not apply to the type."""

    has_access: bool
    balance: Decimal | None = None
    usage: Decimal | None = None
    overage: Decimal | None = None
    total_available_grant_amount: Decimal | None = None
    config: str | None = None
    grant_balances: Mapping[str, Decimal] | None = None


NO_ACCESS = EntitlementValue(has_access=False)
"""The value of an entitlement that is not active at the instant asked about."""


def is_active(active_from: datetime, active_to: datetime | None, at: datetime) -> bool:
    """True on `[active_from, active_to)`; pass `active_to = min(activeTo, deletedAt)`.

    An entitlement whose `active_from == active_to` is never active.
    """
    t = ensure_utc(at)
    if t < ensure_utc(active_from):
        return False
    return active_to is None or t < ensure_utc(active_to)


def boolean_value(
    active_from: datetime, active_to: datetime | None, at: datetime
) -> EntitlementValue:
    """A boolean entitlement grants access exactly while it is active."""
    return EntitlementValue(has_access=True) if is_active(active_from, active_to, at) else NO_ACCESS


def static_value(
    config: str, active_from: datetime, active_to: datetime | None, at: datetime
) -> EntitlementValue:
    """A static entitlement grants access and hands back its config string unchanged."""
    if not is_active(active_from, active_to, at):
        return NO_ACCESS
    return EntitlementValue(has_access=True, config=config)


def read_instant(at: datetime) -> datetime:
    """The minute a metered read at `at` is computed at (rounded up)."""
    return ceil_to_minute(at)


def _start_for_read(
    terms: MeteredTerms, grants: Sequence[Grant], at: datetime, start_state: EngineState | None
) -> EngineState:
    start = start_state if start_state is not None else initial_state(terms, grants)
    if start.at > truncate_to_minute(at):
        raise ValueError(
            f"start state at {start.at.isoformat()} is after the read at {at.isoformat()}"
        )
    return start


def plan_metered_read(
    terms: MeteredTerms,
    grants: Sequence[Grant],
    at: datetime,
    start_state: EngineState | None = None,
    observe: Iterable[datetime] = (),
) -> list[UsageWindow]:
    """The usage windows `metered_value` with the same arguments will ask for."""
    t = ensure_utc(at)
    if t < terms.timeline.measure_usage_from:
        return []
    start = _start_for_read(terms, grants, t, start_state)
    return plan_usage_windows(terms, grants, start, read_instant(t), observe)


def metered_value(
    terms: MeteredTerms,
    grants: Sequence[Grant],
    at: datetime,
    usage: UsageSource,
    start_state: EngineState | None = None,
    observe: Iterable[datetime] = (),
) -> tuple[EntitlementValue, EngineRun]:
    """The value of an active metered entitlement at `at` (check `is_active` first).

    Runs the engine from `start_state` (a checkpoint at or before `at`, default: measurement
    start) to `ceil_to_minute(at)`. At a minute-aligned `at`, everything that happens at `at`
    (a reset, a grant starting) is already in the value; at a sub-minute `at` the usage up to the
    next minute counts but that minute's own changes have not happened yet. Before
    `measure_usage_from` nothing has been measured: balance of the grants active then, usage 0,
    and the returned run is the empty run at measurement start. `observe` asks the run to
    record states (e.g. the instant `snapshots.checkpoint_instant` chose, to save it).
    """
    t = ensure_utc(at)
    timeline = terms.timeline
    if t < timeline.measure_usage_from:
        balances = {g.id: g.amount for g in grants if g.active_at(truncate_to_minute(t))}
        balance = sum(balances.values(), Decimal(0))
        first = initial_state(terms, grants)
        empty_run = EngineRun(
            start=first,
            state=first,
            state_before_until=first,
            segments=(),
            observed=MappingProxyType({}),
            usage_by_window=(),
        )
        value = EntitlementValue(
            has_access=terms.is_soft_limit or balance > 0,
            balance=balance,
            usage=Decimal(0),
            overage=Decimal(0),
            total_available_grant_amount=balance,
            grant_balances=MappingProxyType(balances),
        )
        return value, empty_run
    start = _start_for_read(terms, grants, t, start_state)
    engine_run = run(terms, grants, start, read_instant(t), usage, observe)
    state = engine_run.state if is_minute_aligned(t) else engine_run.state_before_until
    return value_from_state(terms, state), engine_run


def value_from_state(terms: MeteredTerms, state: EngineState) -> EntitlementValue:
    """The metered value a state shows."""
    balance = state.balance
    return EntitlementValue(
        has_access=terms.is_soft_limit or balance > 0,
        balance=balance,
        usage=state.period_usage,
        overage=state.overage,
        total_available_grant_amount=state.total_available_grant_amount,
        grant_balances=state.grant_balances,
    )
