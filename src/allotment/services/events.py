"""Ingesting usage events and listing recent ones."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from allotment.domain.events import (
    LIST_LIMIT_MAX,
    Event,
    EventFilter,
    EventPosition,
    ListedEvent,
    StoredEvent,
    time_out_of_range,
    validation_error,
)
from allotment.domain.instants import OUT_OF_RANGE, is_client_instant
from allotment.errors import ErrorList, InvalidInput
from allotment.services.context import ServiceContext
from allotment.services.notification_queue import note_change
from allotment.storage.types import to_micros


def ingest(
    context: ServiceContext,
    batch: Sequence[Event],
    data_texts: Sequence[str | None] | None = None,
) -> int:
    """Store a batch of already validated events in one transaction; returns how many were new.

    Duplicates (an `(source, id)` already stored, or repeated inside the batch) are skipped by
    the database's unique key, so a retried batch counts once. Events without a time get the
    receipt time, read once for the whole batch. The meters' roll-ups are written in the same
    transaction, so the next read after this returns counts every event. `data_texts`: the
    events' data as exact JSON text, when the caller has it already.
    """
    if not batch:
        raise InvalidInput("no events found: send one event or a non-empty array", field="body")
    errors = ErrorList()
    for index, event in enumerate(batch):
        if time_out_of_range(event):
            errors.add(f"[{index}].time", OUT_OF_RANGE)
    errors.raise_if_any("invalid events; nothing was stored")
    received_at = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        version = uow.versions.hold_meters_for_ingest()
        meters = context.caches.rolled_meters(uow, version, [e.type for e in batch])
        stored = uow.usage_store.ingest(batch, received_at, meters=meters, data_texts=data_texts)
        if stored:
            note_change(uow, received_at, subject_keys=sorted({e.subject for e in batch}))
        uow.commit()
    if stored:
        context.caches.wake_maintenance()  # fold the new deltas soon
    return stored


def _readings(
    batch: Sequence[Event], received_at: datetime
) -> Iterator[tuple[str, str, int, int, Any]]:
    """The batch as `accumulate` reads it, each event's position standing in for its seq."""
    received = to_micros(received_at)
    for position, event in enumerate(batch):
        time = received if event.time is None else to_micros(event.time)
        yield event.type, event.subject, time, position, event.data


def _excluded(item: StoredEvent) -> str | None:
    """The listing's word on an excluded event: no meter counts it, whatever its data."""
    if item.excluded_at is None:
        return None
    return f"excluded by a correction: {item.excluded_reason or 'no reason recorded'}"


def list_events(
    context: ServiceContext,
    event_filter: EventFilter,
    customer_ids: Sequence[str] = (),
) -> list[ListedEvent]:
    """Recent events, newest event time first, each with its customer (if a customer's key or
    usage attribution names its subject) and why the meters of its type cannot count it."""
    _check(event_filter)
    return _listed(context, event_filter, customer_ids)


def list_event_page(
    context: ServiceContext,
    event_filter: EventFilter,
    customer_ids: Sequence[str] | None = None,
) -> tuple[list[ListedEvent], EventPosition | None]:
    """One page of the cursor-paginated listing (in `list_events`'s order, after
    `event_filter.before`), and where the next page starts: None when nothing follows.
    `customer_ids` None means any subject; a list keeps only those customers' events."""
    _check(event_filter)
    if customer_ids is not None and not customer_ids:
        return [], None
    wanted = event_filter.limit
    listed = _listed(context, replace(event_filter, limit=wanted + 1), customer_ids or ())
    if len(listed) <= wanted:
        return listed, None
    last = listed[wanted - 1].stored
    return listed[:wanted], EventPosition(last.time, last.seq)


def _check(event_filter: EventFilter) -> None:
    errors = ErrorList()
    if not 1 <= event_filter.limit <= LIST_LIMIT_MAX:
        errors.add("limit", f"must be between 1 and {LIST_LIMIT_MAX}")
    for earlier, later, start_name, end_name in (
        (event_filter.time_from, event_filter.time_to, "from", "to"),
        (event_filter.ingested_from, event_filter.ingested_to, "ingestedAtFrom", "ingestedAtTo"),
    ):
        for instant, name in ((earlier, start_name), (later, end_name)):
            if instant is not None and not is_client_instant(instant):
                errors.add(name, OUT_OF_RANGE)
        if earlier is not None and later is not None and later < earlier:
            errors.add(end_name, "must not be before the start of the range")
    errors.raise_if_any("invalid event query")


def _listed(
    context: ServiceContext, event_filter: EventFilter, customer_ids: Sequence[str]
) -> list[ListedEvent]:
    with context.database.unit_of_work() as uow:
        if customer_ids:
            subjects_of = uow.events.subjects_of_customers(customer_ids)
            subjects = sorted({s for group in subjects_of.values() for s in group})
            event_filter = replace(event_filter, subjects=subjects)
        stored = uow.events.recent(event_filter)
        meters = uow.meters.list_live_for_event_types([s.event.type for s in stored])
        customers = uow.events.customers_by_subject([s.event.subject for s in stored])
    return [
        ListedEvent(
            stored=item,
            customer_id=customers.get(item.event.subject),
            validation_error=_excluded(item) or validation_error(item.event, meters),
        )
        for item in stored
    ]


def events_today_by_subject(context: ServiceContext) -> dict[str, int]:
    """Events stored since midnight UTC, per subject (OpenMeter's debug counters, which reset
    every day at midnight UTC)."""
    now = context.clock()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    with context.database.unit_of_work() as uow:
        return uow.events.counts_by_subject_since(midnight)
