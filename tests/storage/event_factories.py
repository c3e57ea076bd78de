"""Small typed factories for events and meters, shared by the event and meter suites."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from allotment.domain.events import Event
from allotment.domain.meters import Aggregation, Meter
from allotment.ids import new_id
from allotment.storage import Database

CREATED = datetime(2024, 1, 1, tzinfo=UTC)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def event(
    id: str,
    time: datetime | None,
    data: Mapping[str, Any] | None = None,
    *,
    subject: str = "acme",
    type: str = "prompt",
    source: str = "test",
) -> Event:
    return Event(id=id, source=source, type=type, subject=subject, time=time, data=data)


def meter(
    aggregation: Aggregation = Aggregation.SUM,
    *,
    slug: str = "tokens",
    value_property: str | None = "$.tokens",
    group_by: Mapping[str, str] | None = None,
    event_type: str = "prompt",
    event_from: datetime | None = None,
) -> Meter:
    return Meter(
        id=new_id(),
        slug=slug,
        name=slug,
        aggregation=aggregation,
        event_type=event_type,
        created_at=CREATED,
        updated_at=CREATED,
        value_property=None if aggregation is Aggregation.COUNT else value_property,
        group_by=dict(group_by or {}),
        event_from=event_from,
    )


def store(database: Database, batch: Sequence[Event], received_at: datetime = CREATED) -> int:
    with database.unit_of_work(write=True) as uow:
        stored = uow.events.add_many(batch, received_at)
        uow.commit()
    return stored


def save(database: Database, definition: Meter) -> Meter:
    with database.unit_of_work(write=True) as uow:
        uow.meters.add(definition)
        uow.commit()
    return definition
