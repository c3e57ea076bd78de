"""Soak tests against real `allotment serve` processes: SIGKILL under load, PostgreSQL stopped and
frozen under load, and a probe of hostile inputs. `make test` runs a short version of each;
`make soak` (ALLOTMENT_SOAK=1) runs them for minutes. Each prints its figures.

Invariants: nothing acknowledged is lost, nothing is stored twice, no answer is a 500, every 503
carries Retry-After, liveness always answers, and the log has no traceback.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from allotment.services import api_keys
from allotment.services.context import ServiceContext
from allotment.storage import Database
from allotment.storage.migrations import upgrade
from tests.conftest import POSTGRES_ADMIN_URL, _postgres_available
from tests.throwaway_postgres import ThrowawayPostgres, wait_until

SOAK = os.environ.get("ALLOTMENT_SOAK") == "1"
ALLOTMENT = str(Path(sys.executable).parent / "allotment")


def scale(short: int, long: int) -> int:
    return long if SOAK else short


def report(name: str, **figures: Any) -> None:
    line = f"[soak] {name}: " + ", ".join(f"{key}={value}" for key, value in figures.items())
    print(line)
    with open(Path(os.environ.get("ALLOTMENT_SOAK_REPORT", "/tmp/allotment-soak.txt")), "a") as f:
        f.write(line + "\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`allotment serve` in a subprocess, killed and restarted at will."""

    def __init__(self, database_url: str, log_path: Path, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            **os.environ,
            "ALLOTMENT_DATABASE_URL": database_url,
            "ALLOTMENT_RATE_LIMIT_INGEST": "",
            "ALLOTMENT_RATE_LIMIT_WRITES": "",
            "ALLOTMENT_RATE_LIMIT_AUTH_FAILURES": "",
            **settings,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [ALLOTMENT, "serve", "--no-migrate", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        if not wait_until(self._healthy, 60):
            self.kill()
            raise AssertionError(f"the server did not start: {self.log_path.read_text()[-2000:]}")

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def rss_bytes(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()


@dataclass
class Load:
    """Senders that each deliver `batches` batches of `size` events, retrying until acked."""

    server: Server
    key: str
    senders: int
    batches: int
    size: int = 50
    statuses: Counter[int] = field(default_factory=Counter)
    missing_retry_after: int = 0
    slowest_seconds: float = 0.0
    errors: int = 0
    acknowledged: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, stop: threading.Event) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._send, args=(index, stop), daemon=True)
            for index in range(self.senders)
        ]
        for thread in threads:
            thread.start()
        return threads

    def _send(self, sender: int, stop: threading.Event) -> None:
        headers = {
            "Authorization": f"Bearer {self.key}",
            "Content-Type": "application/cloudevents-batch+json",
        }
        with httpx.Client(timeout=30) as client:
            for batch in range(self.batches):
                ids = [f"s{sender}-b{batch}-e{i}" for i in range(self.size)]
                body = json.dumps(
                    [
                        {
                            "specversion": "1.0",
                            "id": event_id,
                            "source": "soak",
                            "type": "prompt",
                            "subject": f"customer-{sender}",
                            "time": "2024-01-15T10:00:00Z",
                            "data": {"tokens": 1},
                        }
                        for event_id in ids
                    ]
                )
                while True:
                    started = time.monotonic()
                    try:
                        response = client.post(
                            self.server.url + "/api/v1/events", content=body, headers=headers
                        )
                    except httpx.HTTPError:
                        with self.lock:
                            self.errors += 1
                        time.sleep(0.1)
                        continue
                    elapsed = time.monotonic() - started
                    with self.lock:
                        self.statuses[response.status_code] += 1
                        self.slowest_seconds = max(self.slowest_seconds, elapsed)
                        if response.status_code == 503 and "retry-after" not in response.headers:
                            self.missing_retry_after += 1
                    if response.status_code == 204:
                        with self.lock:
                            self.acknowledged.update(ids)
                        break
                    if response.status_code < 500:
                        break  # refused for good: the test's assertions report it
                    time.sleep(0.1)

    @property
    def sent(self) -> int:
        return self.senders * self.batches * self.size


def stored_events(url: str) -> tuple[int, int]:
    engine = create_engine(Database(url).url)
    with engine.connect() as connection:
        rows, distinct = connection.execute(
            text("SELECT count(*), count(DISTINCT source || ':' || id) FROM events")
        ).one()
    engine.dispose()
    return int(rows), int(distinct)


