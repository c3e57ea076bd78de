"""`allotment serve --workers N`: N worker processes, each building its own app from the
environment, all serving the database the command was given."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from allotment.api import app as app_module
from allotment.cli.main import app
from allotment.cli.state import STATE
from allotment.services import api_keys
from tests.cli.conftest import WIDE, reset_state


def _printed_key(output: str) -> str:
    [key] = {word for word in output.split() if word.startswith(api_keys.KEY_PREFIX)}
    return key


def test_workers_hand_uvicorn_a_factory_that_reads_the_database_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(
        "uvicorn.run", lambda target, **options: calls.append({"target": target, **options})
    )
    # serve hands the URL down through the environment; monkeypatch puts it back afterwards.
    monkeypatch.delenv("ALLOTMENT_DATABASE_URL", raising=False)
    monkeypatch.setenv("ALLOTMENT_POOL_SIZE", "3")
    url = f"sqlite:///{tmp_path / 'workers.db'}"
    try:
        reset_state()
        result = CliRunner().invoke(
            app, ["--database-url", url, "serve", "--workers", "3"], env=WIDE
        )
        assert result.exit_code == 0, result.output
        key = _printed_key(result.stdout)
        [call] = calls
        assert call["target"] == "allotment.api.app:create_app_from_environment"
        assert (call["factory"], call["workers"]) == (True, 3)
        assert os.environ["ALLOTMENT_DATABASE_URL"] == url
        assert os.environ["ALLOTMENT_POOL_SIZE"] == "3"

        worker_app = app_module.create_app_from_environment()
        with TestClient(worker_app) as client:
            assert client.get("/readyz").json() == {"status": "ok"}
            listed = client.get("/api/v1/subjects", headers={"Authorization": f"Bearer {key}"})
            assert (listed.status_code, listed.json()) == (200, [])
    finally:
        if "context" in STATE.__dict__:
            STATE.context.database.dispose()
        reset_state()


def test_workers_default_to_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("uvicorn.run", lambda target, **options: calls.append(options))
    monkeypatch.setenv("ALLOTMENT_WORKERS", "2")
    monkeypatch.setenv("ALLOTMENT_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    try:
        reset_state()
        result = CliRunner().invoke(app, ["serve"], env=WIDE)
        assert result.exit_code == 0, result.output
        assert calls[0]["workers"] == 2
    finally:
        if "context" in STATE.__dict__:
            STATE.context.database.dispose()
        reset_state()


def _free_port() -> int:
    # Servers started here stay in the ports set aside for such runs.
    for port in range(18390, 18400):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port in 18390-18399")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="counts worker processes in /proc")
def test_two_real_workers_serve_one_database(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "ALLOTMENT_DATABASE_URL": f"sqlite:///{tmp_path / 'served.db'}"}
    allotment = Path(sys.executable).with_name("allotment")
    log = tmp_path / "server.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [str(allotment), "serve", "--workers", "2", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the workers never became ready"
            assert server.poll() is None, log.read_text()
            time.sleep(0.2)
        key = _printed_key(log.read_text())
        headers = {"Authorization": f"Bearer {key}"}
        # Fresh connections land on either worker; every one must know the key and the data.
        created = httpx.post(
            f"{base}/api/v1/customers",
            headers=headers,
            json={"key": "acme", "name": "ACME", "usageAttribution": {"subjectKeys": ["acme"]}},
        )
        assert created.status_code == 201, created.text
        for _ in range(10):
            read = httpx.get(f"{base}/api/v1/customers/acme", headers=headers)
            assert (read.status_code, read.json()["key"]) == (200, "acme")
        assert len(_children(server.pid)) >= 2
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
