"""A deliberately naive model of the credit rules: one minute at a time, no cleverness.

It shares no code with the engine: intervals are fixed numbers of minutes, boundaries are found
by modular arithmetic, the burn order is written out again, and every minute is simulated. The
property tests check the engine against it on random scenarios.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

ONE_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class NaiveGrant:
    id: str
    amount: Decimal
    priority: int
    effective: datetime
    created: datetime
    expires: datetime | None = None
    voided: datetime | None = None
    min_rollover: Decimal = Decimal(0)
    max_rollover: Decimal = Decimal(0)
    recurrence_anchor: datetime | None = None
    recurrence_minutes: int | None = None

    def active(self, m: datetime) -> bool:
        ends = [t for t in (self.expires, self.voided) if t is not None]
        return self.effective <= m and (not ends or m < min(ends))

    def order(self) -> tuple[object, ...]:
        expiry: tuple[object, ...] = (0, self.expires) if self.expires is not None else (1,)
        return (self.priority, expiry, self.created, self.id)


@dataclass(frozen=True)
class NaiveReset:
    at: datetime
    retain_anchor: bool
    preserve_overage: bool


@dataclass
class NaiveScenario:
    start: datetime
    period_minutes: int
    period_anchor: datetime
    grants: list[NaiveGrant]
    usage: dict[datetime, Decimal]
    resets: list[NaiveReset] = field(default_factory=list)
    preserve_default: bool = False

    def anchors(self) -> list[tuple[datetime, datetime]]:
        """(from, anchor) for measurement start and each manual reset."""
        entries = [(self.start, self.period_anchor)]
        for r in self.resets:
            entries.append((r.at, entries[-1][1] if r.retain_anchor else r.at))
        return entries


@dataclass
class NaiveResult:
    balances: dict[str, Decimal]
    overage: Decimal
    period_usage: Decimal
    period_grant_usage: Decimal
    period_start: datetime
    burnt: dict[str, Decimal]


def _on_grid(anchor: datetime, minutes: int, m: datetime) -> bool:
    offset = int((m - anchor).total_seconds()) // 60
    return offset % minutes == 0


def simulate(s: NaiveScenario, until: datetime) -> NaiveResult:
    ordered = sorted(s.grants, key=NaiveGrant.order)
    by_id = {g.id: g for g in s.grants}
    entries = s.anchors()
    manual = {r.at: r for r in s.resets}
    balances = {g.id: g.amount for g in ordered if g.active(s.start)}
    overage = Decimal(0)
    period_usage = Decimal(0)
    period_grant_usage = Decimal(0)
    period_start = s.start
    burnt: dict[str, Decimal] = {}

    def burn(amount: Decimal) -> Decimal:
        remaining = amount
        for g in ordered:
            if remaining <= 0:
                break
            if g.id not in balances or balances[g.id] <= 0:
                continue
            take = min(balances[g.id], remaining)
            balances[g.id] -= take
            burnt[g.id] = burnt.get(g.id, Decimal(0)) + take
            remaining -= take
        return remaining

    m = s.start
    while True:
        if m > s.start:
            for gid in list(balances):
                if not by_id[gid].active(m):
                    del balances[gid]
            entry_from, entry_anchor = [e for e in entries if e[0] <= m][-1]
            reset = manual.get(m)
            automatic = entry_from < m and _on_grid(entry_anchor, s.period_minutes, m)
            if reset is not None or automatic:
                for gid in balances:
                    g = by_id[gid]
                    balances[gid] = min(g.max_rollover, max(balances[gid], g.min_rollover))
                preserve = reset.preserve_overage if reset is not None else s.preserve_default
                carried = overage if preserve else Decimal(0)
                overage = burn(carried)
                period_usage = Decimal(0)
                period_grant_usage = carried - overage
                period_start = m
            for g in ordered:
                if (
                    g.recurrence_anchor is not None
                    and g.recurrence_minutes is not None
                    and g.active(m)
                    and _on_grid(g.recurrence_anchor, g.recurrence_minutes, m)
                ):
                    balances[g.id] = g.amount
            for g in ordered:
                if g.effective == m and g.active(m):
                    balances[g.id] = g.amount
            before = overage
            overage = burn(overage)
            period_grant_usage += before - overage
        if m >= until:
            break
        used = s.usage.get(m, Decimal(0))
        before = overage
        overage = burn(used + overage)
        period_usage += used
        period_grant_usage += used + before - overage
        m += ONE_MINUTE
    return NaiveResult(
        balances=dict(balances),
        overage=overage,
        period_usage=period_usage,
        period_grant_usage=period_grant_usage,
        period_start=period_start,
        burnt=burnt,
    )
