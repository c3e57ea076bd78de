"""The events service: one transaction per batch, receipt time, listing with explanations."""

from __future__ import annotations

import pytest

from allotment.domain.events import EventFilter
from allotment.domain.meters import Aggregation, MeterDefinition
from allotment.domain.time import utc
from allotment.errors import InvalidInput
from allotment.services import events as events_service
from allotment.services import meters as meters_service
from allotment.services.context import ServiceContext
from tests.conftest import SettableClock
from tests.factories import event


def test_ingest_reports_new_events_and_fills_in_the_receipt_time(
    context: ServiceContext, clock: SettableClock
) -> None:
    clock.set(utc(2024, 5, 1, 8))
    batch = [event("a", None), event("b", utc(2024, 4, 30)), event("a", None)]
    assert events_service.ingest(context, batch) == 2
    assert events_service.ingest(context, batch) == 0
    listed = events_service.list_events(context, EventFilter())
    assert [(e.stored.event.id, e.stored.time) for e in listed] == [
        ("a", utc(2024, 5, 1, 8)),
        ("b", utc(2024, 4, 30)),
    ]
    assert {e.stored.ingested_at for e in listed} == {utc(2024, 5, 1, 8)}


def test_an_empty_batch_is_refused(context: ServiceContext) -> None:
    with pytest.raises(InvalidInput, match="no events found"):
        events_service.ingest(context, [])


def test_listing_explains_what_live_meters_cannot_count(context: ServiceContext) -> None:
    meters_service.create_meter(
        context,
        MeterDefinition(
            slug="cost", aggregation=Aggregation.MAX, event_type="prompt", value_property="$.cost"
        ),
    )
    gone = meters_service.create_meter(
        context,
        MeterDefinition(
            slug="gone", aggregation=Aggregation.SUM, event_type="prompt", value_property="$.x"
        ),
    )
    meters_service.delete_meter(context, gone.id)
    events_service.ingest(context, [event("a", utc(2024, 1, 1), {"cost": [1]})])
    (listed,) = events_service.list_events(context, EventFilter())
    # The deleted meter no longer reads prompts, so it has nothing to say.
    assert (
        listed.validation_error == "meter cost: value property '$.cost' is an array, not a number"
    )


def test_listing_rules(context: ServiceContext) -> None:
    with pytest.raises(InvalidInput) as raised:
        events_service.list_events(
            context, EventFilter(limit=0, time_from=utc(2024, 1, 2), time_to=utc(2024, 1, 1))
        )
    assert [e.field for e in raised.value.errors] == ["limit", "to"]
