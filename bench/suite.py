"""B1 to B7 of issue 11 against one database, each answer checked against the generator.

Order within a database (each server on a fresh copy of a data set template):
  population copy: warm-up, idle memory, B2 (saturation, then fixed rate), B7, B4 (read only),
                   B5 (writes into the heaviest customer), B1 (writes), B6 peak memory,
                   N1-N3 (notification rules, bench/notifications.py);
  history copy:    B3 (the same check with `small_events` and with `whale_events`);
  stage copy:      B2 saturation and a B1-sized ingest again, for B6's growth.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from math import inf
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

from bench import databases, load, references
from bench import dataset as ds
from bench.dataset import Dataset
from bench.expected import Mismatches, metered_value, parse, value_mismatch
from bench.figures import Figure
from bench.server import Server

CHECK = "/api/v1/customers/{customer}/entitlements/ai_tokens/value"
BARE = "/healthz"
INGEST_TYPE = "application/cloudevents-batch+json"
BATCH = 1_000
SENDERS = 4
SATURATION_CLIENTS = 16
SLOW_SECONDS = 20.0
"""A measurement repeated for a median is taken once when one take lasts longer than this (the
raw scans of today's code at 10,000,000 events): the figure is then far from its target anyway."""


@dataclass
class Context:
    dataset: Dataset
    workers: int
    workdir: Path
    mismatches: Mismatches
    log: Callable[[str], None]
    figures: list[Figure] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: f"{os.getpid()}_{int(time.time()) % 100000}")
    only: tuple[str, ...] = ()
    """Figure ids (or their prefixes, "B1", "N") to measure; all when empty."""

    def wants(self, *figures: str) -> bool:
        return not self.only or any(f.startswith(p) for f in figures for p in self.only)

    @property
    def kind(self) -> str:
        return self.dataset.kind

    @property
    def scale(self) -> Any:
        return self.dataset.scale

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        self.log(figure.line())
        return figure


# -- what the server must answer --------------------------------------------------------------


class Expectations:
    """Usage per subject as the generator sent it, updated with every write the run makes."""

    def __init__(self, by_model: dict[str, dict[str, int]]) -> None:
        self.by_model = {who: dict(models) for who, models in by_model.items()}

    def usage(self, who: str) -> int:
        return sum(self.by_model.get(who, {}).values())

    def add(self, who: str, model: str, tokens: int) -> None:
        models = self.by_model.setdefault(who, {})
        models[model] = models.get(model, 0) + tokens


def check_path(customer: str) -> str:
    return CHECK.format(customer=customer)


def verify_checks(
    ctx: Context,
    figure: str,
    result: load.Result,
    expected: Sequence[Any],
) -> None:
    """Every answer of a check run against the expected value of its request record."""
    for answer in result.answers:
        if answer.status != 200:
            ctx.mismatches.add(figure, f"status {answer.status}: {answer.body[:200]!r}")
            continue
        problem = value_mismatch(answer.body, expected[answer.record])
        if problem:
            ctx.mismatches.add(figure, f"request {answer.record}: {problem}")
    if result.errors():
        ctx.mismatches.add(figure, f"transport errors: {result.summary['errors']}")


def population_checks(
    ctx: Context, expectations: Expectations, ranks: Sequence[int]
) -> tuple[list[load.Request], list[Any]]:
    requests = [load.get(check_path(ds.customer(r))) for r in ranks]
    values = [metered_value(ds.grant_amounts(r), expectations.usage(ds.subject(r))) for r in ranks]
    return requests, values


def run_load(
    ctx: Context, name: str, server: Server, requests: Sequence[load.Request], **options: Any
) -> load.Result:
    """One loadgen run. A server stopped from outside (other work on a shared machine may stop
    servers by name) is started again on the same database and the run repeated once, loudly;
    stopped twice, the run breaks off. Runs that write are not repeated (a repeat would be all
    duplicates): they break off at once."""
    reads_only = all(r.method == "GET" for r in requests)
    for attempt in (1, 2) if reads_only else (2,):
        if problem := server.problem():
            if attempt == 2:
                raise RuntimeError(problem)
            _restart(ctx, server, name, problem)
        try:
            result = load.run(
                port=server.port,
                requests=requests,
                workdir=ctx.workdir,
                name=f"{ctx.kind}-{name}",
                headers=[f"Authorization: Bearer {ctx.notes['api_key']}"],
                **options,
            )
            stopped = server.problem()
            if attempt == 2 or stopped is None:
                return result
        except RuntimeError as error:
            stopped = server.problem()
            if stopped is None or attempt == 2:
                raise RuntimeError(f"{error}\n{stopped or server.log_tail()}") from error
        # Stopped before or during the run: its answers are incomplete; run it again.
        _restart(ctx, server, name, stopped)
    raise AssertionError("unreachable")


