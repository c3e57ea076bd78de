"""The load generator measures what it claims: service time in closed loop, time from the
schedule in open loop (queueing behind a slow server counts), unanswered requests as lower
bounds, and every answer dumped whole. Checked against a tiny server with known delays."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench import load

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None and shutil.which("cc") is None, reason="needs a C compiler"
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this, Nagle's algorithm holds the
    # body back for the client's delayed ACK (40 ms), which would be measured, rightly.
    disable_nagle_algorithm = True
    arrivals: list[tuple[str, int]] = []

    def log_message(self, *_args: object) -> None:
        pass

    def _send(self, body: bytes, *, close: bool = False) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        if close:
            self.close_connection = True

    def do_GET(self) -> None:
        _Handler.arrivals.append((self.path, self.client_address[1]))
        if self.path.startswith("/sleep/"):
            time.sleep(int(self.path.split("/")[2].split("?")[0]) / 1000)
            self._send(b'{"slept": true}')
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b'{"a":', b' "chunked"}'):
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/close":
            self._send(b"{}", close=True)
        else:
            self._send(json.dumps({"path": self.path}).encode())

    def do_POST(self) -> None:
        _Handler.arrivals.append((self.path, self.client_address[1]))
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self._send(body)


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return load.build(tmp_path_factory.mktemp("loadgen") / "loadgen")


class _QuietServer(ThreadingHTTPServer):
    """A delayed answer whose client has gone (the load generator stops on its schedule) is
    not an error worth a traceback on stderr, where it would land in a later test's output."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = None
    for candidate in range(18380, 18390):
        try:
            server = _QuietServer(("127.0.0.1", candidate), _Handler)
            break
        except OSError:
            continue
    if server is None:
        pytest.skip("no free port in 18380-18389")
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _run(
    binary: Path, port: int, tmp_path: Path, requests: list[load.Request], **options: object
) -> load.Result:
    return load.run(
        port=port, requests=requests, workdir=tmp_path, name="t", binary=binary, **options
    )  # type: ignore[arg-type]


def test_closed_loop_measures_service_time_and_throughput(
    binary: Path, port: int, tmp_path: Path
) -> None:
    result = _run(binary, port, tmp_path, [load.get("/sleep/20")], connections=4, duration=1.0)
    latency = result.latency
    assert 20 <= latency["p50"] < 40
    assert latency["max"] >= latency["p99"] >= latency["p90"] >= latency["p50"]
    # Four connections, 20 ms each: at most 200 a second, and not far below.
    assert 120 <= result.throughput <= 205
    assert result.statuses == {200: result.summary["completed"]}
    assert result.incomplete == 0


def test_open_loop_counts_latency_from_the_schedule(
    binary: Path, port: int, tmp_path: Path
) -> None:
    # 50 requests scheduled 20 ms apart on one connection, each served in at least 40 ms:
    # request k ends no earlier than 40(k+1) ms, so its latency from its schedule is at least
    # 20k + 40 ms, whereas a client timing from its own send would see about 40 ms for each.
    result = _run(
        binary,
        port,
        tmp_path,
        [load.get("/sleep/40")],
        connections=1,
        duration=1.0,
        rate=50,
        drain=10,
    )
    assert result.summary["completed"] == 50
    assert result.incomplete == 0
    latency = result.latency
    assert latency["p50"] >= 520  # k = 24
    assert latency["max"] >= 1020  # k = 49
    # ... and not much more on an idle machine: the excess is the server's own overhead.
    assert latency["p50"] <= 520 * 3


def test_open_loop_below_capacity_keeps_the_rate(binary: Path, port: int, tmp_path: Path) -> None:
    result = _run(
        binary, port, tmp_path, [load.get("/sleep/5")], connections=4, duration=1.0, rate=100
    )
    assert result.summary["completed"] == 100
    assert 5 <= result.latency["p50"] < 20
    assert 80 <= result.throughput <= 105


def test_unanswered_requests_are_incomplete_lower_bounds(
    binary: Path, port: int, tmp_path: Path
) -> None:
    result = _run(
        binary,
        port,
        tmp_path,
        [load.get("/sleep/2000")],
        connections=2,
        duration=0.5,
        rate=20,
        drain=0.3,
    )
    assert result.summary["completed"] == 0
    assert result.incomplete == 10
    # Each waited at least from its schedule (within the first 0.5 s) to the end (0.8 s).
    assert result.latency["count"] == 10
    assert result.latency["p50"] >= 300
    assert result.latency["max"] >= 750


def test_once_sends_each_record_and_dumps_every_answer(
    binary: Path, port: int, tmp_path: Path
) -> None:
    requests = [
        load.Request("POST", "/echo", b'{"n": 1}', "application/json"),
        load.Request("POST", "/echo", b"[" + b"7," * 50_000 + b"7]", "application/json"),
        load.get("/chunked"),
        load.get("/close"),
        load.get("/plain?x=1"),
    ]
    result = _run(
        binary, port, tmp_path, requests, connections=2, once=True, duration=30, dump=True
    )
    assert result.summary["completed"] == len(requests)
    bodies = {a.record: a.body for a in result.answers}
    assert sorted(bodies) == [0, 1, 2, 3, 4]
    assert bodies[0] == requests[0].body
    assert bodies[1] == requests[1].body
    assert json.loads(bodies[2]) == {"a": "chunked"}
    assert json.loads(bodies[4]) == {"path": "/plain?x=1"}
    assert result.errors() == 0


def test_sequential_waits_for_each_answer_and_takes_connections_in_turn(
    binary: Path, port: int, tmp_path: Path
) -> None:
    _Handler.arrivals.clear()
    requests = [load.get(f"/sleep/{5 if i % 2 else 30}?i={i}") for i in range(6)]
    result = _run(
        binary, port, tmp_path, requests, connections=3, sequential=True, duration=30, dump=True
    )
    assert result.summary["completed"] == 6
    arrived = [path for path, _port in _Handler.arrivals]
    assert arrived == [r.path for r in requests]
    client_ports = [p for _path, p in _Handler.arrivals]
    assert client_ports[:3] == client_ports[3:]
    assert len(set(client_ports[:3])) == 3


def test_only_loopback_may_be_loaded(binary: Path, tmp_path: Path) -> None:
    requests = tmp_path / "r"
    load.write_requests(requests, [load.get("/")])
    finished = subprocess.run(
        [str(binary), "--host", "10.1.2.3", "--port", "80", "--requests", str(requests)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert finished.returncode == 2
    assert "127.0.0.0/8" in finished.stderr


def test_dump_round_trip(tmp_path: Path) -> None:
    dump = tmp_path / "d"
    dump.write_bytes(b"3 200 1500 5\nhello\n0 404 20 0\n\n1 200 7 2\n\n\n\n")
    answers = load.read_dump(dump)
    assert [(a.record, a.status, a.latency_ms, a.body) for a in answers] == [
        (3, 200, 1.5, b"hello"),
        (0, 404, 0.02, b""),
        (1, 200, 0.007, b"\n\n"),
    ]


def test_a_closed_port_is_reported(binary: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        unused = s.getsockname()[1]
    with pytest.raises(RuntimeError, match="cannot"):
        _run(binary, unused, tmp_path, [load.get("/")], connections=1, duration=0.5)
