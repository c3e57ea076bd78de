"""The overview a person sees first: how much there is, how much arrived today, and which
customers are closest to (or past) what they may use."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from allotment.domain.access import EntitlementValue
from allotment.domain.customers import Customer
from allotment.domain.entitlements import Entitlement, EntitlementFilter, EntitlementType
from allotment.domain.listing import Window
from allotment.services.context import ServiceContext
from allotment.services.entitlement_values import values_at

STANDINGS_CHECKED_MAX = 500
"""The most metered entitlements one overview computes balances for (one usage query each)."""


@dataclass(frozen=True)
class Counts:
    meters: int
    features: int
    customers: int
    entitlements: int
    events_today: int
    today_starts: datetime


@dataclass(frozen=True)
class Standing:
    """One metered entitlement's position against its allowance."""

    customer: Customer
    entitlement: Entitlement
    value: EntitlementValue

    @property
    def used_share(self) -> Decimal:
        """Usage over what was available this period: 1 means used up, above 1 is overage."""
        usage = self.value.usage or Decimal(0)
        available = self.value.total_available_grant_amount or Decimal(0)
        if available == 0:
            return Decimal(1) if usage > 0 or not self.value.has_access else Decimal(0)
        return usage / available

    @property
    def is_over(self) -> bool:
        return (self.value.overage or 0) > 0 or not self.value.has_access


@dataclass(frozen=True)
class Standings:
    closest: list[Standing]
    checked: int
    total: int


def counts(context: ServiceContext) -> Counts:
    now = context.clock()
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with context.database.unit_of_work() as uow:
        return Counts(
            meters=uow.counts.live_meters(),
            features=uow.counts.live_features(),
            customers=uow.counts.live_customers(),
            entitlements=uow.counts.active_entitlements(now),
            events_today=uow.counts.events_ingested_since(today),
            today_starts=today,
        )


def closest_to_limits(context: ServiceContext, limit: int = 10) -> Standings:
    """The metered entitlements active now with the largest share of their allowance used,
    over-limit ones first. Looks at the `STANDINGS_CHECKED_MAX` most recent ones at most."""
    now = context.clock()
    filters = EntitlementFilter(types=[EntitlementType.METERED], active_at=now)
    with context.database.unit_of_work() as uow:
        active, total = uow.entitlements.search(
            filters, window=Window(offset=0, limit=STANDINGS_CHECKED_MAX)
        )
        by_customer: dict[str, list[Entitlement]] = defaultdict(list)
        for entitlement in active:
            by_customer[entitlement.customer_id].append(entitlement)
        owners = uow.customers.get_many(by_customer)
        standings: list[Standing] = []
        for customer_id, entitlements in by_customer.items():
            customer = owners[customer_id]
            values = values_at(uow, customer, entitlements, now)
            standings.extend(Standing(customer, e, values[e.id]) for e in entitlements)
    standings.sort(key=lambda s: (not s.is_over, -s.used_share, s.customer.name))
    return Standings(closest=standings[:limit], checked=len(active), total=total)
