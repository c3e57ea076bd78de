"""Manual resets: close the current usage period of a metered entitlement and open the next.

The reset is validated against the state read under the entitlement's write lock (the last
reset, the period current now), so two resets, or a reset and a grant, arriving together are
applied one after the other, never both against the same stale state.
"""

from __future__ import annotations

from datetime import datetime

from allotment.domain.instants import checked_instant
from allotment.domain.snapshots import Change, invalid_from
from allotment.domain.usage_periods import ManualReset
from allotment.ids import new_id
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
from allotment.services.notification_queue import note_change


def reset_entitlement(
    context: ServiceContext,
    owner: Owner,
    id_or_feature_key: str,
    *,
    effective_at: datetime | None = None,
    retain_anchor: bool = False,
    preserve_overage: bool | None = None,
    idempotency_claim: idempotency.IdempotencyClaim[None] | None = None,
) -> None:
    """Resets usage at `effective_at` (default now, floored to the minute).

    Without `retain_anchor` the reset instant becomes the usage period's anchor.
    `preserve_overage` defaults to the entitlement's `preserveOverageAtReset`. Raises
    InvalidInput for a non-metered or deleted entitlement, a reset in the future, before the
    current period start, in the minute of the last reset, or before a later reset.
    """
    now = context.clock()
    requested = now if effective_at is None else checked_instant(effective_at, "effectiveAt")
    with context.database.unit_of_work(write=True) as uow:
        idempotency.check(uow, idempotency_claim, now)
        customer = require_owner(uow, owner)
        entitlement = lock_entitlement(
            uow, resolve_entitlement(uow, customer, id_or_feature_key, now=now)
        )
        require_metered(entitlement, "have usage to reset")
        require_live(entitlement)
        timeline = entitlement.timeline(uow.entitlements.resets(entitlement.id))
        reset_at = timeline.validate_manual_reset(requested, now)
        _timeline, reset = timeline.with_manual_reset(
            reset_at,
            retain_anchor=retain_anchor,
            preserve_overage=(
                entitlement.preserve_overage_at_reset
                if preserve_overage is None
                else preserve_overage
            ),
        )
        uow.entitlements.add_reset(new_id(), entitlement.id, reset, now)
        uow.checkpoints.delete_from(entitlement.id, invalid_from(Change.MANUAL_RESET, reset.at))
        idempotency.remember(uow, idempotency_claim, None, now)
        noted = note_change(uow, now, entitlement_ids=[entitlement.id])
        uow.commit()
    if noted:
        context.caches.wake_maintenance()


def list_resets(context: ServiceContext, owner: Owner, id_or_feature_key: str) -> list[ManualReset]:
    """The manual resets of one metered entitlement, oldest first."""
    with context.database.unit_of_work() as uow:
        customer = require_owner(uow, owner)
        entitlement = resolve_entitlement(uow, customer, id_or_feature_key)
        require_metered(entitlement, "have resets")
        return sorted(uow.entitlements.resets(entitlement.id), key=lambda reset: reset.at)
