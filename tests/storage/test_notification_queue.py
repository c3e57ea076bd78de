"""The evaluator's queue: a round takes and removes tens of thousands of rows at once, on both
databases (one array parameter on PostgreSQL, lists in pieces on SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime

from allotment.services.notification_evaluation import PENDING_CHUNK
from allotment.storage import Database


def test_a_round_takes_a_whole_burst_and_removes_exactly_what_it_took(database: Database) -> None:
    at = datetime(2024, 1, 15, tzinfo=UTC)
    burst = 12_000  # above SQLite's piece of 10,000 ids, below a round's PENDING_CHUNK
    assert burst < PENDING_CHUNK
    with database.unit_of_work(write=True) as uow:
        uow.outbox.enqueue(at, subject_keys=[f"s-{i % 900}-{i}" for i in range(burst)])
        uow.outbox.enqueue(at, entitlement_ids=["01HZZZZZZZZZZZZZZZZZZZZZZZ"])
        uow.commit()
    with database.unit_of_work(write=True) as uow:
        taken = uow.outbox.take_pending(PENDING_CHUNK)
        assert len(taken.ids) == burst + 1
        assert len(taken.subject_keys) == burst
        assert taken.entitlement_ids == {"01HZZZZZZZZZZZZZZZZZZZZZZZ"}
        # Queued after the round took its rows: it stays for the next round.
        uow.outbox.enqueue(at, subject_keys=["late"])
        uow.outbox.done(taken.ids)
        uow.commit()
    with database.unit_of_work() as uow:
        left = uow.outbox.take_pending(PENDING_CHUNK)
    assert left.subject_keys == {"late"} and not left.entitlement_ids