def admin_key_for(url: str) -> str:
    database = Database(url)
    _key, secret = api_keys.create_key(ServiceContext(database=database), "admin", "soak")
    database.dispose()
    return secret


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    problem = _postgres_available()
    if problem is not None:
        if os.environ.get("ALLOTMENT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but: {problem}")
        pytest.skip(problem)
    name = f"allotment_soak_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_sigkill_under_load_loses_nothing_acknowledged_and_stores_nothing_twice(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'crash.db'}"
        if kind == "sqlite"
        else request.getfixturevalue("fresh_postgres_url")
    )
    upgrade(url)
    server = Server(url, tmp_path / "server.log")
    server.start()
    load = Load(server, admin_key_for(url), senders=scale(3, 8), batches=scale(120, 1500))
    stop = threading.Event()
    threads = load.run(stop)
    kills = 0
    try:
        while any(thread.is_alive() for thread in threads) and kills < scale(3, 12):
            time.sleep(random.uniform(0.3, 1.0))
            server.kill()
            kills += 1
            server.start()
        for thread in threads:
            thread.join(timeout=scale(120, 1200))
    finally:
        stop.set()
        server.stop()
    rows, distinct = stored_events(url)
    report(
        f"sigkill[{kind}]",
        kills_survived=kills,
        events_sent=load.sent,
        events_acknowledged=len(load.acknowledged),
        events_stored=rows,
        connection_errors=load.errors,
    )
    assert kills >= 2
    assert len(load.acknowledged) == load.sent
    assert rows == distinct == load.sent
    assert load.statuses.keys() <= {204, 503}, load.statuses


@pytest.fixture
def cluster() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres()
    server.start()
    try:
        yield server
    finally:
        server.destroy()


def _watch_health(server: Server, stop: threading.Event, worst: list[float]) -> None:
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            started = time.monotonic()
            response = client.get(server.url + "/healthz")
            assert response.status_code == 200
            worst[0] = max(worst[0], time.monotonic() - started)
            time.sleep(0.1)


@pytest.mark.postgres
@pytest.mark.parametrize("outage", ["stopped", "frozen"])
def test_postgres_stopped_or_frozen_under_load(
    outage: str, cluster: ThrowawayPostgres, tmp_path: Path
) -> None:
    upgrade(cluster.url)
    server = Server(
        cluster.url,
        tmp_path / "server.log",
        ALLOTMENT_DATABASE_STATEMENT_TIMEOUT_SECONDS="2",
        ALLOTMENT_DATABASE_CONNECT_TIMEOUT_SECONDS="1",
        ALLOTMENT_DATABASE_POOL_TIMEOUT_SECONDS="1",
    )
    server.start()
    load = Load(server, admin_key_for(cluster.url), senders=scale(3, 6), batches=scale(40, 400))
    stop = threading.Event()
    worst_health = [0.0]
    watcher = threading.Thread(target=_watch_health, args=(server, stop, worst_health))
    watcher.start()
    threads = load.run(stop)
    outages = 0
    readiness_seconds: list[float] = []
    try:
        for _ in range(scale(2, 8)):
            time.sleep(1.0)
            cluster.freeze() if outage == "frozen" else cluster.stop("immediate")
            outages += 1
            started = time.monotonic()
            ready = httpx.get(server.url + "/readyz", timeout=10)
            readiness_seconds.append(time.monotonic() - started)
            assert ready.status_code == 503, ready.text
            time.sleep(scale(3, 8))
            cluster.thaw() if outage == "frozen" else cluster.start()
        for thread in threads:
            thread.join(timeout=scale(120, 1200))
    finally:
        stop.set()
        watcher.join(timeout=15)
        server.stop()
    rows, distinct = stored_events(cluster.url)
    lines = server.log_lines()
    unavailable_lines = sum('"database unavailable"' in line for line in lines)
    report(
        f"postgres-{outage}",
        outages=outages,
        events_sent=load.sent,
        events_stored=rows,
        answers=dict(load.statuses),
        slowest_answer_s=round(load.slowest_seconds, 2),
        worst_healthz_s=round(worst_health[0], 2),
        worst_readyz_s=round(max(readiness_seconds), 2),
        log_lines=len(lines),
    )
    assert rows == distinct == load.sent == len(load.acknowledged)
    assert load.statuses.keys() <= {204, 503}, load.statuses
    assert load.missing_retry_after == 0
    assert worst_health[0] < 1.0
    # The readiness timeout is 1.5 s; the rest is a loaded machine scheduling the probe.
    assert max(readiness_seconds) < 3.0
    assert load.slowest_seconds < 8
    assert not any("Traceback" in line for line in lines)
    # One line per refused request, not a traceback each.
    assert unavailable_lines <= load.statuses[503] + 5


