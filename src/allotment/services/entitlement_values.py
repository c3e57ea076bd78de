"""Check access: the value of one entitlement, or of all a customer's entitlements, at a time.

A read never writes. The time asked about (default now) decides which entitlement a feature key
names: the one active then, so a deleted or overridden entitlement still answers for earlier
times. A feature the owner has no entitlement for answers `hasAccess: false`, not 404.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from allotment.domain.access import (
    NO_ACCESS,
    EntitlementValue,
    boolean_value,
    metered_value,
    plan_metered_read,
    static_value,
)
from allotment.domain.customers import Customer
from allotment.domain.entitlements import Entitlement, EntitlementType
from allotment.domain.instants import checked_instant
from allotment.errors import NotFound
from allotment.ids import is_ulid
from allotment.services.context import ServiceContext
from allotment.services.customers import resolve_customer
from allotment.services.entitlement_owners import (
    ENTITLEMENT_FIELD,
    Owner,
    find_entitlement,
    find_owner,
)
from allotment.services.metered_inputs import metered_inputs, usage_in
from allotment.storage import UnitOfWork


def entitlement_value(
    context: ServiceContext, owner: Owner, id_or_feature_key: str, at: datetime | None = None
) -> EntitlementValue:
    """The value of the owner's entitlement (by id, or by feature key) at `at` (default now).

    No entitlement for the feature at that time, or a subject that belongs to no customer, is
    `hasAccess: false`; an id-shaped value that names no entitlement of the owner is NotFound
    (ids are never feature keys). Raises NotFound for an unknown owner.
    """
    t = checked_instant(at or context.clock(), "time")
    with context.database.unit_of_work() as uow:
        customer = find_owner(uow, owner)
        if customer is None:
            return NO_ACCESS
        entitlement = find_entitlement(uow, customer, id_or_feature_key, at=t)
        if entitlement is None:
            if is_ulid(id_or_feature_key):
                raise NotFound(
                    f"entitlement not found: {id_or_feature_key}", field=ENTITLEMENT_FIELD
                )
            return NO_ACCESS
        return values_at(uow, customer, [entitlement], t)[entitlement.id]


def customer_access(
    context: ServiceContext, customer_id_or_key: str, at: datetime | None = None
) -> dict[str, EntitlementValue]:
    """Every entitlement the customer holds at `at` (default now), by feature key."""
    t = checked_instant(at or context.clock(), "time")
    with context.database.unit_of_work() as uow:
        customer = resolve_customer(uow, customer_id_or_key)
        active = uow.entitlements.active_for_customer(customer.id, t)
        values = values_at(uow, customer, active, t)
        return {e.feature_key: values[e.id] for e in active}


def values_at(
    uow: UnitOfWork, customer: Customer, entitlements: Sequence[Entitlement], at: datetime
) -> dict[str, EntitlementValue]:
    """The value of each of the customer's `entitlements` at `at`, by entitlement id.

    Metered ones share one query for grants and one for resets, then one usage query each.
    """
    inputs = metered_inputs(
        uow, customer, [e for e in entitlements if e.active_at(at) and e.is_metered]
    )
    result: dict[str, EntitlementValue] = {}
    for entitlement in entitlements:
        ends = entitlement.ends_at
        if entitlement.type is EntitlementType.BOOLEAN:
            result[entitlement.id] = boolean_value(entitlement.active_from, ends, at)
        elif entitlement.type is EntitlementType.STATIC:
            result[entitlement.id] = static_value(
                entitlement.config or "", entitlement.active_from, ends, at
            )
        elif entitlement.id not in inputs:
            result[entitlement.id] = NO_ACCESS  # metered, not active at `at`
        else:
            metered = inputs[entitlement.id]
            windows = plan_metered_read(metered.terms, metered.grants, at)
            value, _run = metered_value(
                metered.terms, metered.grants, at, usage_in(uow, metered, windows)
            )
            result[entitlement.id] = value
    return result
