"""The official OpenMeter JavaScript SDK drives plans, subscriptions and customers
(tests/js/catalog.mjs) against a real server: exact balances at every step of the
Free -> Pro -> Free scenario."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from allotment.api.app import create_app
from allotment.services.context import ServiceContext
from tests.api.test_javascript_sdk import JS_DIR, node_sdk
from tests.conftest import SettableClock

# This suite's own ports, so that its server never meets another suite's.
_PORTS = range(18600, 18700)

__all__ = ["node_sdk"]


def _port() -> int:
    for port in _PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18600-18699")


@pytest.fixture
def catalog_server(context: ServiceContext, clock: SettableClock) -> Iterator[str]:
    clock.release()  # the SDK stamps events and grants with the real time
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(context=context), host="127.0.0.1", port=_port(), log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_javascript_sdk_runs_plans_and_subscriptions(
    node_sdk: Path, catalog_server: str, admin_key: str
) -> None:
    result = subprocess.run(
        [str(node_sdk), "catalog.mjs", catalog_server, admin_key],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert result.stdout.strip() == "ok"
