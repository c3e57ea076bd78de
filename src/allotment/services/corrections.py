"""Repairing bad data: excluding a stored event from every usage read, or restoring it
(`domain/corrections.py` has the rules), with the audit trail of who did it and why."""

from __future__ import annotations

from allotment import logs
from allotment.domain.corrections import (
    CorrectionAction,
    EventCorrection,
    EventRef,
    already_problem,
    reason_problem,
)
from allotment.errors import Conflict, ErrorList, NotFound
from allotment.ids import new_id
from allotment.services.context import ServiceContext

CORRECTIONS_LIST_LIMIT_MAX = 1000


def correct(
    context: ServiceContext,
    event: EventRef,
    action: CorrectionAction,
    reason: str,
    api_key_id: str | None,
) -> EventCorrection:
    """Exclude or restore one stored event, in one transaction with its audit row: every read
    after this returns counts the change (roll-ups recounted, checkpoints dropped)."""
    errors = ErrorList()
    problem = reason_problem(reason)
    if problem is not None:
        errors.add("reason", problem)
    errors.raise_if_any("invalid correction")
    at = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        store = uow.usage_store
        store.lock_for_correction()
        stored = store.find_event(event.source, event.id)
        if stored is None:
            raise NotFound(f"no event with source {event.source!r} and id {event.id!r}", field="id")
        conflict = already_problem(action, stored.excluded_at is not None)
        if conflict is not None:
            raise Conflict(conflict, field="action")
        store.set_excluded(stored, at if action is CorrectionAction.EXCLUDE else None)
        correction = EventCorrection(
            id=new_id(),
            event=event,
            event_type=stored.event.type,
            event_subject=stored.event.subject,
            event_time=stored.time,
            action=action,
            reason=reason,
            api_key_id=api_key_id,
            created_at=at,
        )
        uow.corrections.add(correction, stored.seq)
        uow.commit()
    logs.audit(
        f"{action.value}_event",
        id=correction.id,
        key_id=api_key_id,
        source=event.source,
        event_id=event.id,
    )
    return correction


def list_corrections(
    context: ServiceContext, limit: int, event: EventRef | None = None
) -> list[EventCorrection]:
    """The audit trail, newest first (only one event's, when given)."""
    errors = ErrorList()
    if not 1 <= limit <= CORRECTIONS_LIST_LIMIT_MAX:
        errors.add("limit", f"must be between 1 and {CORRECTIONS_LIST_LIMIT_MAX}")
    errors.raise_if_any("invalid correction query")
    with context.database.unit_of_work() as uow:
        return uow.corrections.recent(limit, event)
