"""Event storage on SQLite and PostgreSQL: deduplication, defaults, listing, attribution."""

from __future__ import annotations

from decimal import Decimal

from allotment.domain.events import EventFilter
from allotment.domain.time import utc
from allotment.ids import new_id
from allotment.storage import Database
from allotment.storage.tables import customer_subjects, customers
from tests.factories import event, store_events

RECEIVED = utc(2024, 1, 15, 12)


def test_duplicates_inside_a_batch_and_across_batches_are_stored_once(database: Database) -> None:
    first = event("e1", utc(2024, 1, 15, 10), {"tokens": 100})
    repeated_in_batch = event("e1", utc(2024, 1, 15, 11), {"tokens": 999})
    other_source = event("e1", utc(2024, 1, 15, 10), {"tokens": 7}, source="elsewhere")
    assert store_events(database, [first, repeated_in_batch, other_source], RECEIVED) == 2
    assert store_events(database, [first, repeated_in_batch, other_source], RECEIVED) == 0
    with database.unit_of_work() as uow:
        assert uow.events.count() == 2
        listed = uow.events.recent(EventFilter())
    # The first copy wins; a later duplicate changes nothing.
    kept = {(s.event.source, s.event.id): s for s in listed}
    assert kept[("test", "e1")].event.data == {"tokens": 100}
    assert kept[("test", "e1")].time == utc(2024, 1, 15, 10)


def test_an_event_without_time_happened_when_it_was_received(database: Database) -> None:
    store_events(database, [event("e1", None)], RECEIVED)
    with database.unit_of_work() as uow:
        (stored,) = uow.events.recent(EventFilter())
    assert stored.time == RECEIVED
    assert stored.ingested_at == RECEIVED
    assert stored.event.specversion == "1.0"


def test_data_round_trips_exactly(database: Database) -> None:
    data = {
        "big": 123456789012345678901234567890,
        "price": 0.1,
        "text": "naïve — ✓",
        "nested": {"list": [1, "two", None, True]},
    }
    store_events(database, [event("e1", RECEIVED, data)])
    with database.unit_of_work() as uow:
        (stored,) = uow.events.recent(EventFilter())
    # Numbers come back exactly as written: 0.1 as the decimal 0.1, never a binary float.
    assert stored.event.data == {**data, "price": Decimal("0.1")}
    assert isinstance(stored.event.data["price"], Decimal)


def test_listing_is_newest_first_with_filters(database: Database) -> None:
    store_events(
        database,
        [
            event("order-1", utc(2024, 1, 10), subject="Acme"),
            event("order-2", utc(2024, 1, 11), subject="acme-eu"),
            event("ORDER-3", utc(2024, 1, 12), subject="beta"),
            event("100%_done", utc(2024, 1, 13), subject="beta"),
        ],
        RECEIVED,
    )
    store_events(database, [event("late", utc(2024, 1, 9), subject="beta")], utc(2024, 1, 16))

    def ids(**filters: object) -> list[str]:
        with database.unit_of_work() as uow:
            return [s.event.id for s in uow.events.recent(EventFilter(**filters))]  # type: ignore[arg-type]

    assert ids() == ["100%_done", "ORDER-3", "order-2", "order-1", "late"]
    assert ids(limit=2) == ["100%_done", "ORDER-3"]
    # Partial matches are case-sensitive and take % and _ literally.
    assert ids(id_contains="order") == ["order-2", "order-1"]
    assert ids(id_contains="%_") == ["100%_done"]
    assert ids(subject_contains="acme") == ["order-2"]
    # Event-time bounds are inclusive.
    assert ids(time_from=utc(2024, 1, 11), time_to=utc(2024, 1, 12)) == ["ORDER-3", "order-2"]
    assert ids(ingested_from=utc(2024, 1, 16)) == ["late"]
    assert ids(ingested_to=RECEIVED) == ["100%_done", "ORDER-3", "order-2", "order-1"]
    assert ids(subjects=["Acme", "acme-eu"]) == ["order-2", "order-1"]
    assert ids(subjects=[]) == []


def test_subjects_are_attributed_to_live_customers(database: Database) -> None:
    acme, beta, gone = new_id(), new_id(), new_id()
    with database.engine.begin() as connection:
        for customer_id, key, deleted_at in [
            (acme, "acme", None),
            (beta, None, None),
            (gone, "gone", RECEIVED),
        ]:
            connection.execute(
                customers.insert().values(
                    id=customer_id,
                    key=key,
                    name=customer_id,
                    created_at=RECEIVED,
                    updated_at=RECEIVED,
                    deleted_at=deleted_at,
                )
            )
        connection.execute(
            customer_subjects.insert(),
            [
                {"customer_id": acme, "subject_key": "acme-eu"},
                {"customer_id": beta, "subject_key": "beta-1"},
                {"customer_id": beta, "subject_key": "beta-2"},
            ],
        )
    with database.unit_of_work() as uow:
        assert uow.events.customers_by_subject(["acme", "acme-eu", "beta-2", "gone", "x"]) == {
            "acme": acme,
            "acme-eu": acme,
            "beta-2": beta,
        }
        assert uow.events.subjects_of_customers([acme, beta, gone, "unknown"]) == {
            acme: ["acme", "acme-eu"],
            beta: ["beta-1", "beta-2"],
        }
