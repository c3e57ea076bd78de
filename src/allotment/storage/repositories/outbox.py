"""The notification outbox: events, their deliveries, and the evaluator's bookkeeping.

Deliveries are claimed for sending with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several
server processes never send one attempt twice; SQLite's writers take turns anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from allotment.domain.listing import Window
from allotment.domain.notifications import (
    Attempt,
    Delivery,
    DeliveryState,
    EventFilter,
    RuleType,
)
from allotment.storage.repositories.base import Repository
from allotment.storage.tables import (
    notification_deliveries,
    notification_events,
    notification_fired,
    notification_pending,
    notification_periods,
)
from allotment.storage.types import to_micros

_events = notification_events
_SQLITE_IDS_PER_STATEMENT = 10_000
_deliveries = notification_deliveries


@dataclass(frozen=True)
class EventRow:
    id: str
    type: RuleType
    rule_id: str
    created_at: datetime
    payload: Mapping[str, Any]
    is_test: bool


@dataclass(frozen=True)
class NewEvent:
    id: str
    type: RuleType
    rule_id: str
    entitlement_id: str | None
    feature_id: str | None
    feature_key: str | None
    subject_key: str | None
    payload: Mapping[str, Any]
    is_test: bool
    created_at: datetime


@dataclass(frozen=True)
class Pending:
    ids: list[int]
    subject_keys: set[str]
    entitlement_ids: set[str]


def _attempt_document(attempt: Attempt) -> dict[str, Any]:
    return {
        "state": attempt.state.value,
        "at": attempt.at.isoformat(),
        "statusCode": attempt.status_code,
        "body": attempt.body,
        "durationMs": attempt.duration_ms,
        "url": attempt.url,
    }


def _attempt(document: Mapping[str, Any]) -> Attempt:
    return Attempt(
        state=DeliveryState(document["state"]),
        at=datetime.fromisoformat(document["at"]),
        status_code=document["statusCode"],
        body=document["body"],
        duration_ms=document["durationMs"],
        url=document["url"],
    )


def _delivery(row: Any) -> Delivery:
    return Delivery(
        event_id=row.event_id,
        channel_id=row.channel_id,
        message_id=row.message_id,
        state=DeliveryState(row.state),
        reason=row.reason,
        attempt_count=row.attempt_count,
        attempts=tuple(_attempt(a) for a in row.attempts),
        next_attempt_at=row.next_attempt_at,
        updated_at=row.updated_at,
    )


def _event(row: Any) -> EventRow:
    return EventRow(
        id=row.id,
        type=RuleType(row.type),
        rule_id=row.rule_id,
        created_at=row.created_at,
        payload=row.payload,
        is_test=row.is_test,
    )


class OutboxRepository(Repository):
    def _insert(self) -> Any:
        return postgres_insert if self.dialect == "postgresql" else sqlite_insert

    # -- events and deliveries

    def add_event(self, event: NewEvent, deliveries: Sequence[Delivery]) -> None:
        self.connection.execute(
            insert(_events).values(
                id=event.id,
                type=event.type.value,
                rule_id=event.rule_id,
                entitlement_id=event.entitlement_id,
                feature_id=event.feature_id,
                feature_key=event.feature_key,
                subject_key=event.subject_key,
                payload=dict(event.payload),
                is_test=event.is_test,
                created_at=event.created_at,
            )
        )
        if deliveries:
            self.connection.execute(
                insert(_deliveries), [self._delivery_values(d) for d in deliveries]
            )

    @staticmethod
    def _delivery_values(delivery: Delivery) -> dict[str, Any]:
        return {
            "event_id": delivery.event_id,
            "channel_id": delivery.channel_id,
            "message_id": delivery.message_id,
            "state": delivery.state.value,
            "reason": delivery.reason,
            "attempt_count": delivery.attempt_count,
            "attempts": [_attempt_document(a) for a in delivery.attempts],
            "next_attempt_at": delivery.next_attempt_at,
            "updated_at": delivery.updated_at,
        }

    def get_event(self, event_id: str) -> EventRow | None:
        row = self.connection.execute(select(_events).where(_events.c.id == event_id)).first()
        return None if row is None else _event(row)

    def deliveries_of(self, event_ids: Sequence[str]) -> dict[str, list[Delivery]]:
        found: dict[str, list[Delivery]] = {event_id: [] for event_id in event_ids}
        if not event_ids:
            return found
        rows = self.connection.execute(
            select(_deliveries)
            .where(_deliveries.c.event_id.in_(sorted(set(event_ids))))
            .order_by(_deliveries.c.event_id, _deliveries.c.channel_id)
        )
        for row in rows:
            found[row.event_id].append(_delivery(row))
        return found

    def list_events(self, criteria: EventFilter, window: Window) -> tuple[list[EventRow], int]:
        """`criteria.features` match the events' feature ids and keys."""
        conditions = []
        if criteria.time_from is not None:
            conditions.append(_events.c.created_at >= criteria.time_from)
        if criteria.time_to is not None:
            conditions.append(_events.c.created_at <= criteria.time_to)
        if criteria.features:
            conditions.append(
                or_(
                    _events.c.feature_id.in_(list(criteria.features)),
                    _events.c.feature_key.in_(list(criteria.features)),
                )
            )
        if criteria.subjects:
            conditions.append(_events.c.subject_key.in_(list(criteria.subjects)))
        if criteria.rule_ids:
            conditions.append(_events.c.rule_id.in_(list(criteria.rule_ids)))
        if criteria.channel_ids:
            conditions.append(
                exists().where(
                    _deliveries.c.event_id == _events.c.id,
                    _deliveries.c.channel_id.in_(list(criteria.channel_ids)),
                )
            )
        column = _events.c.id if criteria.order_by == "id" else _events.c.created_at
        ordering = [
            c.desc() if criteria.descending else c.asc()
            for c in dict.fromkeys((column, _events.c.id))
        ]
        rows, total = self.page(_events, conditions, ordering, window)
        return [_event(row) for row in rows], total

    # -- sending

    def claim_due(self, now: datetime, lapse_at: datetime, limit: int) -> list[Delivery]:
        """Up to `limit` deliveries due at `now` (pending, or sending with a lapsed claim),
        marked SENDING until `lapse_at`: other senders skip them until then."""
        query = (
            select(_deliveries)
            .where(
                _deliveries.c.next_attempt_at <= now,
                _deliveries.c.state.in_(
                    [
                        DeliveryState.PENDING.value,
                        DeliveryState.RESENDING.value,
                        DeliveryState.SENDING.value,
                    ]
                ),
            )
            .order_by(_deliveries.c.next_attempt_at)
            .limit(limit)
        )
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        claimed = [_delivery(row) for row in self.connection.execute(query)]
        for delivery in claimed:
            self.connection.execute(
                update(_deliveries)
                .where(
                    _deliveries.c.event_id == delivery.event_id,
                    _deliveries.c.channel_id == delivery.channel_id,
                )
                .values(state=DeliveryState.SENDING.value, next_attempt_at=lapse_at, updated_at=now)
            )
        return claimed

    def get_delivery(self, event_id: str, channel_id: str) -> Delivery | None:
        row = self.connection.execute(
            select(_deliveries).where(
                _deliveries.c.event_id == event_id, _deliveries.c.channel_id == channel_id
            )
        ).first()
        return None if row is None else _delivery(row)

    def save_delivery(self, delivery: Delivery) -> None:
        values = self._delivery_values(delivery)
        del values["event_id"], values["channel_id"]
        self.connection.execute(
            update(_deliveries)
            .where(
                _deliveries.c.event_id == delivery.event_id,
                _deliveries.c.channel_id == delivery.channel_id,
            )
            .values(**values)
        )

    def next_due(self) -> datetime | None:
        """When the earliest unfinished delivery is due (a lapsing claim counts)."""
        due: datetime | None = self.connection.execute(
            select(func.min(_deliveries.c.next_attempt_at)).where(
                _deliveries.c.state.in_(
                    [
                        DeliveryState.PENDING.value,
                        DeliveryState.RESENDING.value,
                        DeliveryState.SENDING.value,
                    ]
                )
            )
        ).scalar_one_or_none()
        return due

    # -- the evaluator's queue

    def enqueue(
        self, at: datetime, subject_keys: Iterable[str] = (), entitlement_ids: Iterable[str] = ()
    ) -> None:
        subjects, ids = list(subject_keys), list(entitlement_ids)
        if self.dialect == "postgresql":
            # One array parameter each: an ingest batch queues hundreds of subjects, and a
            # VALUES row apiece cost 8 ms a batch to send and plan (bench N1 lost a tenth).
            for column, values in (("subject_key", subjects), ("entitlement_id", ids)):
                if values:
                    self.connection.exec_driver_sql(
                        f"INSERT INTO notification_pending ({column}, created_at) "
                        "SELECT queued, %s FROM unnest(%s::text[]) AS queued",
                        (to_micros(at), values),
                    )
            return
        rows = [{"subject_key": key, "entitlement_id": None, "created_at": at} for key in subjects]
        rows += [
            {"subject_key": None, "entitlement_id": entitlement_id, "created_at": at}
            for entitlement_id in ids
        ]
        if rows:
            self.connection.execute(insert(notification_pending), rows)

    def take_pending(self, limit: int) -> Pending:
        """The oldest `limit` queued items (deleted with `done`, in the same transaction)."""
        rows = list(
            self.connection.execute(
                select(notification_pending).order_by(notification_pending.c.id).limit(limit)
            )
        )
        return Pending(
            ids=[row.id for row in rows],
            subject_keys={row.subject_key for row in rows if row.subject_key is not None},
            entitlement_ids={row.entitlement_id for row in rows if row.entitlement_id is not None},
        )

    def count_pending(self, at_most: int) -> int:
        """How many items are queued, counted up to `at_most`."""
        queued = select(notification_pending.c.id).limit(at_most).subquery()
        return int(self.connection.execute(select(func.count()).select_from(queued)).scalar_one())

    def newest_pending(self) -> tuple[int, datetime] | None:
        """The newest queued item's id and time (None: the queue is empty). Together they
        change with every write that queues something (SQLite may give an emptied queue's ids
        out again, not with the same time)."""
        row = self.connection.execute(
            select(notification_pending.c.id, notification_pending.c.created_at)
            .order_by(notification_pending.c.id.desc())
            .limit(1)
        ).first()
        return None if row is None else (row.id, row.created_at)

    def done(self, pending_ids: Sequence[int]) -> None:
        """Remove the queued items a round took (up to tens of thousands: one array parameter
        on PostgreSQL, lists well under SQLite's usual 32,766 parameters)."""
        if self.dialect == "postgresql":
            if pending_ids:
                self.connection.exec_driver_sql(
                    "DELETE FROM notification_pending WHERE id = ANY(%s::bigint[])",
                    (list(pending_ids),),
                )
            return
        for start in range(0, len(pending_ids), _SQLITE_IDS_PER_STATEMENT):
            chunk = pending_ids[start : start + _SQLITE_IDS_PER_STATEMENT]
            self.connection.execute(
                delete(notification_pending).where(notification_pending.c.id.in_(chunk))
            )

    # -- fired thresholds and periods

    def fired_of(self, entitlement_ids: Sequence[str]) -> dict[tuple[str, str, datetime], set[str]]:
        """(rule, entitlement, period start) -> the keys fired, for several entitlements."""
        found: dict[tuple[str, str, datetime], set[str]] = {}
        if not entitlement_ids:
            return found
        rows = self.connection.execute(
            select(notification_fired).where(
                notification_fired.c.entitlement_id.in_(sorted(set(entitlement_ids)))
            )
        )
        for row in rows:
            found.setdefault((row.rule_id, row.entitlement_id, row.period_start), set()).add(
                row.threshold
            )
        return found

    def mark_fired(
        self, rule_id: str, entitlement_id: str, period_start: datetime, thresholds: Iterable[str]
    ) -> bool:
        """False when another evaluator marked the first of them already (it notifies)."""
        inserted = False
        for index, threshold in enumerate(thresholds):
            statement = (
                self._insert()(notification_fired)
                .values(
                    rule_id=rule_id,
                    entitlement_id=entitlement_id,
                    period_start=period_start,
                    threshold=threshold,
                )
                .on_conflict_do_nothing()
                .returning(notification_fired.c.threshold)
            )
            done = self.connection.execute(statement).first() is not None
            if index == 0:
                inserted = done
        return inserted

    def period_of(self, rule_id: str, entitlement_id: str) -> datetime | None:
        start: datetime | None = self.connection.execute(
            select(notification_periods.c.period_start).where(
                notification_periods.c.rule_id == rule_id,
                notification_periods.c.entitlement_id == entitlement_id,
            )
        ).scalar_one_or_none()
        return start

    def periods_of(
        self, entitlement_ids: Sequence[str]
    ) -> dict[str, dict[str, tuple[datetime, datetime | None]]]:
        """Entitlement -> rule -> the usage period last evaluated, for several entitlements."""
        found: dict[str, dict[str, tuple[datetime, datetime | None]]] = {}
        if not entitlement_ids:
            return found
        rows = self.connection.execute(
            select(notification_periods).where(
                notification_periods.c.entitlement_id.in_(sorted(set(entitlement_ids)))
            )
        )
        for row in rows:
            found.setdefault(row.entitlement_id, {})[row.rule_id] = (
                row.period_start,
                row.period_end,
            )
        return found

    def set_period(
        self, rule_id: str, entitlement_id: str, start: datetime, end: datetime | None
    ) -> None:
        statement = self._insert()(notification_periods).values(
            rule_id=rule_id, entitlement_id=entitlement_id, period_start=start, period_end=end
        )
        statement = statement.on_conflict_do_update(
            index_elements=[notification_periods.c.rule_id, notification_periods.c.entitlement_id],
            set_={"period_start": start, "period_end": end},
        )
        self.connection.execute(statement)

    def ended_periods(self, now: datetime, limit: int) -> list[str]:
        """Entitlements whose last evaluated usage period has ended by `now`."""
        rows = self.connection.execute(
            select(notification_periods.c.entitlement_id)
            .where(
                and_(
                    notification_periods.c.period_end.is_not(None),
                    notification_periods.c.period_end <= now,
                )
            )
            .group_by(notification_periods.c.entitlement_id)
            .order_by(func.min(notification_periods.c.period_end))
            .limit(limit)
        )
        return [row.entitlement_id for row in rows]

    def forget_periods(
        self, entitlement_ids: Sequence[str], keep_rules: Iterable[str] = ()
    ) -> None:
        """Stop watching the entitlements' periods, except for the rules in `keep_rules`."""
        if not entitlement_ids:
            return
        statement = delete(notification_periods).where(
            notification_periods.c.entitlement_id.in_(list(entitlement_ids))
        )
        kept = sorted(set(keep_rules))
        if kept:
            statement = statement.where(notification_periods.c.rule_id.not_in(kept))
        self.connection.execute(statement)
