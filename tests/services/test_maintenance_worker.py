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