def _restart(ctx: Context, server: Server, name: str, problem: str) -> None:
    first_line = problem.splitlines()[0]
    ctx.log(f"!! {ctx.kind}: before or during {name}, {first_line}; starting it again")
    ctx.notes.setdefault("server_restarts", []).append({"phase": name, "problem": problem})
    server.process = None
    server.start()


WARM_PASSES = 3
"""Warm-up passes over every request, each on fresh connections: a worker process keeps its
own caches, and a pass's connections may all land on one worker, so one pass can leave the
other cold and a steady-state figure would then measure first reads."""


def warm_up(
    ctx: Context, name: str, server: Server, requests: Sequence[load.Request]
) -> list[load.Result]:
    """Every request `WARM_PASSES` times over, two connections per worker each time."""
    return [
        run_load(
            ctx,
            name if number == 0 else f"{name}-{number}",
            server,
            requests,
            connections=2 * ctx.workers,
            once=True,
            duration=600,
            dump=True,
        )
        for number in range(WARM_PASSES)
    ]


def drain_for(ctx: Context) -> float:
    return min(5.0, max(1.0, ctx.scale.duration / 2))


# -- the population run -----------------------------------------------------------------------


def population_run(ctx: Context) -> dict[str, Any]:
    data = ctx.dataset
    copy = databases.store(ctx.kind, f"run_{ctx.run_id}_pop", ctx.workdir)
    seconds = databases.copy(data.store("pop"), copy)
    ctx.log(f"copied the population data set in {seconds:.1f} s")
    ctx.notes["api_key"] = data.api_key
    server = Server(copy.url, ctx.workers, ctx.workdir / f"{ctx.kind}-server-pop.log")
    expectations = Expectations(data.expected("population"))
    out: dict[str, Any] = {}
    try:
        server.start()
        ranks = ds.ranks_for_b2(ctx.scale)
        checks, values = population_checks(ctx, expectations, ranks)
        for warm in warm_up(ctx, "warmup", server, checks):
            verify_checks(ctx, "warm-up", warm, values)
        run_load(ctx, "warmup-bare", server, [load.get(BARE)], connections=2, duration=0.5)
        server.wait_quiet()
        idle = server.memory()
        out["idle_memory_kib"] = idle

        # Where the peak is reached: each worker's VmHWM after every stage (in the results).
        stages: dict[str, float] = {}
        out["peak_mib_after_stage"] = stages

        def mark(stage: str) -> None:
            stages[stage] = max(m["VmHWM"] for m in server.memory().values()) / 1024

        if ctx.wants("B2"):
            out.update(measure_b2(ctx, server, checks, values))
            mark("B2")
        if ctx.wants("B2", "B5", "B7"):
            single = run_load(
                ctx,
                "check-1client",
                server,
                checks,
                connections=1,
                duration=ctx.scale.duration,
                dump=True,
            )
            verify_checks(ctx, "B2 1 client", single, values)
            out["single_check"] = single.latency
        if ctx.wants("B7"):
            measure_b7(ctx, server, single)
            mark("B7")
        if ctx.wants("B4"):
            measure_b4(ctx, server, copy, expectations)
            mark("B4")
        if ctx.wants("B5"):
            measure_b5(ctx, server, expectations, single)
            mark("B5")
        if ctx.wants("B1", "B6"):
            measure_b1(ctx, server, copy, expectations, ranks)
            mark("B1")
        if ctx.wants("B6"):
            peak = server.memory()
            out["peak_memory_kib"] = peak
            idle_rss = max(m["VmRSS"] for m in idle.values()) / 1024
            peak_hwm = max(m["VmHWM"] for m in peak.values()) / 1024
            out["peak_mib"] = peak_hwm
            ctx.add(
                Figure(
                    "B6",
                    ctx.kind,
                    f"peak RSS per worker, B1+B2, {ctx.scale.population_events:,} stored",
                    peak_hwm,
                    "MiB",
                    idle_rss,
                    "idle worker RSS",
                    "<= 250 MB",
                    lambda v, _r: v is not None and v * 1.048576 <= 250,
                    "/proc/<pid>/status VmHWM",
                    details={"per_worker": peak, "idle": idle, "after_stage_mib": stages},
                )
            )
        # After B6's peak: the stage run it is compared with defines no rules.
        from bench.notifications import measure_notifications  # it builds on this module

        if ctx.wants("N"):
            measure_notifications(ctx, server, copy, expectations, ranks)
    finally:
        server.stop()
        databases.drop(copy)
    return out


