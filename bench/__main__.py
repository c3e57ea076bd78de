"""`python -m bench [--scale quick|full] [--databases sqlite,postgres] [--workers N]
[--only B1,N]`: B1 to B7 of issue 11 and N1 to N3 of issue 14; one line per figure, results as
JSON under bench/results/. Exits 1 when any answer was wrong (speed without exactness is
worthless), 0 otherwise, targets met or not."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import databases, dataset, load
from bench.expected import Mismatches
from bench.scales import SCALES
from bench.suite import Context, run_database

RESULTS = Path(__file__).resolve().parent / "results"


def _machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _keep_logs(work: Path, into: Path) -> None:
    """The end of each server's log (uvicorn logs every request), kept beside the results."""
    into.mkdir(parents=True, exist_ok=True)
    for path in work.glob("*.log"):
        lines = path.read_text(errors="replace").splitlines()
        (into / path.name).write_text("\n".join(lines[-2000:]) + "\n")


def _drop_orphaned_copies(log: Any) -> None:
    """Working copies of runs that were killed (their process is gone) take gigabytes."""
    if databases.pg_available() is not None:
        return
    for name in databases.list_pg(f"{databases.PREFIX}run_"):
        pid = name.removeprefix(f"{databases.PREFIX}run_").split("_", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            log(f"dropping {name}, left by a run that was stopped")
            databases.drop(databases.Store("postgres", name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default="quick")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", "2")))
    parser.add_argument("--rebuild", action="store_true", help="build the data sets again")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated figures or prefixes to measure (e.g. B1,N); all by default",
    )
    args = parser.parse_args(argv)
    scale = SCALES[args.scale]
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    only = tuple(f.strip() for f in args.only.split(",") if f.strip())

    def log(message: str) -> None:
        print(message, flush=True)

    started_at = datetime.now(UTC)
    machine = _machine()
    log(
        f"bench {scale.name}: {', '.join(kinds)}, {args.workers} worker(s), commit {_commit()},"
        f" {machine['cpus']} cpus ({machine['cpu']}), load average at start"
        f" {' '.join(f'{x:.2f}' for x in machine['load_average'])}"
    )
    if machine["load_average"][0] > (machine["cpus"] or 1) * 0.5:
        log("  note: the machine is busy; figures of this run are noisy")
    load.build()
    _drop_orphaned_copies(log)
    mismatches = Mismatches()
    report: dict[str, Any] = {
        "started_at": started_at.isoformat(),
        "commit": _commit(),
        "scale": scale.parameters(),
        "workers": args.workers,
        "machine": machine,
        "databases": {},
    }
    for kind in kinds:
        if kind == "postgres" and (problem := databases.pg_available()):
            log(f"postgres: not reachable ({problem}); skipped")
            report["databases"][kind] = {"skipped": problem}
            continue
        data = dataset.load_or_build(kind, scale, rebuild=args.rebuild, log=log)
        with tempfile.TemporaryDirectory(prefix="allotment-bench-") as work:
            ctx = Context(data, args.workers, Path(work), mismatches, log, only=only)
            log(f"-- {kind}")
            try:
                run_database(ctx)
            except Exception as error:  # recorded, and the run fails
                log(f"{kind}: the run broke off: {type(error).__name__}: {error}")
                mismatches.add(kind, f"the run broke off: {type(error).__name__}: {error}")
            finally:
                report["databases"][kind] = {
                    "dataset": {
                        "key": data.key,
                        "built_at": data.manifest.get("built_at"),
                        "build_seconds": data.manifest.get("build_seconds"),
                    },
                    "figures": [f.as_json() for f in ctx.figures],
                    "seconds": ctx.notes.get("seconds"),
                    "server_restarts": ctx.notes.get("server_restarts", []),
                }
                _keep_logs(Path(work), RESULTS / f"{started_at:%Y%m%dT%H%M%SZ}-{scale.name}-logs")
            log(f"-- {kind}: {ctx.notes.get('seconds', '?')} s")
    report["load_average_at_end"] = os.getloadavg()
    log(f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    report["mismatches"] = {"by_figure": mismatches.by_figure, "examples": mismatches.examples}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{started_at:%Y%m%dT%H%M%SZ}-{scale.name}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    log(f"results: {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")
    if mismatches:
        log(f"WRONG ANSWERS: {mismatches.total} (by figure: {mismatches.by_figure})")
        for example in mismatches.examples:
            log(f"  {example}")
        return 1
    log("every answer was exact")
    return 0


if __name__ == "__main__":
    sys.exit(main())
