"""Grants: create on a metered entitlement, list, void.

Creating and voiding validate against the entitlement's usage period current now (a grant may
not start, and a void may not happen, before it), read under the entitlement's write lock, so a
concurrent reset cannot move the period between the check and the write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from allotment.domain.entitlements import (
    Entitlement,
    GrantFilter,
    GrantOrderBy,
    GrantRecord,
)
from allotment.domain.grant_requests import GrantDefaults, GrantRequest, new_grant
from allotment.domain.grants import validate_void
from allotment.domain.instants import checked_instant
from allotment.domain.listing import ListResult, SortOrder, Window
from allotment.domain.snapshots import Change, invalid_from
from allotment.domain.text import is_storable_text
from allotment.errors import NotFound
from allotment.ids import is_ulid, new_id
from allotment.services import idempotency
from allotment.services.context import ServiceContext
from allotment.services.entitlement_owners import (
    Owner,
    lock_entitlement,
    require_live,
    require_metered,
    require_owner,
    resolve_entitlement,
)
from allotment.services.entitlements import check_filter_values
from allotment.services.notification_queue import note_change
from allotment.storage import UnitOfWork


@dataclass(frozen=True)
class GrantView:
    """A grant as responses show it; `next_recurrence` is the next refill at or after now."""

    grant: GrantRecord
    next_recurrence: datetime | None


def create_grant(
    context: ServiceContext,
    owner: Owner,
    id_or_feature_key: str,
    request: GrantRequest,
    defaults: GrantDefaults,
    idempotency_claim: idempotency.IdempotencyClaim[GrantView] | None = None,
) -> GrantView:
    """Grants usage to a live metered entitlement (by id, or the live one for a feature key).

    `defaults` picks the API version's rules: v1 requires an expiration and rolls nothing over
    by default; v2 may never expire and rolls over up to the amount. Raises InvalidInput for a
    boolean, static or deleted entitlement and for a request that breaks a rule.
    """
    now = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        idempotency.check(uow, idempotency_claim, now)
        customer = require_owner(uow, owner)
        entitlement = lock_entitlement(
            uow, resolve_entitlement(uow, customer, id_or_feature_key, now=now)
        )
        period_start = _current_period_start(uow, entitlement, now)
        grant = new_grant(
            request,
            grant_id=new_id(),
            entitlement_id=entitlement.id,
            current_period_start=period_start,
            now=now,
            defaults=defaults,
        )
        uow.grants.add(grant)
        uow.checkpoints.delete_from(
            entitlement.id, invalid_from(Change.GRANT_CREATED, grant.effective_at)
        )
        view = view_of(grant, now)
        idempotency.remember(uow, idempotency_claim, view, now)
        noted = note_change(uow, now, entitlement_ids=[entitlement.id])
        uow.commit()
    if noted:
        context.caches.wake_maintenance()
    return view


def void_grant(
    context: ServiceContext,
    grant_id: str,
    at: datetime | None = None,
    idempotency_claim: idempotency.IdempotencyClaim[None] | None = None,
) -> None:
    """Voids the grant from `at` (default now, floored): from then on it has no balance, while
    what it covered before stays covered.

    Raises NotFound for an unknown grant; InvalidInput for one already voided (or deleted with
    its entitlement), a void in the future, or before the current usage period's start.
    """
    now = context.clock()
    requested = checked_instant(at, "at") if at is not None else now
    with context.database.unit_of_work(write=True) as uow:
        idempotency.check(uow, idempotency_claim, now)
        found = _grant(uow, grant_id)
        entitlement = uow.entitlements.get(found.entitlement_id)
        assert entitlement is not None  # grants reference their entitlement
        entitlement = lock_entitlement(uow, entitlement)
        grant = _grant(uow, grant_id)  # again, under the lock
        period_start = entitlement.timeline(uow.entitlements.resets(entitlement.id))
        voided_at = validate_void(
            grant.to_engine(), requested, now, period_start.current_period_at(now).start
        )
        uow.grants.void(grant.id, voided_at, now)
        uow.checkpoints.delete_from(entitlement.id, invalid_from(Change.GRANT_VOIDED, voided_at))
        idempotency.remember(uow, idempotency_claim, None, now)
        noted = note_change(uow, now, entitlement_ids=[entitlement.id])
        uow.commit()
    if noted:
        context.caches.wake_maintenance()


def list_entitlement_grants(
    context: ServiceContext,
    owner: Owner,
    id_or_feature_key: str,
    *,
    include_deleted: bool = False,
    window: Window | None = None,
    order: SortOrder = SortOrder.ASC,
    order_by: GrantOrderBy = GrantOrderBy.CREATED_AT,
) -> ListResult[GrantView]:
    """The grants of one entitlement (by id, or the live one for a feature key); voided ones
    are listed, those deleted with their entitlement only with `include_deleted`."""
    now = context.clock()
    with context.database.unit_of_work() as uow:
        customer = require_owner(uow, owner)
        entitlement = resolve_entitlement(uow, customer, id_or_feature_key)
        filters = GrantFilter(entitlement_ids=[entitlement.id], include_deleted=include_deleted)
        items, total = uow.grants.search(filters, order_by=order_by, order=order, window=window)
        return ListResult(items=[view_of(g, now) for g in items], total_count=total)


def list_grants(
    context: ServiceContext,
    filters: GrantFilter,
    *,
    window: Window | None = None,
    order: SortOrder = SortOrder.ASC,
    order_by: GrantOrderBy = GrantOrderBy.CREATED_AT,
) -> ListResult[GrantView]:
    """Grants of every customer matching `filters`."""
    check_filter_values(
        ("feature", filters.features),
        ("customer", filters.customers),
        ("subject", filters.subject_keys),
    )
    now = context.clock()
    with context.database.unit_of_work() as uow:
        items, total = uow.grants.search(filters, order_by=order_by, order=order, window=window)
        return ListResult(items=[view_of(g, now) for g in items], total_count=total)


def view_of(grant: GrantRecord, now: datetime) -> GrantView:
    """The grant with its next refill: the first recurrence after `now` (a refill exactly at
    `now` has already happened, as a value read at `now` shows) and not before the grant
    starts, while the grant is still active then."""
    recurrence = grant.recurrence
    if recurrence is None:
        return GrantView(grant, None)
    after = max(now, grant.effective_at - timedelta(microseconds=1))
    candidate = recurrence.next_boundary_after(after)
    if not grant.to_engine().active_at(candidate):
        return GrantView(grant, None)
    return GrantView(grant, candidate)


def _current_period_start(uow: UnitOfWork, entitlement: Entitlement, now: datetime) -> datetime:
    require_metered(entitlement, "take grants")
    require_live(entitlement, "it takes no new grants")
    timeline = entitlement.timeline(uow.entitlements.resets(entitlement.id))
    return timeline.current_period_at(now).start


def _grant(uow: UnitOfWork, grant_id: str) -> GrantRecord:
    grant = None
    if is_storable_text(grant_id) and is_ulid(grant_id):
        grant = uow.grants.get(grant_id)
    if grant is None:
        raise NotFound(f"grant not found: {grant_id}", field="grantId")
    return grant