def measure_b2(
    ctx: Context, server: Server, checks: list[load.Request], values: list[Any]
) -> dict[str, Any]:
    d = ctx.scale.duration
    bare = run_load(
        ctx, "bare-sat", server, [load.get(BARE)], connections=SATURATION_CLIENTS, duration=d
    )
    check = run_load(
        ctx, "check-sat", server, checks, connections=SATURATION_CLIENTS, duration=d, dump=True
    )
    verify_checks(ctx, "B2a", check, values)
    ctx.add(
        Figure(
            "B2a",
            ctx.kind,
            f"check access, {SATURATION_CLIENTS} clients, saturation",
            check.throughput,
            "req/s",
            bare.throughput,
            f"{BARE} same server",
            ">= 0.5x",
            lambda _v, r: r is not None and r >= 0.5,
            load.TOOL,
            details={"check": check.summary, "bare": bare.summary},
        )
    )
    server.wait_quiet()
    rate = bare.throughput / 2
    bare_open = run_load(
        ctx,
        "bare-open",
        server,
        [load.get(BARE)],
        connections=SATURATION_CLIENTS,
        duration=d,
        rate=rate,
        drain=drain_for(ctx),
    )
    server.wait_quiet()
    check_open = run_load(
        ctx,
        "check-open",
        server,
        checks,
        connections=SATURATION_CLIENTS,
        duration=d,
        rate=rate,
        drain=drain_for(ctx),
        dump=True,
    )
    verify_checks(ctx, "B2b", check_open, values)
    waited = server.wait_quiet()
    p99, bare_p99 = check_open.latency["p99"], bare_open.latency["p99"]
    ctx.add(
        Figure(
            "B2b",
            ctx.kind,
            f"check p99, open loop at {rate:,.0f} req/s (1/2 bare max)",
            p99,
            "ms",
            bare_p99,
            f"{BARE} p99 same rate",
            "<= 2x and <= 10 ms",
            lambda v, r: v is not None and r is not None and r <= 2 and v <= 10,
            load.TOOL + ", CO-corrected",
            lower_bound=check_open.incomplete > 0,
            details={
                "check": check_open.summary,
                "bare": bare_open.summary,
                "quiet_wait_s": waited,
            },
        )
    )
    ctx.add(
        Figure(
            "B2b",
            ctx.kind,
            f"check p50, open loop at {rate:,.0f} req/s",
            check_open.latency["p50"],
            "ms",
            bare_open.latency["p50"],
            f"{BARE} p50 same rate",
            "",
            None,
            load.TOOL + ", CO-corrected",
            lower_bound=check_open.incomplete > 0,
        )
    )
    # Context: the check's latency when it is not overloaded (half its own maximum).
    own = max(1.0, check.throughput / 2)
    sustainable = run_load(
        ctx,
        "check-open-own",
        server,
        checks,
        connections=SATURATION_CLIENTS,
        duration=d,
        rate=own,
        drain=drain_for(ctx),
        dump=True,
    )
    verify_checks(ctx, "B2 context", sustainable, values)
    server.wait_quiet()
    ctx.add(
        Figure(
            "B2c",
            ctx.kind,
            f"(context) check p99 at {own:,.0f} req/s (1/2 own max)",
            sustainable.latency["p99"],
            "ms",
            bare_p99,
            f"{BARE} p99 at {rate:,.0f}/s",
            "",
            None,
            load.TOOL + ", CO-corrected",
            lower_bound=sustainable.incomplete > 0,
            details={"check": sustainable.summary},
        )
    )
    return {"b2_rate": rate, "check_max": check.throughput, "bare_max": bare.throughput}


