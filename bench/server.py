"""The server under test, started as the README says: `allotment serve --workers N` with
`ALLOTMENT_DATABASE_URL`, on a port of 18300-18399; its worker processes' memory and CPU."""

from __future__ import annotations

import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PORTS = range(18300, 18390)


def free_port() -> int:
    # From a random place in the range: two processes probing at once (parallel test
    # workers) would otherwise both pick its first free port, and the second server, unable
    # to bind, would leave its caller talking to the first.
    start = random.randrange(len(PORTS))
    for port in (*PORTS[start:], *PORTS[:start]):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18300-18389")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) != pid:
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        # multiprocessing may start a helper beside the workers; it serves nothing.
        if b"resource_tracker" not in command:
            found.append(int(entry.name))
    return found


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak since the process started) of one process, in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total


@dataclass
class Server:
    database_url: str
    workers: int
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        allotment = Path(sys.executable).with_name("allotment")
        env = {**os.environ, "ALLOTMENT_DATABASE_URL": self.database_url}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(allotment), "serve", "--workers", str(self.workers), "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited; see {self.log_path}")
            if self.get("/readyz")[0] == 200 and len(self.worker_pids()) >= self.workers:
                # Another server may have answered on a port this one could not bind: it
                # would exit at once.
                time.sleep(0.5)
                if self.process.poll() is not None:
                    raise RuntimeError(f"the server exited; see {self.log_path}")
                return
            time.sleep(0.2)
        raise RuntimeError(f"the server did not become ready in {timeout} s; see {self.log_path}")

    def problem(self) -> str | None:
        """None while the server runs; else how it ended, with the end of its log."""
        if self.process is None or self.process.poll() is None:
            return None
        tail = self.log_path.read_text(errors="replace").splitlines()[-25:]
        return f"the server exited with {self.process.returncode}:\n  " + "\n  ".join(tail)

    def log_tail(self, lines: int = 25) -> str:
        tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "the server's log ends:\n  " + "\n  ".join(tail)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        return self.send("GET", path, headers=headers)

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """One request on a new connection; status 0 when the server could not be reached."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        except OSError:
            return 0, b""
        finally:
            connection.close()

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: uvicorn's children with several workers, the
        server process itself with one."""
        if self.process is None:
            return []
        if self.workers == 1:
            return [self.process.pid]
        return sorted(_children(self.process.pid))

    def memory(self) -> dict[int, dict[str, int]]:
        return {pid: memory_kib(pid) for pid in self.worker_pids()}

    def wait_quiet(self, timeout: float = 300.0, busy_share: float = 0.05) -> float:
        """Wait until the workers are idle (below `busy_share` of one core over half a second),
        e.g. still working off requests an overloaded open-loop run left behind. Returns the
        seconds waited."""
        started = time.monotonic()
        hz = os.sysconf("SC_CLK_TCK")
        pids = self.worker_pids()
        while time.monotonic() - started < timeout:
            before = cpu_ticks(pids)
            time.sleep(0.5)
            if (cpu_ticks(pids) - before) / hz < 0.5 * busy_share:
                break
        return time.monotonic() - started

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
