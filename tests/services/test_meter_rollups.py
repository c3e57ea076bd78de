"""A meter's roll-ups over its life: created after its events (backfill), its group-by changed
(a new generation), deleted (ingest stops writing for it), on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from allotment.domain.meters import Aggregation, MeterDefinition, MeterQuery, WindowSize
from allotment.services import maintenance, meters
from allotment.services.context import ServiceContext
from tests.factories import event, store_events

T = datetime(2024, 1, 10, 9, tzinfo=UTC)


def _events(count: int, start: int = 0) -> list[object]:
    return [
        event(
            f"e{n}",
            T + timedelta(minutes=n * 7),
            {"tokens": n, "model": "a" if n % 2 else "b"},
            subject="acme" if n % 3 else "beta",
        )
        for n in range(start, start + count)
    ]


def _daily(context: ServiceContext, slug: str, group_by: tuple[str, ...] = ()) -> list[object]:
    result = meters.query_meter(
        context, slug, MeterQuery(window_size=WindowSize.DAY, group_by=group_by)
    )
    return sorted(
        ((r.window_start, tuple(r.group_by.items()), r.value) for r in result.rows), key=repr
    )


def _status(context: ServiceContext, slug: str) -> object:
    with context.database.unit_of_work() as uow:
        meter = uow.meters.find(slug)
        assert meter is not None
        return uow.rollups.statuses([meter.id]).get(meter.id)


def test_a_meter_created_after_its_events_sees_them_and_backfills(context: ServiceContext) -> None:
    store_events(context.database, _events(300))  # no meter reads them yet
    definition = MeterDefinition(
        slug="tokens",
        aggregation=Aggregation.SUM,
        event_type="prompt",
        value_property="$.tokens",
        group_by={"model": "$.model"},
    )
    meters.create_meter(context, definition)
    status = _status(context, "tokens")
    assert status is not None and not status.ready  # type: ignore[attr-defined]
    # Before the backfill the raw events answer; the totals are already complete.
    before = _daily(context, "tokens", ("model",))
    assert sum(value for *_rest, value in before) == sum(range(300))  # type: ignore[misc]
    # Events after the meter are rolled up by ingest itself.
    store_events(context.database, _events(100, start=300))
    report = maintenance.run_until_idle(context)
    assert report.backfilled > 0
    status = _status(context, "tokens")
    assert status.ready  # type: ignore[attr-defined]
    after = _daily(context, "tokens", ("model",))
    assert sum(value for *_rest, value in after) == sum(range(400))  # type: ignore[misc]
    with context.database.unit_of_work() as uow:
        meter = uow.meters.find("tokens")
        assert meter is not None
        raw = uow.meters.aggregate(
            meter,
            MeterQuery(window_size=WindowSize.DAY),
            meters.check_query(meter, MeterQuery(window_size=WindowSize.DAY))[0],
        )
    assert sorted((b.window_start, b.value) for b in raw) == sorted(
        (r.window_start, r.value)
        for r in meters.query_meter(context, "tokens", MeterQuery(window_size=WindowSize.DAY)).rows
    )


def test_a_group_by_change_starts_a_new_generation_with_the_same_totals(
    context: ServiceContext,
) -> None:
    definition = MeterDefinition(
        slug="tokens", aggregation=Aggregation.SUM, event_type="prompt", value_property="$.tokens"
    )
    meters.create_meter(context, definition)
    store_events(context.database, _events(50))
    maintenance.run_until_idle(context)
    first = _status(context, "tokens")
    meters.update_meter(
        context, "tokens", name=None, description=None, metadata=None, group_by={"model": "$.model"}
    )
    second = _status(context, "tokens")
    assert second.generation == first.generation + 1  # type: ignore[attr-defined]
    by_model = _daily(context, "tokens", ("model",))  # raw events until the backfill is done
    maintenance.run_until_idle(context)
    assert _daily(context, "tokens", ("model",)) == by_model
    assert {groups for _day, groups, _value in by_model} == {  # type: ignore[misc]
        (("model", "a"),),
        (("model", "b"),),
    }
    with context.database.unit_of_work() as uow:
        old = uow.connection.exec_driver_sql(
            "SELECT count(*) FROM usage_series WHERE generation = 1"
        ).scalar()
    assert old == 0  # maintenance dropped the old generation's series


def test_a_deleted_meter_costs_ingest_nothing(context: ServiceContext) -> None:
    definition = MeterDefinition(slug="tokens", aggregation=Aggregation.COUNT, event_type="prompt")
    meters.create_meter(context, definition)
    store_events(context.database, _events(10))
    meters.delete_meter(context, "tokens")
    with context.database.unit_of_work() as uow:
        before = uow.connection.exec_driver_sql("SELECT count(*) FROM usage_deltas").scalar()
    from allotment.services import events as events_service

    events_service.ingest(context, _events(10, start=10))  # type: ignore[arg-type]
    with context.database.unit_of_work() as uow:
        after = uow.connection.exec_driver_sql("SELECT count(*) FROM usage_deltas").scalar()
    assert after == before
    # The deleted meter still answers from the raw events.
    rows = meters.query_meter(context, "tokens", MeterQuery()).rows
    assert [r.value for r in rows] == [Decimal(20)]