def measure_b7(ctx: Context, server: Server, single: load.Result) -> None:
    scale, usage = ctx.scale, ctx.dataset.expected("b7")
    paths = [f"/api/v1/customers/{ds.b7_customer(c)}/access" for c in range(scale.b7_customers)]
    requests = [load.get(p) for p in paths]

    def verify(result: load.Result, figure: str) -> None:
        for answer in result.answers:
            c = answer.record % scale.b7_customers
            if answer.status != 200:
                ctx.mismatches.add(figure, f"status {answer.status}: {answer.body[:200]!r}")
                continue
            got = parse(answer.body).get("entitlements", {})
            if len(got) != scale.b7_features:
                ctx.mismatches.add(figure, f"{ds.b7_customer(c)}: {len(got)} entitlements")
            for f in range(scale.b7_features):
                key = ds.b7_feature(f)
                used = usage.get(ds.b7_customer(c), {}).get(key, 0)
                problem = value_mismatch(got.get(key, {}), metered_value([ds.b7_grant(f)], used))
                if problem:
                    ctx.mismatches.add(figure, f"{ds.b7_customer(c)} {key}: {problem}")

    # As B2's checks are: each customer read once before (on a copied data set no checkpoint
    # exists yet; the first reads ask maintenance for 100 per customer, saved one by one),
    # then measured once the workers are quiet, so B7 reports the steady state, not that
    # transition. The warm-up's figures are in the results (b7-warmup) and checked too.
    warmups = warm_up(ctx, "b7-warmup", server, requests)
    for warm in warmups:
        verify(warm, "B7 warm-up")
    waited = server.wait_quiet()
    each = run_load(
        ctx, "b7-access", server, requests, connections=1, duration=ctx.scale.duration, dump=True
    )
    verify(each, "B7a")
    ctx.add(
        Figure(
            "B7a",
            ctx.kind,
            f"GET /customers/{{id}}/access, {scale.b7_features} metered features, p99",
            each.latency["p99"],
            "ms",
            single.latency["p99"],
            "one check p99, 1 client",
            "<= 50 ms",
            lambda v, _r: v is not None and v <= 50,
            load.TOOL + ", 1 client",
            details={
                "access": each.summary,
                "warmup": [warm.summary for warm in warmups],
                "quiet_wait_s": waited,
            },
        )
    )
    passes: list[float] = []
    for i in range(3):
        if passes and (scale.name == "quick" or sum(passes) > SLOW_SECONDS):
            break
        sequence = run_load(
            ctx,
            f"b7-sequence-{i}",
            server,
            requests,
            connections=1,
            once=True,
            duration=1800,
            dump=True,
        )
        verify(sequence, "B7b")
        passes.append(sequence.summary["duration_s"])
    measured = sorted(passes)[len(passes) // 2]
    per_100 = measured * 100 / scale.b7_customers
    ctx.add(
        Figure(
            "B7b",
            ctx.kind,
            f"100 customers x {scale.b7_features} features one after another"
            + ("" if scale.b7_customers == 100 else f" ({scale.b7_customers} read, scaled)"),
            per_100,
            "s",
            12.5,
            "OpenMeter published 12.5 s",
            "<= 1.25 s (0.1x)",
            lambda v, _r: v is not None and v <= 1.25,
            load.TOOL + ", 1 client, sequential",
            details={"passes_s": passes, "customers_read": scale.b7_customers},
        )
    )
    # The same reads with every answer computed: a `time` parameter is never answered from a
    # kept answer (services/answer_cache.py), so this is what B7b costs after writes.
    at = urlencode({"time": datetime.now(UTC).isoformat().replace("+00:00", "Z")})
    computed = run_load(
        ctx,
        "b7-computed",
        server,
        [load.get(f"{path}?{at}") for path in paths],
        connections=1,
        once=True,
        duration=1800,
        dump=True,
    )
    verify(computed, "B7c")
    ctx.add(
        Figure(
            "B7c",
            ctx.kind,
            "(context) B7b with every answer computed (a time parameter)",
            computed.summary["duration_s"] * 100 / scale.b7_customers,
            "s",
            12.5,
            "OpenMeter published 12.5 s",
            "",
            None,
            load.TOOL + ", 1 client, sequential",
            details={"computed": computed.summary},
        )
    )


def _period(ctx: Context) -> tuple[datetime, datetime]:
    start = ctx.dataset.layout.anchor
    end = (datetime.now(UTC) + timedelta(minutes=1)).replace(second=0, microsecond=0)
    return start, end


def measure_b4(
    ctx: Context, server: Server, copy: databases.Store, expectations: Expectations
) -> None:
    start, end = _period(ctx)
    for by_model in (False, True):
        group = [("groupBy", "subject")] + ([("groupBy", "model")] if by_model else [])
        query = urlencode([("from", ds.rfc3339(start)), ("to", ds.rfc3339(end)), *group])
        request = load.get(f"/api/v1/meters/tokens/query?{query}")
        result = run_load(
            ctx,
            f"b4-{by_model}",
            server,
            [request],
            connections=1,
            once=True,
            duration=3600,
            dump=True,
        )
        if result.answers and result.answers[0].latency_ms < SLOW_SECONDS * 1000:
            more = run_load(
                ctx,
                f"b4-{by_model}-more",
                server,
                [request] * 2,
                connections=1,
                once=True,
                duration=3600,
                dump=True,
            )
            result.answers += more.answers
        repeats = len(result.answers)
        raw_times = []
        raw: dict[tuple[str, ...], int] = {}
        for _ in range(repeats):
            seconds, raw = references.group_by(copy, start, end, by_model=by_model)
            raw_times.append(seconds * 1000)
        wanted: dict[tuple[str, ...], int] = {}
        for who, models in expectations.by_model.items():
            if by_model:
                for model, tokens in models.items():
                    wanted[(who, model)] = tokens
            else:
                wanted[(who,)] = sum(models.values())
        figure = "B4b" if by_model else "B4a"
        if raw != wanted:
            ctx.mismatches.add(
                figure,
                "the raw GROUP BY disagrees with the generator on"
                f" {len(set(raw.items()) ^ set(wanted.items()))} groups",
            )
        for answer in result.answers:
            if answer.status != 200:
                ctx.mismatches.add(figure, f"status {answer.status}: {answer.body[:200]!r}")
                continue
            got: dict[tuple[str, ...], int] = {}
            for row in parse(answer.body)["data"]:
                k = (row["subject"], row["groupBy"]["model"]) if by_model else (row["subject"],)
                got[k] = row["value"]
            if got != wanted:
                diff = set(got.items()) ^ set(wanted.items())
                ctx.mismatches.add(
                    figure, f"meter query differs on {len(diff)} groups, e.g. {sorted(diff)[:3]}"
                )
        api_ms = (
            sorted(a.latency_ms for a in result.answers)[len(result.answers) // 2]
            if result.answers
            else None
        )
        raw_ms = sorted(raw_times)[len(raw_times) // 2]
        ctx.add(
            Figure(
                figure,
                ctx.kind,
                f"meter query, SUM per subject{' and model' * by_model}, {len(wanted):,} groups",
                api_ms,
                "ms",
                raw_ms,
                "raw SQL GROUP BY",
                "<= 0.1x",
                lambda _v, r: r is not None and r <= 0.1,
                load.TOOL + f", median of {repeats}",
                lower_bound=result.incomplete > 0,
                details={"api_ms": [a.latency_ms for a in result.answers], "raw_ms": raw_times},
            )
        )


def cloudevent(
    event_id: str, source: str, who: str, at: datetime, tokens: int, model: str
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": "prompt",
        "subject": who,
        "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "data": {"tokens": tokens, "model": model},
    }


def measure_b5(
    ctx: Context, server: Server, expectations: Expectations, single: load.Result
) -> None:
    rank, rng = 1, random.Random(5)
    who = ds.subject(rank)
    requests: list[load.Request] = []
    values: list[Any] = []
    now = datetime.now(UTC)
    usage = expectations.usage(who)
    for r in range(ctx.scale.b5_rounds):
        batch = []
        for i in range(10):
            late = i == 0
            at = now - (timedelta(days=20) if late else timedelta(seconds=5))
            tokens = rng.randint(1, 5000)
            batch.append(
                cloudevent(f"b5-{ctx.run_id}-{r}-{i}", "bench-b5", who, at, tokens, "gpt-4o")
            )
            expectations.add(who, "gpt-4o", tokens)
        usage = expectations.usage(who)
        requests.append(load.Request("POST", "/api/v1/events", orjson.dumps(batch), INGEST_TYPE))
        values.append(None)
        requests.append(load.get(check_path(ds.customer(rank))))
        values.append(metered_value(ds.grant_amounts(rank), usage))
    # One at a time, each on the next of 4 connections: the read may meet another worker.
    result = run_load(
        ctx, "b5", server, requests, connections=4, sequential=True, duration=3600, dump=True
    )
    reads = []
    for answer in result.answers:
        expected = values[answer.record]
        if expected is None:
            if not 200 <= answer.status < 300:
                ctx.mismatches.add("B5", f"ingest status {answer.status}: {answer.body[:200]!r}")
            continue
        reads.append(answer.latency_ms)
        problem = (
            value_mismatch(answer.body, expected)
            if answer.status == 200
            else f"status {answer.status}"
        )
        if problem:
            ctx.mismatches.add(
                "B5", f"the read right after ingest round {answer.record // 2}: {problem}"
            )
    if len(result.answers) != len(requests):
        ctx.mismatches.add("B5", f"{len(requests) - len(result.answers)} requests unanswered")
    reads.sort()
    ctx.add(
        Figure(
            "B5",
            ctx.kind,
            f"check right after ingest (1 of 10 events 20 days late), {len(reads)} reads, p50",
            reads[len(reads) // 2] if reads else None,
            "ms",
            single.latency["p50"],
            "check p50, 1 client",
            "exact; <= 5x",
            lambda _v, r: r is not None and r <= 5,
            load.TOOL + ", sequential",
            details={"reads_ms": reads, "usage_of_subject": usage},
        )
    )


def b1_events(ctx: Context, count: int, prefix: str) -> list[references.RawEvent]:
    rng = random.Random(11)
    scale = ctx.scale
    weights = [1.0 / r for r in range(1, scale.subjects + 1)]
    subjects = rng.choices(
        [ds.subject(r) for r in range(1, scale.subjects + 1)], weights=weights, k=count
    )
    first = ctx.dataset.layout.first_event.timestamp()
    now = datetime.now(UTC)
    last = (now - timedelta(minutes=1)).timestamp()

    def when() -> datetime:
        # As a live service sends them: just now, and as in the data set a few late, by up
        # to the whole period so far.
        if rng.random() < scale.late_fraction:
            return datetime.fromtimestamp(round(first + rng.random() * (last - first), 3), UTC)
        return now - timedelta(seconds=round(1 + rng.random() * 59, 3))

    return [
        references.RawEvent(
            id=f"{prefix}-{ctx.run_id}-{i}",
            subject=subjects[i],
            time=when(),
            data={"tokens": 1 + int(rng.lognormvariate(5.0, 1.2)), "model": rng.choice(ds.MODELS)},
        )
        for i in range(count)
    ]


def ingest_requests(events: Sequence[references.RawEvent], source: str) -> list[load.Request]:
    requests = []
    for start in range(0, len(events), BATCH):
        batch = [
            cloudevent(e.id, source, e.subject, e.time, e.data["tokens"], e.data["model"])
            for e in events[start : start + BATCH]
        ]
        requests.append(load.Request("POST", "/api/v1/events", orjson.dumps(batch), INGEST_TYPE))
    return requests


def ingest_ok(ctx: Context, figure: str, result: load.Result, sent: int) -> None:
    bad = {s: n for s, n in result.statuses.items() if not 200 <= s < 300}
    if bad or result.incomplete or len(result.answers) != sent:
        ctx.mismatches.add(
            figure, f"ingest answers {result.statuses}, {result.incomplete} incomplete"
        )


def measure_b1(
    ctx: Context,
    server: Server,
    copy: databases.Store,
    expectations: Expectations,
    ranks: Sequence[int],
) -> None:
    count = ctx.scale.b1_events
    events = b1_events(ctx, count, "b1")
    # The references first, on the same table, under their own source and an unmetered type.
    prepared = references.rows(copy, events, "bench-ref")
    dedupe = references.insert(copy, prepared, dedupe=True)
    dedupe_again = references.insert(copy, prepared, dedupe=True)
    plain = references.insert(copy, references.rows(copy, events, "bench-ref-plain"), dedupe=False)
    if (dedupe.rows_changed, dedupe_again.rows_changed) != (count, 0):
        ctx.mismatches.add(
            "B1 reference",
            f"raw inserts changed {dedupe.rows_changed}, then {dedupe_again.rows_changed} rows",
        )
    raw_rate = count / dedupe.seconds
    server.wait_quiet()

    requests = ingest_requests(events, "bench-b1")
    first = run_load(
        ctx, "b1", server, requests, connections=SENDERS, once=True, duration=3600, dump=True
    )
    ingest_ok(ctx, "B1", first, len(requests))
    stored = references.count_source(copy, "bench-b1")
    for e in events:
        expectations.add(e.subject, e.data["model"], e.data["tokens"])
    second = run_load(
        ctx, "b1-again", server, requests, connections=SENDERS, once=True, duration=3600, dump=True
    )
    ingest_ok(ctx, "B1 duplicates", second, len(requests))
    stored_again = references.count_source(copy, "bench-b1")
    if (stored, stored_again) != (count, count):
        ctx.mismatches.add(
            "B1", f"stored {stored} events of {count}, then {stored_again} after the duplicate pass"
        )
    http_rate = count / first.summary["duration_s"]
    floor = 100_000 if ctx.kind == "sqlite" else 30_000
    ctx.add(
        Figure(
            "B1",
            ctx.kind,
            f"HTTP ingest, {BATCH:,}/request, {SENDERS} senders, {count:,} events",
            http_rate,
            "ev/s",
            raw_rate,
            "raw deduping insert, same table",
            f">= 0.5x and >= {floor:,} ev/s",
            lambda v, r: v is not None and r is not None and r >= 0.5 and v >= floor,
            load.TOOL,
            details={"http": first.summary, "raw_dedupe_s": dedupe.seconds},
        )
    )
    ctx.add(
        Figure(
            "B1",
            ctx.kind,
            "duplicate pass (all duplicates), time vs first pass",
            second.summary["duration_s"],
            "s",
            first.summary["duration_s"],
            "first pass",
            "<= 1.0x, 0 rows changed",
            lambda _v, r: r is not None and r <= 1.0 and stored_again == count,
            load.TOOL,
            details={"http": second.summary},
        )
    )
    plain_name = "COPY into events" if ctx.kind == "postgres" else "executemany INSERT"
    ctx.add(
        Figure(
            "B1",
            ctx.kind,
            f"(context) raw plain {plain_name}, no dedupe",
            count / plain.seconds,
            "ev/s",
            raw_rate,
            "raw deduping insert",
            tool="psycopg COPY" if ctx.kind == "postgres" else "sqlite3 executemany",
        )
    )
    ctx.add(
        Figure(
            "B1",
            ctx.kind,
            "(context) raw deduping insert, all duplicates",
            count / dedupe_again.seconds,
            "ev/s",
            raw_rate,
            "raw deduping insert",
            tool="psycopg COPY" if ctx.kind == "postgres" else "sqlite3 executemany",
        )
    )
    # Exact after ingest: every B2 customer once more.
    checks, values = population_checks(ctx, expectations, ranks)
    after = run_load(
        ctx, "after-b1", server, checks, connections=SENDERS, once=True, duration=3600, dump=True
    )
    verify_checks(ctx, "checks after B1", after, values)


# -- B3 ---------------------------------------------------------------------------------------


def history_run(ctx: Context, rate: float) -> None:
    data = ctx.dataset
    copy = databases.store(ctx.kind, f"run_{ctx.run_id}_hist", ctx.workdir)
    databases.copy(data.store("hist"), copy)
    ctx.notes["api_key"] = data.manifest["hist_api_key"]
    server = Server(copy.url, ctx.workers, ctx.workdir / f"{ctx.kind}-server-hist.log")
    history = Expectations(data.expected("history"))
    try:
        server.start()
        # Not faster than half what the small check sustains, so that the reference measures
        # latency rather than a queue (after issue 11's work B2's rate is the lower one).
        small = [load.get(check_path("small"))]
        small_max = run_load(
            ctx,
            "b3-small-max",
            server,
            small,
            connections=SATURATION_CLIENTS,
            duration=max(1.0, ctx.scale.duration / 2),
            drain=600,
            dump=True,
        )
        verify_checks(
            ctx, "B3", small_max, [metered_value(ds.WHALE_GRANTS, history.usage("small"))]
        )
        server.wait_quiet()
        rate = min(rate, max(1.0, small_max.throughput / 2))
        results = {}
        for who in ("small", "whale"):
            request = [load.get(check_path(who))]
            value = [metered_value(ds.WHALE_GRANTS, history.usage(who))]
            warm = run_load(
                ctx,
                f"b3-warm-{who}",
                server,
                request,
                connections=2,
                duration=1.0,
                drain=600,
                dump=True,
            )
            verify_checks(ctx, "B3", warm, value)
            server.wait_quiet()
            result = run_load(
                ctx,
                f"b3-{who}",
                server,
                request,
                connections=SENDERS,
                duration=ctx.scale.duration,
                rate=rate,
                drain=drain_for(ctx),
                dump=True,
            )
            verify_checks(ctx, "B3", result, value)
            results[who] = result
            server.wait_quiet(timeout=900)
        ctx.add(
            Figure(
                "B3",
                ctx.kind,
                f"check p99, {ctx.scale.whale_events:,} events in period, at {rate:,.0f}/s",
                results["whale"].latency["p99"],
                "ms",
                results["small"].latency["p99"],
                f"same with {ctx.scale.small_events:,} events",
                "<= 1.2x",
                lambda _v, r: r is not None and r <= 1.2,
                load.TOOL + ", CO-corrected",
                lower_bound=results["whale"].incomplete > 0,
                details={who: r.summary for who, r in results.items()},
            )
        )
    finally:
        server.stop()
        databases.drop(copy)


# -- B6's growth ------------------------------------------------------------------------------


def stage_run(ctx: Context, full_peak_mib: float) -> None:
    data = ctx.dataset
    copy = databases.store(ctx.kind, f"run_{ctx.run_id}_stage", ctx.workdir)
    databases.copy(data.store("stage"), copy)
    ctx.notes["api_key"] = data.api_key
    server = Server(copy.url, ctx.workers, ctx.workdir / f"{ctx.kind}-server-stage.log")
    expectations = Expectations(data.expected("stage_population"))
    try:
        server.start()
        checks, values = population_checks(ctx, expectations, ds.ranks_for_b2(ctx.scale))
        result = run_load(
            ctx,
            "stage-check",
            server,
            checks,
            connections=SATURATION_CLIENTS,
            duration=ctx.scale.duration,
            dump=True,
        )
        verify_checks(ctx, "B6 stage", result, values)
        events = b1_events(ctx, ctx.scale.b1_events, "b6")
        stage_requests = ingest_requests(events, "bench-b6")
        ingest = run_load(
            ctx,
            "stage-b1",
            server,
            stage_requests,
            connections=SENDERS,
            once=True,
            duration=3600,
            dump=True,
        )
        ingest_ok(ctx, "B6 stage ingest", ingest, len(stage_requests))
        peak = max(m["VmHWM"] for m in server.memory().values()) / 1024
        stored = round(
            ctx.scale.population_events
            * data.manifest["stage_chunks"]
            * ctx.scale.chunk_events
            / ctx.scale.population_events
        )
        ctx.add(
            Figure(
                "B6",
                ctx.kind,
                f"peak RSS growth, {stored:,} -> {ctx.scale.population_events:,} stored",
                full_peak_mib,
                "MiB",
                peak,
                f"peak with {stored:,} stored",
                "<= 1.2x",
                lambda _v, r: r is not None and r <= 1.2,
                "/proc/<pid>/status VmHWM",
            )
        )
    finally:
        server.stop()
        databases.drop(copy)


def run_database(ctx: Context) -> None:
    started = time.perf_counter()
    pop = population_run(ctx)
    if ctx.wants("B3"):
        # Without B2 (--only), B3's own small check sets the rate.
        rate = min(pop.get("b2_rate", inf), max(1.0, pop.get("check_max", inf) / 2))
        history_run(ctx, rate)
    if ctx.wants("B6"):
        stage_run(ctx, pop["peak_mib"])
    ctx.notes["seconds"] = round(time.perf_counter() - started, 1)
