"""Storage for events: set-based, deduplicating inserts and the recent-events listing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    and_,
    func,
    or_,
    select,
    type_coerce,
    update,
)

from allotment import json_exact
from allotment.domain.event_filters import TimeFilter
from allotment.domain.events import Event, EventFilter, StoredEvent
from allotment.storage.copy import copy_into
from allotment.storage.meter_sql import filter_condition, for_dialect
from allotment.storage.repositories.base import Repository
from allotment.storage.repositories.corrections import CorrectionRepository
from allotment.storage.tables import customer_subjects, customers, events
from allotment.storage.types import to_micros

_event_time = type_coerce(events.c.time, BigInteger)
_ingested_at = type_coerce(events.c.ingested_at, BigInteger)
_STRING_COLUMNS: Mapping[str, ColumnElement[Any]] = {
    "id": events.c.id,
    "source": events.c.source,
    "subject": events.c.subject,
    "type": events.c.type,
}
_TIME_COLUMNS: Mapping[str, ColumnElement[Any]] = {"time": _event_time, "ingestedAt": _ingested_at}


def _time_condition(column: ColumnElement[Any], condition: TimeFilter) -> ColumnElement[bool]:
    """`condition` in SQL, as `TimeFilter.matches` means it."""
    operand = condition.operand
    if isinstance(operand, tuple):
        parts = [_time_condition(column, child) for child in operand]
        return and_(*parts) if condition.operator == "$and" else or_(*parts)
    bound = to_micros(operand)
    return {
        "$gt": column > bound,
        "$gte": column >= bound,
        "$lt": column < bound,
        "$lte": column <= bound,
    }[condition.operator]


_INSERT_COLUMNS = (
    "seq",
    "id",
    "source",
    "specversion",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "data",
    "ingested_at",
)
_COLUMNS_TEXT = ", ".join(_INSERT_COLUMNS)

# SQLite: the unit holds the write lock, so seq values are handed out here, above the largest
# stored one; which of them exist afterwards says exactly which events were new.
_SQLITE_INSERT = (
    f"INSERT INTO events ({_COLUMNS_TEXT}) VALUES ({', '.join('?' * len(_INSERT_COLUMNS))}) "
    "ON CONFLICT (source, id) DO NOTHING"
)
# PostgreSQL: the batch is COPYed into the session's staging table, then one statement moves it;
# RETURNING names the events that were new (a duplicate, stored before or earlier in the batch,
# is skipped and not returned).
_POSTGRES_INSERT = (
    f"INSERT INTO events ({', '.join(_INSERT_COLUMNS[1:])}) "
    f"SELECT {', '.join(_INSERT_COLUMNS[1:])} FROM staged_events ORDER BY ordinal "
    "ON CONFLICT (source, id) DO NOTHING RETURNING seq, source, id"
)


def event_data_text(data: Mapping[str, Any] | None) -> str | None:
    """Event data as stored: JSON with every number exactly as it was sent."""
    if data is None:
        return None
    return json_exact.dumps(data).decode()


def _to_stored(row: Any, excluded_reason: str | None = None) -> StoredEvent:
    event = Event(
        id=row.id,
        source=row.source,
        specversion=row.specversion,
        type=row.type,
        subject=row.subject,
        time=row.time,
        datacontenttype=row.datacontenttype,
        dataschema=row.dataschema,
        data=row.data,
    )
    return StoredEvent(
        event=event,
        time=row.time,
        ingested_at=row.ingested_at,
        excluded_at=row.excluded_at,
        excluded_reason=excluded_reason,
        seq=row.seq,
    )


class EventRepository(Repository):
    def add_many(
        self,
        batch: Sequence[Event],
        received_at: datetime,
        data_texts: Sequence[str | None] | None = None,
    ) -> list[tuple[int, int]]:
        """Store `batch`, skipping every event whose (source, id) is already stored or appears
        earlier in the batch. An event without a time happened at `received_at`. Returns
        `(index in batch, seq)` of each event actually stored, in batch order.

        `data_texts`, when given, are the events' data already written as JSON (the parser
        keeps them), so nothing is serialised twice."""
        if not batch:
            return []
        received = to_micros(received_at)
        texts = data_texts if data_texts is not None else [event_data_text(e.data) for e in batch]
        if self.dialect == "sqlite":
            stored = self._add_sqlite(batch, received, texts)
        else:
            stored = self._add_postgres(batch, received, texts)
        self.changes.usage_subjects.update({batch[index].subject for index, _seq in stored})
        return stored

    def _add_sqlite(
        self, batch: Sequence[Event], received: int, texts: Sequence[str | None]
    ) -> list[tuple[int, int]]:
        base = int(self.connection.exec_driver_sql("SELECT max(seq) FROM events").scalar() or 0)
        rows = [
            (
                base + index + 1,
                event.id,
                event.source,
                event.specversion,
                event.type,
                event.subject,
                received if event.time is None else to_micros(event.time),
                event.datacontenttype,
                event.dataschema,
                texts[index],
                received,
            )
            for index, event in enumerate(batch)
        ]
        inserted = self.connection.exec_driver_sql(_SQLITE_INSERT, rows).rowcount
        if inserted == len(rows):  # no duplicate: every seq handed out exists
            return [(index, base + index + 1) for index in range(len(rows))]
        stored = self.connection.exec_driver_sql(
            "SELECT seq FROM events WHERE seq > ? ORDER BY seq", (base,)
        )
        return [(int(seq) - base - 1, int(seq)) for (seq,) in stored]

    def _add_postgres(
        self, batch: Sequence[Event], received: int, texts: Sequence[str | None]
    ) -> list[tuple[int, int]]:
        rows = (
            (
                index,
                event.id,
                event.source,
                event.specversion,
                event.type,
                event.subject,
                received if event.time is None else to_micros(event.time),
                event.datacontenttype,
                event.dataschema,
                texts[index],
                received,
            )
            for index, event in enumerate(batch)
        )
        copy_into(self.connection, "staged_events", ("ordinal", *_INSERT_COLUMNS[1:]), rows)
        first_index: dict[tuple[str, str], int] = {}
        for index, event in enumerate(batch):
            first_index.setdefault((event.source, event.id), index)
        stored = self.connection.exec_driver_sql(_POSTGRES_INSERT)
        return sorted((first_index[(source, id_)], int(seq)) for seq, source, id_ in stored)

    def find(self, source: str, id_: str) -> StoredEvent | None:
        """The event stored under `(source, id)`, or None."""
        row = self.connection.execute(
            select(events).where(events.c.source == source, events.c.id == id_)
        ).first()
        return None if row is None else _to_stored(row)

    def set_excluded(self, seq: int, excluded_at: datetime | None) -> None:
        subject = self.connection.execute(
            update(events)
            .where(events.c.seq == seq)
            .values(excluded_at=excluded_at)
            .returning(events.c.subject)
        ).scalar()
        if subject is not None:
            self.changes.usage_subjects.add(subject)

    def counts_by_subject_since(self, since: datetime) -> dict[str, int]:
        """Subject -> how many events were stored (ingested) at or after `since`."""
        query = (
            select(events.c.subject, func.count())
            .where(_ingested_at >= to_micros(since))
            .group_by(events.c.subject)
        )
        return {row[0]: int(row[1]) for row in self.connection.execute(query)}

    def count(self) -> int:
        return int(self.connection.execute(select(func.count()).select_from(events)).scalar_one())

    def recent(self, event_filter: EventFilter) -> list[StoredEvent]:
        """Newest event time first (ingest order breaks ties, newest first too)."""
        conditions: list[ColumnElement[bool]] = []
        if event_filter.ingested_from is not None:
            conditions.append(_ingested_at >= to_micros(event_filter.ingested_from))
        if event_filter.ingested_to is not None:
            conditions.append(_ingested_at <= to_micros(event_filter.ingested_to))
        if event_filter.time_from is not None:
            conditions.append(_event_time >= to_micros(event_filter.time_from))
        if event_filter.time_to is not None:
            conditions.append(_event_time <= to_micros(event_filter.time_to))
        if event_filter.id_contains:
            conditions.append(self._contains(events.c.id, event_filter.id_contains))
        if event_filter.subject_contains:
            conditions.append(self._contains(events.c.subject, event_filter.subject_contains))
        if event_filter.subjects is not None:
            conditions.append(events.c.subject.in_(list(event_filter.subjects)))
        dialect = for_dialect(self.dialect)
        for name, condition in event_filter.matching.items():
            conditions.append(filter_condition(dialect, _STRING_COLUMNS[name], condition))
        for name, time_filter in event_filter.times.items():
            conditions.append(_time_condition(_TIME_COLUMNS[name], time_filter))
        if event_filter.before is not None:
            at, seq = to_micros(event_filter.before.time), event_filter.before.seq
            conditions.append(or_(_event_time < at, and_(_event_time == at, events.c.seq < seq)))
        query = (
            select(events)
            .where(*conditions)
            .order_by(events.c.time.desc(), events.c.seq.desc())
            .limit(event_filter.limit)
        )
        rows = self.connection.execute(query).all()
        excluded = [int(row.seq) for row in rows if row.excluded_at is not None]
        reasons = CorrectionRepository(self.connection).latest_reasons(excluded)
        return [_to_stored(row, reasons.get(int(row.seq))) for row in rows]

    def _contains(self, column: Any, text: str) -> ColumnElement[bool]:
        # Case-sensitive on both databases (SQLite's LIKE ignores ASCII case) and free of
        # LIKE's wildcards, so '%' and '_' in the search text mean themselves.
        function = func.strpos if self.dialect == "postgresql" else func.instr
        return function(column, text) > 0

    # Usage attribution: which customer an event's subject belongs to.

    def customers_by_subject(self, subjects: Sequence[str]) -> dict[str, str]:
        """Subject -> id of the live customer whose key or usage-attribution subject it is."""
        if not subjects:
            return {}
        wanted = sorted(set(subjects))
        by_key = select(customers.c.key, customers.c.id).where(
            customers.c.key.in_(wanted), customers.c.deleted_at.is_(None)
        )
        by_subject_key = (
            select(customer_subjects.c.subject_key, customer_subjects.c.customer_id)
            .join(customers, customers.c.id == customer_subjects.c.customer_id)
            .where(customer_subjects.c.subject_key.in_(wanted), customers.c.deleted_at.is_(None))
        )
        found: dict[str, str] = {}
        for subject, customer_id in self.connection.execute(by_key):
            found[subject] = customer_id
        # An explicit attribution wins over a customer key that happens to be equal.
        for subject, customer_id in self.connection.execute(by_subject_key):
            found[subject] = customer_id
        return found

    def subjects_of_customers(self, customer_ids: Sequence[str]) -> dict[str, list[str]]:
        """Live customer id -> its subjects (its key and its usage-attribution subjects).
        Unknown or deleted customers are absent from the result."""
        if not customer_ids:
            return {}
        wanted = sorted(set(customer_ids))
        found: dict[str, list[str]] = {}
        for customer_id, key in self.connection.execute(
            select(customers.c.id, customers.c.key).where(
                customers.c.id.in_(wanted), customers.c.deleted_at.is_(None)
            )
        ):
            found[customer_id] = [key] if key else []
        for customer_id, subject_key in self.connection.execute(
            select(customer_subjects.c.customer_id, customer_subjects.c.subject_key)
            .where(customer_subjects.c.customer_id.in_(list(found)))
            .order_by(customer_subjects.c.subject_key)
        ):
            if subject_key not in found[customer_id]:
                found[customer_id].append(subject_key)
        return found
