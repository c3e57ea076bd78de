"""The maintenance worker rests when there is nothing to do, the notification evaluator paced or
not (a worker that spun would take a core and the database's attention for nothing)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from allotment.api.notification_payloads import render_payload_data
from allotment.services import maintenance
from allotment.services.context import ServiceContext
from allotment.services.maintenance import MaintenanceReport, MaintenanceWorker


@pytest.mark.parametrize("render", [None, render_payload_data])
def test_an_idle_worker_runs_a_round_per_interval(
    context: ServiceContext, monkeypatch: pytest.MonkeyPatch, render: object
) -> None:
    rounds: list[float] = []
    real = maintenance.run_once

    def counted(*args: object) -> MaintenanceReport:
        rounds.append(time.monotonic())
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(maintenance, "run_once", counted)
    worker = MaintenanceWorker(context, timedelta(seconds=0.25), render=render)  # type: ignore[arg-type]
    worker.start()
    time.sleep(1.2)
    worker.stop()
    assert 3 <= len(rounds) <= 7, len(rounds)


def _queue(context: ServiceContext, subjects: int) -> None:
    with context.database.unit_of_work(write=True) as uow:
        uow.outbox.enqueue(context.clock(), subject_keys=[f"s{i}" for i in range(subjects)])
        uow.commit()


def _evaluations(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each maintenance round from now on evaluated notifications, in order."""
    evaluated: list[bool] = []
    real = maintenance.run_once

    def watched(ctx: ServiceContext, render: object = None) -> MaintenanceReport:
        evaluated.append(render is not None)
        return real(ctx, render)  # type: ignore[arg-type]

    monkeypatch.setattr(maintenance, "run_once", watched)
    return evaluated


def test_a_rest_ends_early_for_a_few_queued_items_but_not_for_many(
    context: ServiceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluated = _evaluations(monkeypatch)
    worker = MaintenanceWorker(context, timedelta(seconds=1), render=render_payload_data)
    # As after a heavy round: a long rest ahead.
    rest_until = time.monotonic() + 100
    worker._evaluate_after = rest_until
    _queue(context, maintenance.FEW_QUEUED + 1)
    worker._round()
    _queue(context, 1)  # still many
    worker._round()
    assert evaluated == [False, False]
    with context.database.unit_of_work(write=True) as uow:
        uow.outbox.done(uow.outbox.take_pending(1000).ids)
        uow.commit()
    _queue(context, 1)  # a crossing after the burst
    worker._round()
    assert evaluated == [False, False, True]
    with context.database.single_statement() as uow:
        assert uow.outbox.count_pending(10) == 0
    # The burst's rest still holds for what comes next in bulk.
    assert worker._evaluate_after >= rest_until


def test_a_rest_ends_once_nothing_new_was_queued_for_a_while(context: ServiceContext) -> None:
    worker = MaintenanceWorker(context, timedelta(seconds=1), render=render_payload_data)
    _queue(context, maintenance.FEW_QUEUED + 1)
    t0 = 1000.0
    assert not worker._rest_over(t0)
    assert not worker._rest_over(t0 + maintenance.WRITES_PAUSED / 2)
    _queue(context, 1)  # still writing: the pause starts again
    assert not worker._rest_over(t0 + maintenance.WRITES_PAUSED)
    assert not worker._rest_over(t0 + maintenance.WRITES_PAUSED * 1.5)
    assert worker._rest_over(t0 + maintenance.WRITES_PAUSED * 2)


def test_a_burst_after_a_quiet_spell_settles_before_its_first_round(
    context: ServiceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluated = _evaluations(monkeypatch)
    worker = MaintenanceWorker(context, timedelta(seconds=1), render=render_payload_data)
    _queue(context, 1)  # a lone crossing: evaluated at once
    worker._round()
    assert evaluated == [True]
    worker._evaluate_after = 0.0  # as after a long quiet spell
    _queue(context, maintenance.FEW_QUEUED + 1)  # a burst begins
    seen = time.monotonic()
    worker._round()
    assert evaluated == [True, False]
    assert worker._evaluate_after >= seen + maintenance.BURST_SETTLE
    _queue(context, 100)  # it goes on; the settle is not restarted by it
    worker._round()
    assert evaluated == [True, False, False]
    worker._evaluate_after = time.monotonic()  # the settle is over
    worker._round()
    assert evaluated == [True, False, False, True]
    with context.database.single_statement() as uow:
        assert uow.outbox.count_pending(10) == 0  # the one round took the whole burst