def _hostile_inputs() -> Iterator[tuple[str, str, dict[str, str], bytes]]:
    """(method, path, headers, body) of what a probe would try."""
    json_type = {"Content-Type": "application/json"}
    writes = [
        ("POST", "/api/v1/customers"),
        ("PUT", "/api/v1/customers/acme"),
        ("POST", "/api/v1/subjects"),
        ("POST", "/api/v1/meters"),
        ("POST", "/api/v1/features"),
        ("POST", "/api/v2/customers/acme/entitlements"),
        ("POST", "/api/v2/customers/acme/entitlements/ai_tokens/grants"),
        ("POST", "/api/v1/meters/tokens/query"),
        ("POST", "/api/v1/events"),
    ]
    bodies = [
        b"[" * 5_000 + b"]" * 5_000,
        b'{"a": ' * 800 + b"1" + b"}" * 800,
        b'{"name": "x", "name": "y", "key": "k"}',
        b'{"name": NaN, "key": "k", "metadata": {"n": Infinity}}',
        b'[{"key": "s", "metadata": {"n": 1e400, "m": 1e-400}}]',
        b'{"amount": 1e400, "effectiveAt": "2024-01-01T00:00:00Z"}',
        b'{"amount": 0.1234567890123456789012345, "effectiveAt": "2024-01-01T00:00:00Z"}',
        b'{"key": "k", "name": "' + b"x" * 100_000 + b'"}',
        b'{"key": "k", "name": "n", "metadata": {"a": "' + b"y" * 50_000 + b'"}}',
        b'{"key": "k", "name": "\\ud800"}',
        b'{"key": "k\\u0000", "name": "n"}',
        b"\xff\xfe\x00garbage",
        b"9" * 5_000,
        b"",
        b"null",
        b'{"specversion": "1.0", "id": "1", "source": "s", "type": "t", "subject": "a", '
        b'"data": {"tokens": "1e400"}}',
    ]
    for method, path in writes:
        for body in bodies:
            yield method, path, json_type, body
            yield method, path, {"Content-Type": "text/plain"}, body
    rng = random.Random(12)
    for _ in range(scale(200, 5_000)):
        method, path = rng.choice(writes)
        alphabet = b'{}[]":,0123456789.eE+-aznul \\'
        body = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 300)))
        yield method, path, json_type, body
    yield "GET", "/api/v1/customers?key=" + "k" * 20_000, {}, b""
    yield "PATCH", "/api/v1/meters", {}, b""
    yield (
        "OPTIONS",
        "/api/v1/meters",
        {"Origin": "https://x", "Access-Control-Request-Method": "GET"},
        b"",
    )


def test_probe_hostile_inputs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'probe.db'}"
    upgrade(url)
    server = Server(url, tmp_path / "server.log", ALLOTMENT_HEADER_READ_TIMEOUT_SECONDS="2")
    server.start()
    key = admin_key_for(url)
    statuses: Counter[int] = Counter()
    tried = 0
    try:
        rss_before = server.rss_bytes()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            client.post(
                "/api/v1/meters",
                json={
                    "slug": "tokens",
                    "eventType": "prompt",
                    "aggregation": "SUM",
                    "valueProperty": "$.tokens",
                },
                headers={"Authorization": f"Bearer {key}"},
            )
            for method, path, headers, body in _hostile_inputs():
                for authorised in (True, False):
                    sent = dict(headers)
                    if authorised:
                        sent["Authorization"] = f"Bearer {key}"
                    response = client.request(method, path, content=body, headers=sent)
                    tried += 1
                    statuses[response.status_code] += 1
                    assert response.status_code < 500, (method, path, body[:80], response.text)
                    if response.status_code >= 400:
                        assert response.headers["content-type"].startswith(
                            "application/problem+json"
                        ), (method, path, response.status_code)
            # Unauthenticated bodies just under the size limit are refused unread.
            garbage = b"[" * (4 * 1024 * 1024 - 10)
            for _ in range(scale(10, 50)):
                response = client.post(
                    "/api/v1/customers",
                    content=garbage,
                    headers={"Content-Type": "application/json"},
                )
                tried += 1
                statuses[response.status_code] += 1
                assert response.status_code == 401
        # Half-open connections are closed by the header timeout instead of piling up.
        idle = [
            socket.create_connection(("127.0.0.1", server.port)) for _ in range(scale(100, 1000))
        ]
        time.sleep(3)
        closed = 0
        for sock in idle:
            sock.settimeout(2)
            try:
                answer = sock.recv(4096)  # the 408 problem, or b"" once closed
                closed += answer == b"" or answer.startswith(b"HTTP/1.1 408")
            except OSError:
                pass
            sock.close()
        tried += len(idle)
        rss_after = server.rss_bytes()
        assert httpx.get(server.url + "/healthz", timeout=2).status_code == 200
    finally:
        server.stop()
    lines = server.log_lines()
    report(
        "probe",
        inputs_tried=tried,
        answers=dict(sorted(statuses.items())),
        idle_connections_closed=closed,
        rss_before_mb=rss_before // 2**20,
        rss_after_mb=rss_after // 2**20,
    )
    assert closed == len(idle)
    assert rss_after - rss_before < 300 * 2**20
    assert not any("Traceback" in line for line in lines)
