"""Small typed factories for engine tests: instants, grants, terms, usage as events."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from allotment.domain.burn import (
    EngineRun,
    EngineState,
    MeteredTerms,
    UsageMode,
    UsageWindow,
    initial_state,
    plan_usage_windows,
    run,
)
from allotment.domain.grants import Grant
from allotment.domain.periods import Interval, Recurrence
from allotment.domain.usage_periods import ManualReset, UsagePeriodTimeline

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(
    days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0, base: datetime = T0
) -> datetime:
    return base + timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def D(value: str | int) -> Decimal:
    return Decimal(value)


def grant(
    grant_id: str,
    amount: str | int | Decimal,
    *,
    priority: int = 1,
    effective_at: datetime = T0,
    expires_at: datetime | None = None,
    voided_at: datetime | None = None,
    created_at: datetime | None = None,
    min_rollover: str | int | Decimal = 0,
    max_rollover: str | int | Decimal = 0,
    recurrence: Recurrence | None = None,
) -> Grant:
    return Grant(
        id=grant_id,
        amount=Decimal(amount),
        priority=priority,
        effective_at=effective_at,
        created_at=created_at if created_at is not None else effective_at,
        expires_at=expires_at,
        voided_at=voided_at,
        min_rollover_amount=Decimal(min_rollover),
        max_rollover_amount=Decimal(max_rollover),
        recurrence=recurrence,
    )


def every(interval: str, anchor: datetime = T0) -> Recurrence:
    return Recurrence(Interval.parse(interval), anchor)


def terms(
    interval: str = "MONTH",
    *,
    anchor: datetime = T0,
    measure_from: datetime = T0,
    resets: Sequence[ManualReset] = (),
    preserve_overage: bool = False,
    mode: UsageMode = UsageMode.ADDITIVE,
    soft: bool = False,
) -> MeteredTerms:
    timeline = UsagePeriodTimeline(measure_from, every(interval, anchor), tuple(resets))
    return MeteredTerms(
        timeline=timeline,
        preserve_overage_at_reset=preserve_overage,
        usage_mode=mode,
        is_soft_limit=soft,
    )


@dataclass
class Events:
    """Usage as timed events; SUM over `[start, end)` (or LATEST: the last value in it)."""

    items: list[tuple[datetime, Decimal]] = field(default_factory=list)

    def add(self, t: datetime, amount: str | int | Decimal) -> Events:
        self.items.append((t, Decimal(amount)))
        self.items.sort(key=lambda item: item[0])
        return self

    def _range(self, start: datetime, end: datetime) -> list[tuple[datetime, Decimal]]:
        times = [t for t, _ in self.items]
        lo = bisect.bisect_left(times, start)
        hi = bisect.bisect_left(times, end)
        return self.items[lo:hi]

    def sum(self, window: UsageWindow) -> Decimal:
        return sum((v for _, v in self._range(window.start, window.end)), Decimal(0))

    def latest(self, window: UsageWindow) -> Decimal:
        found = self._range(window.start, window.end)
        return found[-1][1] if found else Decimal(0)


def run_from_start(
    t: MeteredTerms,
    grants: Sequence[Grant],
    until: datetime,
    usage: Events,
    observe: Iterable[datetime] = (),
    start: EngineState | None = None,
) -> EngineRun:
    """Plan, fetch as a mapping (as the service will), run."""
    first = start if start is not None else initial_state(t, grants)
    points = list(observe)
    source = usage.latest if t.usage_mode is UsageMode.LATEST else usage.sum
    table = {w: source(w) for w in plan_usage_windows(t, grants, first, until, points)}
    return run(t, grants, first, until, table, points)
