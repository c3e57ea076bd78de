"""Storage for the audit trail of event corrections (rows are only ever added)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select

from allotment.domain.corrections import CorrectionAction, EventCorrection, EventRef
from allotment.storage.repositories.base import Repository
from allotment.storage.tables import event_corrections, events


def _to_correction(row: Any) -> EventCorrection:
    return EventCorrection(
        id=row.id,
        event=EventRef(source=row.source, id=row.event_id),
        event_type=row.type,
        event_subject=row.subject,
        event_time=row.time,
        action=CorrectionAction(row.action),
        reason=row.reason,
        api_key_id=row.api_key_id,
        created_at=row.created_at,
    )


class CorrectionRepository(Repository):
    def add(self, correction: EventCorrection, event_seq: int) -> None:
        self.connection.execute(
            insert(event_corrections).values(
                id=correction.id,
                event_seq=event_seq,
                action=correction.action.value,
                reason=correction.reason,
                api_key_id=correction.api_key_id,
                created_at=correction.created_at,
            )
        )

    def recent(self, limit: int, event: EventRef | None = None) -> list[EventCorrection]:
        """Newest first; only those of `event` when given."""
        query = select(
            event_corrections,
            events.c.source,
            events.c.id.label("event_id"),
            events.c.type,
            events.c.subject,
            events.c.time,
        ).join(events, events.c.seq == event_corrections.c.event_seq)
        if event is not None:
            query = query.where(events.c.source == event.source, events.c.id == event.id)
        query = query.order_by(
            event_corrections.c.created_at.desc(), event_corrections.c.id.desc()
        ).limit(limit)
        return [_to_correction(row) for row in self.connection.execute(query)]

    def latest_reasons(self, seqs: list[int]) -> dict[int, str]:
        """Event seq -> the reason of its latest correction (for listing excluded events)."""
        if not seqs:
            return {}
        rows = self.connection.execute(
            select(event_corrections.c.event_seq, event_corrections.c.reason)
            .where(event_corrections.c.event_seq.in_(seqs))
            .order_by(event_corrections.c.created_at, event_corrections.c.id)
        )
        return {int(seq): reason for seq, reason in rows}
