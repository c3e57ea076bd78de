"""The meters service: definitions, lifecycle rules and query composition, on both databases."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from allotment.domain.meters import Aggregation, MeterDefinition, MeterQuery, WindowSize
from allotment.domain.time import utc
from allotment.errors import Conflict, InvalidInput, NotFound, PreconditionFailed
from allotment.services import events as events_service
from allotment.services import meters as meters_service
from allotment.services.context import ServiceContext
from tests.conftest import SettableClock
from tests.factories import event

TOKENS = MeterDefinition(
    slug="tokens",
    aggregation=Aggregation.SUM,
    event_type="prompt",
    value_property="$.tokens",
    group_by={"model": "$.model"},
)


def test_create_stamps_the_clock_and_defaults_the_name(
    context: ServiceContext, clock: SettableClock
) -> None:
    clock.set(utc(2024, 2, 1, 9, 30))
    meter = meters_service.create_meter(context, TOKENS)
    assert (meter.name, meter.created_at, meter.updated_at) == (
        "tokens",
        utc(2024, 2, 1, 9, 30),
        utc(2024, 2, 1, 9, 30),
    )
    assert meters_service.get_meter(context, meter.id) == meter
    assert meters_service.get_meter(context, "tokens") == meter


def test_invalid_definitions_raise_with_every_field(context: ServiceContext) -> None:
    bad = MeterDefinition(
        slug="Tokens!", aggregation=Aggregation.AVG, event_type="", group_by={"a": "x"}
    )
    with pytest.raises(InvalidInput) as raised:
        meters_service.create_meter(context, bad)
    assert [e.field for e in raised.value.errors] == [
        "slug",
        "eventType",
        "valueProperty",
        "groupBy.a",
    ]
    assert meters_service.list_meters(context) == []


def test_slugs_are_unique_among_live_meters(context: ServiceContext) -> None:
    first = meters_service.create_meter(context, TOKENS)
    with pytest.raises(Conflict) as raised:
        meters_service.create_meter(context, TOKENS)
    assert raised.value.conflicting_entity_id == first.id
    meters_service.delete_meter(context, "tokens")
    second = meters_service.create_meter(context, TOKENS)
    # The slug names the live meter; the deleted one stays reachable by id.
    assert meters_service.get_meter(context, "tokens").id == second.id
    assert meters_service.get_meter(context, first.id).deleted_at is not None


def test_a_slug_whose_meters_are_all_deleted_finds_the_last_one(
    context: ServiceContext, clock: SettableClock
) -> None:
    meters_service.create_meter(context, TOKENS)
    meters_service.delete_meter(context, "tokens")
    clock.advance(timedelta(days=1))
    last = meters_service.create_meter(context, TOKENS)
    meters_service.delete_meter(context, "tokens")
    assert meters_service.get_meter(context, "tokens").id == last.id
    with pytest.raises(PreconditionFailed):
        meters_service.update_meter(
            context, "tokens", name=None, description=None, metadata=None, group_by={}
        )
    with pytest.raises(NotFound):
        meters_service.get_meter(context, "other")


def test_update_checks_the_group_by_and_stamps_the_clock(
    context: ServiceContext, clock: SettableClock
) -> None:
    meters_service.create_meter(context, TOKENS)
    clock.advance(timedelta(hours=1))
    with pytest.raises(InvalidInput) as raised:
        meters_service.update_meter(
            context,
            "tokens",
            name=None,
            description=None,
            metadata=None,
            group_by={"value": "$.tokens"},
        )
    assert raised.value.field == "groupBy.value"
    updated = meters_service.update_meter(
        context, "tokens", name="Tokens", description="d", metadata={"a": "b"}, group_by={}
    )
    assert (updated.name, updated.group_by, updated.updated_at) == ("Tokens", {}, clock())


def test_query_rows_get_window_ends_and_range_bounds(
    context: ServiceContext, clock: SettableClock
) -> None:
    meters_service.create_meter(context, TOKENS)
    events_service.ingest(
        context,
        [
            event("1", utc(2024, 3, 10, 7, 30), {"tokens": "1.25", "model": "a"}),
            event("2", utc(2024, 3, 10, 9), {"tokens": 2, "model": "a"}),
            event("3", utc(2024, 3, 10, 9, 45, 10), {"tokens": 4}, subject="beta"),
        ],
    )
    daily = meters_service.query_meter(
        context,
        "tokens",
        MeterQuery(window_size=WindowSize.DAY, time_zone="America/Los_Angeles"),
    )
    assert [(r.window_start, r.window_end, r.value) for r in daily.rows] == [
        (utc(2024, 3, 9, 8), utc(2024, 3, 10, 8), Decimal("1.25")),
        (utc(2024, 3, 10, 8), utc(2024, 3, 11, 7), Decimal(6)),
    ]
    whole = meters_service.query_meter(context, "tokens", MeterQuery(group_by=("model",)))
    assert [(r.window_start, r.window_end, dict(r.group_by), r.value) for r in whole.rows] == [
        # Without windows, each group spans its own events (floored, end one minute on).
        (utc(2024, 3, 10, 7, 30), utc(2024, 3, 10, 9, 1), {"model": "a"}, Decimal("3.25")),
        (utc(2024, 3, 10, 9, 45), utc(2024, 3, 10, 9, 46), {"model": None}, Decimal(4)),
    ]
    with pytest.raises(InvalidInput) as raised:
        meters_service.query_meter(context, "tokens", MeterQuery(group_by=("colour",)))
    assert raised.value.field == "groupBy"


def test_group_by_values_default_to_the_last_day(
    context: ServiceContext, clock: SettableClock
) -> None:
    meters_service.create_meter(context, TOKENS)
    events_service.ingest(
        context,
        [
            event("old", clock() - timedelta(hours=25), {"tokens": 1, "model": "old"}),
            event("new", clock() - timedelta(hours=23), {"tokens": 1, "model": "new"}),
        ],
    )
    assert meters_service.list_group_by_values(context, "tokens", "model") == ["new"]
    assert meters_service.list_group_by_values(context, "tokens", "subject") == ["acme"]
    with pytest.raises(InvalidInput):
        meters_service.list_meter_subjects(context, "tokens", clock(), clock())
