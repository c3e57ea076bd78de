"""Driving the C load generator (bench/loadgen): request files in, a summary and answers out."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOADGEN_DIR = Path(__file__).resolve().parent / "loadgen"
BINARY = LOADGEN_DIR / "loadgen"
TOOL = "loadgen (bench/loadgen, C, epoll)"


def build(binary: Path = BINARY) -> Path:
    """Compile the load generator if a source is newer than the binary."""
    sources = sorted(LOADGEN_DIR.glob("*.[ch]"))
    if binary.exists() and all(s.stat().st_mtime <= binary.stat().st_mtime for s in sources):
        return binary
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise RuntimeError("the benchmarks need gcc to build bench/loadgen (apt-get install gcc)")
    subprocess.run(
        [compiler, "-O2", "-Wall", "-Wextra", "-o", str(binary), str(LOADGEN_DIR / "loadgen.c")],
        check=True,
    )
    return binary


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    content_type: str | None = None


def get(path: str) -> Request:
    return Request("GET", path)


def write_requests(path: Path, requests: Iterable[Request]) -> int:
    """The loadgen's record format; returns how many records were written."""
    count = 0
    with path.open("wb") as out:
        for request in requests:
            if " " in request.path or "\n" in request.path:
                raise ValueError(f"a request path must be URL-encoded: {request.path!r}")
            header = f"{request.method} {request.path} {request.content_type or '-'} "
            out.write(header.encode() + str(len(request.body)).encode() + b"\n")
            out.write(request.body + b"\n")
            count += 1
    return count


@dataclass(frozen=True)
class Answer:
    record: int
    """Index of the request record it answers."""
    status: int
    latency_ms: float
    body: bytes


@dataclass
class Result:
    summary: dict[str, Any]
    answers: list[Answer] = field(default_factory=list)

    @property
    def latency(self) -> dict[str, float]:
        return dict(self.summary["latency_ms"])

    @property
    def incomplete(self) -> int:
        return int(self.summary["incomplete"])

    @property
    def throughput(self) -> float:
        return float(self.summary["throughput_rps"])

    @property
    def statuses(self) -> dict[int, int]:
        return {int(k): v for k, v in self.summary["status"].items()}

    def errors(self) -> int:
        e = self.summary["errors"]
        return int(e["connect"]) + int(e["io"]) + int(e["parse"])


def read_dump(path: Path) -> list[Answer]:
    """Parse the loadgen's `--dump`: "record status latency_us length LF body LF" per answer."""
    data = path.read_bytes()
    answers = []
    at = 0
    while at < len(data):
        eol = data.index(b"\n", at)
        record, status, latency_us, length = (int(x) for x in data[at:eol].split())
        body = data[eol + 1 : eol + 1 + length]
        if data[eol + 1 + length : eol + 2 + length] != b"\n":
            raise ValueError(f"malformed dump at byte {at}")
        answers.append(Answer(record, status, latency_us / 1000, body))
        at = eol + 2 + length
    return answers


def run(
    *,
    port: int,
    requests: Sequence[Request],
    workdir: Path,
    name: str,
    connections: int = 1,
    duration: float = 5.0,
    rate: float | None = None,
    once: bool = False,
    sequential: bool = False,
    drain: float = 5.0,
    dump: bool = False,
    headers: Sequence[str] = (),
    binary: Path = BINARY,
    host: str = "127.0.0.1",
) -> Result:
    """Run the loadgen once. `duration` is the run (closed or open loop) or, with `once`, the
    time limit; `drain` how long unanswered requests are awaited after an open-loop run."""
    workdir.mkdir(parents=True, exist_ok=True)
    request_file = workdir / f"{name}.requests"
    write_requests(request_file, requests)
    command = [
        str(binary),
        "--host",
        host,
        "--port",
        str(port),
        "--requests",
        str(request_file),
        "--connections",
        str(connections),
        "--duration",
        f"{duration:.3f}",
        "--drain",
        f"{drain:.3f}",
    ]
    if rate is not None:
        command += ["--rate", f"{rate:.3f}"]
    if sequential:
        command.append("--sequential")
    elif once:
        command.append("--once")
    dump_file = workdir / f"{name}.dump"
    if dump:
        command += ["--dump", str(dump_file)]
    for header in headers:
        command += ["--header", header]
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"loadgen failed ({finished.returncode}): {finished.stderr.strip()}")
    result = Result(json.loads(finished.stdout))
    if dump:
        result.answers = read_dump(dump_file)
        dump_file.unlink()
    request_file.unlink()
    return result
