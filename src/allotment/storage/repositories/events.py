"""Storage for events: set-based, deduplicating inserts and the recent-events listing."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Dialect,
    String,
    Text,
    bindparam,
    cast,
    func,
    select,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB

from allotment.domain.events import Event, EventFilter, StoredEvent
from allotment.storage.repositories.base import Repository
from allotment.storage.tables import customer_subjects, customers, events
from allotment.storage.types import to_micros

_event_time = type_coerce(events.c.time, BigInteger)
_ingested_at = type_coerce(events.c.ingested_at, BigInteger)


_INSERT_COLUMNS = (
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


@cache
def _insert_sql(dialect: Dialect) -> tuple[str, bool]:
    """`INSERT … ON CONFLICT (source, id) DO NOTHING` as driver SQL, and whether it takes
    positional parameters (in `_INSERT_COLUMNS` order) rather than named ones.

    The batch goes straight to the driver's executemany: parameters skip the column types'
    per-value conversions (the caller hands over integer microseconds and JSON text already),
    which keeps ingest at a few microseconds per event, and the driver reports the rows stored.
    """
    postgres = dialect.name == "postgresql"
    data = bindparam("data", type_=Text)
    insert = postgresql.insert if postgres else sqlite.insert
    statement = (
        insert(events)
        .values(
            id=bindparam("id", type_=String),
            source=bindparam("source", type_=String),
            specversion=bindparam("specversion", type_=String),
            type=bindparam("type", type_=String),
            subject=bindparam("subject", type_=String),
            time=bindparam("time", type_=BigInteger),
            datacontenttype=bindparam("datacontenttype", type_=String),
            dataschema=bindparam("dataschema", type_=String),
            data=cast(data, JSONB) if postgres else data,
            ingested_at=bindparam("ingested_at", type_=BigInteger),
        )
        .on_conflict_do_nothing(index_elements=["source", "id"])
    )
    compiled = statement.compile(dialect=dialect)
    positional = compiled.positiontup is not None
    if positional and tuple(compiled.positiontup or ()) != _INSERT_COLUMNS:
        raise RuntimeError(f"unexpected parameter order {compiled.positiontup}")
    return str(compiled), positional


def _json_text(data: Mapping[str, Any] | None) -> str | None:
    if data is None:
        return None
    try:
        return orjson.dumps(data).decode()
    except TypeError:
        # orjson stops at 64-bit integers; JSON has no such limit, nor does the standard library.
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _to_stored(row: Any) -> StoredEvent:
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
    return StoredEvent(event=event, time=row.time, ingested_at=row.ingested_at)


class EventRepository(Repository):
    def add_many(self, batch: Sequence[Event], received_at: datetime) -> int:
        """Store `batch`, skipping every event whose (source, id) is already stored or appears
        earlier in the batch. An event without a time happened at `received_at`. Returns the
        number of events actually stored."""
        if not batch:
            return 0
        received = to_micros(received_at)
        rows = [
            (
                event.id,
                event.source,
                event.specversion,
                event.type,
                event.subject,
                received if event.time is None else to_micros(event.time),
                event.datacontenttype,
                event.dataschema,
                _json_text(event.data),
                received,
            )
            for event in batch
        ]
        sql, positional = _insert_sql(self.connection.dialect)
        parameters: list[Any] = (
            rows if positional else [dict(zip(_INSERT_COLUMNS, row, strict=True)) for row in rows]
        )
        result = self.connection.exec_driver_sql(sql, parameters)
        return max(int(result.rowcount), 0)

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
        query = (
            select(events)
            .where(*conditions)
            .order_by(events.c.time.desc(), events.c.seq.desc())
            .limit(event_filter.limit)
        )
        return [_to_stored(row) for row in self.connection.execute(query)]

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
