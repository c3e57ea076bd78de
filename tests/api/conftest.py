"""API fixtures: an in-process client with an admin key, and a real server for the SDK."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from fastapi.testclient import TestClient

from allotment.api.app import create_app
from allotment.services import api_keys
from allotment.services.context import ServiceContext
from tests.conftest import SettableClock


@pytest.fixture
def admin_key(context: ServiceContext) -> str:
    _key, secret = api_keys.create_key(context, "admin", "test admin")
    return secret


@pytest.fixture
def client(context: ServiceContext, admin_key: str) -> Iterator[TestClient]:
    """A client that sends the admin key on every request."""
    app = create_app(context=context)
    with TestClient(app, headers={"Authorization": f"Bearer {admin_key}"}) as test_client:
        yield test_client


@pytest.fixture
def anonymous_client(context: ServiceContext) -> Iterator[TestClient]:
    with TestClient(create_app(context=context)) as test_client:
        yield test_client


@dataclass
class LiveServer:
    url: str
    admin_key: str
    context: ServiceContext
    clock: SettableClock


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(
    context: ServiceContext, clock: SettableClock, admin_key: str
) -> Iterator[LiveServer]:
    """A real uvicorn server in a thread, for the official SDK (it speaks real HTTP)."""
    port = _free_port()
    config = uvicorn.Config(
        create_app(context=context), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", admin_key, context, clock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def sdk(live_server: LiveServer):  # type: ignore[no-untyped-def]
    """The official `openmeter` Python client, pointed at the live server."""
    from openmeter import Client

    return Client(endpoint=live_server.url, token=live_server.admin_key)
