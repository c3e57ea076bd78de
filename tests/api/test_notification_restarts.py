"""Real `allotment serve` processes: a server killed (SIGKILL) after the commit that fired an
event and before its delivery delivers it once started again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from allotment.services import api_keys
from allotment.services.context import ServiceContext
from allotment.storage import Database
from tests.webhook_receiver import Receiver

SERVER_PORTS = range(18790, 18800)


def _free_port() -> int:
    for port in SERVER_PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip(f"no free port in {SERVER_PORTS}")


def _wait_for(check: Callable[[], Any], what: str, seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def _serve(database_url: str, port: int, log: Path, **env: str) -> subprocess.Popen[bytes]:
    allotment = Path(sys.executable).with_name("allotment")
    environment = {**os.environ, "ALLOTMENT_DATABASE_URL": database_url, **env}
    with log.open("a") as output:
        server = subprocess.Popen(
            [str(allotment), "serve", "--port", str(port)],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )

    def ready() -> bool:
        assert server.poll() is None, log.read_text()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
        except httpx.TransportError:
            return False

    _wait_for(ready, "the server to be ready", 30)
    return server


def test_an_event_committed_before_a_sigkill_is_delivered_after_the_restart(
    database: Database, database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    _key, secret = api_keys.create_key(ServiceContext(database=database), "admin", "restarts")
    headers = {"Authorization": f"Bearer {secret}"}
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    # The first server evaluates but never sends: what SIGKILL leaves behind is a committed
    # event whose delivery has not happened.
    server = _serve(database_url, port, log, ALLOTMENT_WEBHOOK_SENDER_ENABLED="false")
    api = httpx.Client(base_url=base, headers=headers)
    try:
        assert api.post(
            "/api/v1/meters",
            json={"slug": "tokens", "eventType": "prompt", "aggregation": "SUM",
                  "valueProperty": "$.tokens"},
        ).status_code == 201  # fmt: skip
        assert (
            api.post(
                "/api/v1/features", json={"key": "ai_tokens", "name": "AI", "meterSlug": "tokens"}
            ).status_code
            == 201
        )
        assert (
            api.post(
                "/api/v1/customers",
                json={"key": "acme", "name": "ACME", "usageAttribution": {"subjectKeys": ["acme"]}},
            ).status_code
            == 201
        )
        entitlement = {
            "type": "metered",
            "featureKey": "ai_tokens",
            "usagePeriod": {"interval": "MONTH", "anchor": "2024-01-01T00:00:00Z"},
            "measureUsageFrom": "2024-01-01T00:00:00Z",
            "issueAfterReset": 100,
        }
        assert api.post("/api/v2/customers/acme/entitlements", json=entitlement).status_code == 201
        channel = api.post(
            "/api/v1/notification/channels",
            json={"type": "WEBHOOK", "name": "r", "url": receiver.url},
        ).json()
        receiver.secret = channel["signingSecret"]
        rule = {
            "type": "entitlements.balance.threshold",
            "name": "r",
            "channels": [channel["id"]],
            "thresholds": [{"value": 50, "type": "usage_value"}],
        }
        assert api.post("/api/v1/notification/rules", json=rule).status_code == 201
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        usage = {"specversion": "1.0", "id": "e1", "source": "t", "type": "prompt",
                 "subject": "acme", "time": now, "data": {"tokens": 80}}  # fmt: skip
        assert api.post("/api/v1/events", json=usage).status_code == 204
        events = _wait_for(
            lambda: api.get("/api/v1/notification/events").json()["items"], "the event"
        )
        assert events[0]["deliveryStatus"][0]["state"] == "PENDING"
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        assert receiver.received == []

        server = _serve(database_url, port, log)
        _wait_for(lambda: receiver.received, "the delivery after the restart")
        (payload,) = receiver.payloads()
        assert payload["id"] == events[0]["id"]
        assert payload["data"]["value"]["usage"] == 80

        def delivered() -> bool:
            event = api.get(f"/api/v1/notification/events/{events[0]['id']}").json()
            return bool(event["deliveryStatus"][0]["state"] == "SUCCESS")

        _wait_for(delivered, "the delivery to be recorded")
        assert len(receiver.received) == 1
    finally:
        api.close()
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
