"""N1 to N3 of issue 14 (webhook notifications): the hot paths with rules defined, and how soon
a crossing reaches a healthy receiver. Run on the population server after B6's peak is taken
(so B6 compares like with like against the stage run, which defines no rules).

- **N1**: HTTP batch ingest, as B1, with a realistic rule active against none, on the same
  server in the same run: passes of fresh events in the order A B B A A B B A (A: no active
  rule, first none at all, then the rule disabled by PUT; B: enabled), so drift over the run
  (the database growing, caches, other work on the machine) falls on both sides alike; the
  totals are compared. Before each pass the evaluator has worked off what the last one queued,
  so the passes time ingest, not the last pass's leftovers.
- **N2**: for K customers one after another, one event that crosses a `usage_value` threshold
  above each one's usage; from the event's 2xx to the webhook's arrival, p99 and p50. Each
  payload's `data.value` must be exactly the customer's value after that event.
- **N3**: the check at 1 client with the rules active against all disabled, interleaved as N1.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from bench import databases, load, references, suite
from bench import dataset as ds
from bench.expected import metered_value, value_mismatch
from bench.figures import Figure
from bench.receiver import Arrival, Receiver
from bench.server import Server
from bench.suite import Context, Expectations

CHANNELS = "/api/v1/notification/channels"
RULES = "/api/v1/notification/rules"
MODES = "ABBAABBA"
"""N1's passes: A without an active rule, B with one."""
N1_THRESHOLDS = (
    {"value": 50, "type": "usage_percentage"},
    {"value": 80, "type": "usage_percentage"},
    {"value": 100, "type": "usage_percentage"},
    {"value": 10_000, "type": "balance_value"},
    {"value": 0, "type": "balance_value"},
)
DELIVERY_WAIT = 30.0
"""Seconds N2 waits for a delivery before counting it lost."""
QUEUE_WAIT = 120.0
"""Seconds the evaluator gets to work off what an ingest pass queued."""


def n2_customers(scale: Any) -> int:
    """K of N2: a tenth of B2's customers (20 quick, 50 full), at least 3."""
    return max(3, min(50, scale.b2_customers // 10))


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (p99 of 20 values is the largest)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))
    return ordered[int(rank) - 1]


class Api:
    """JSON requests to the server under test, with the bench's key."""

    def __init__(self, ctx: Context, server: Server) -> None:
        self.server = server
        self.headers = {
            "Authorization": f"Bearer {ctx.notes['api_key']}",
            "Content-Type": "application/json",
        }

    def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        status, answer = self.server.send(
            method, path, None if body is None else orjson.dumps(body), self.headers
        )
        if status != expect:
            raise RuntimeError(f"{method} {path} -> {status}: {answer[:300]!r}")
        return orjson.loads(answer) if answer else None


class Rule:
    """A rule of the run, switched on and off by PUT (the whole definition, as the API wants)."""

    def __init__(self, api: Api, body: dict[str, Any]) -> None:
        self.api = api
        self.body = body
        self.id = str(api.call("POST", RULES, body, expect=201)["id"])
        self.enabled = not body.get("disabled", False)

    def enable(self, enabled: bool) -> None:
        if enabled != self.enabled:
            self.api.call("PUT", f"{RULES}/{self.id}", {**self.body, "disabled": not enabled})
            self.enabled = enabled


def _count(copy: databases.Store, sql: str, *args: Any) -> int:
    mark = "?" if copy.kind == "sqlite" else "%s"
    with databases.connected(copy) as connection:
        row = connection.execute(sql.replace("?", mark), args).fetchone()
        if copy.kind == "postgres":
            connection.rollback()
        return int(row[0])


def wait_evaluated(copy: databases.Store, timeout: float = QUEUE_WAIT) -> float:
    """Wait until the evaluator has taken everything queued and the sender has nothing due;
    returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        queued = _count(copy, "SELECT count(*) FROM notification_pending")
        sending = _count(
            copy,
            "SELECT count(*) FROM notification_deliveries WHERE state IN ('PENDING', 'SENDING')",
        )
        if queued == 0 and sending == 0:
            break
        time.sleep(0.05)
    return time.monotonic() - started


def measure_notifications(
    ctx: Context,
    server: Server,
    copy: databases.Store,
    expectations: Expectations,
    ranks: Sequence[int],
) -> None:
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    with Receiver(secret) as receiver:
        api = Api(ctx, server)
        channel = api.call(
            "POST",
            CHANNELS,
            {"type": "WEBHOOK", "name": "bench", "url": receiver.url, "signingSecret": secret},
            expect=201,
        )
        n1_rule = measure_n1(ctx, server, api, copy, expectations, receiver, channel["id"])
        n2_rule = measure_n2(ctx, server, api, copy, expectations, receiver, channel["id"], ranks)
        measure_n3(ctx, server, expectations, ranks, [n1_rule, n2_rule])
        if receiver.refused:
            ctx.mismatches.add(
                "N", f"{len(receiver.refused)} webhooks failed verification: {receiver.refused[0]}"
            )
    # Exact after all of it: every B2 customer once more.
    checks, values = suite.population_checks(ctx, expectations, ranks)
    after = suite.run_load(
        ctx,
        "after-n",
        server,
        checks,
        connections=suite.SENDERS,
        once=True,
        duration=3600,
        dump=True,
    )
    suite.verify_checks(ctx, "checks after N1-N3", after, values)


def measure_n1(
    ctx: Context,
    server: Server,
    api: Api,
    copy: databases.Store,
    expectations: Expectations,
    receiver: Receiver,
    channel_id: str,
) -> Rule:
    per_pass = ctx.scale.n1_events
    events = suite.b1_events(ctx, per_pass * len(MODES), "n1")
    body = {
        "type": "entitlements.balance.threshold",
        "name": "bench usage",
        "channels": [channel_id],
        "thresholds": list(N1_THRESHOLDS),
        "features": ["ai_tokens"],
    }
    rule: Rule | None = None
    seconds = {"A": 0.0, "B": 0.0}
    sent = {"A": 0, "B": 0}
    passes: list[dict[str, Any]] = []
    for i, mode in enumerate(MODES):
        if mode == "B" and rule is None:
            rule = Rule(api, body)
        elif rule is not None:
            rule.enable(mode == "B")
        server.wait_quiet()
        chunk = events[i * per_pass : (i + 1) * per_pass]
        requests = suite.ingest_requests(chunk, "bench-n1")
        delivered = receiver.count()
        result = suite.run_load(
            ctx,
            f"n1-{i}-{mode}",
            server,
            requests,
            connections=suite.SENDERS,
            once=True,
            duration=3600,
            dump=True,
        )
        suite.ingest_ok(ctx, "N1", result, len(requests))
        for e in chunk:
            expectations.add(e.subject, e.data["model"], e.data["tokens"])
        caught_up = wait_evaluated(copy)
        seconds[mode] += result.summary["duration_s"]
        sent[mode] += len(chunk)
        passes.append(
            {
                "mode": mode,
                "events": len(chunk),
                "seconds": result.summary["duration_s"],
                "deliveries": receiver.count() - delivered,
                "evaluated_after_s": round(caught_up, 3),
            }
        )
    assert rule is not None  # MODES has a B
    stored = references.count_source(copy, "bench-n1")
    if stored != len(events):
        ctx.mismatches.add("N1", f"stored {stored} events of {len(events)}")
    fired = _count(copy, "SELECT count(*) FROM notification_events WHERE rule_id = ?", rule.id)
    delivered = sum(p["deliveries"] for p in passes)
    if delivered != fired:
        ctx.mismatches.add("N1", f"{fired} notification events, {delivered} webhooks received")
    with_rules, without = sent["B"] / seconds["B"], sent["A"] / seconds["A"]
    ctx.add(
        Figure(
            "N1",
            ctx.kind,
            f"HTTP ingest with a rule active, {len(MODES)} passes of {per_pass:,}",
            with_rules,
            "ev/s",
            without,
            "same, no active rule, interleaved",
            ">= 0.9x",
            lambda _v, r: r is not None and r >= 0.9,
            load.TOOL,
            details={
                "passes": passes,
                "notification_events": fired,
                "webhooks_received": delivered,
                "thresholds": list(N1_THRESHOLDS),
            },
        )
    )
    return rule


def _is_crossing(who: str, threshold: int) -> Callable[[Any], bool]:
    def wanted(payload: Any) -> bool:
        data = payload.get("data", {})
        crossed = data.get("threshold", {})
        return (
            data.get("subject", {}).get("key") == who
            and crossed.get("type") == "usage_value"
            and Decimal(crossed.get("value", -1)) == threshold
        )

    return wanted


def measure_n2(
    ctx: Context,
    server: Server,
    api: Api,
    copy: databases.Store,
    expectations: Expectations,
    receiver: Receiver,
    channel_id: str,
    ranks: Sequence[int],
) -> Rule:
    k = min(n2_customers(ctx.scale), len(ranks))
    chosen = list(ranks[:: max(1, len(ranks) // k)])[:k]
    threshold = max(expectations.usage(ds.subject(r)) for r in chosen) + 1_000
    rule = Rule(
        api,
        {
            "type": "entitlements.balance.threshold",
            "name": "bench crossing",
            "channels": [channel_id],
            "thresholds": [{"value": threshold, "type": "usage_value"}],
            "features": ["ai_tokens"],
        },
    )
    headers = {
        "Authorization": f"Bearer {ctx.notes['api_key']}",
        "Content-Type": "application/cloudevents+json",
    }
    wait_evaluated(copy)
    server.wait_quiet()
    latencies: list[float] = []
    acks: list[float] = []
    for rank in chosen:
        who = ds.subject(rank)
        tokens = threshold - expectations.usage(who) + 1 + rank % 100
        event = suite.cloudevent(
            f"n2-{ctx.run_id}-{rank}", "bench-n2", who, datetime.now(UTC), tokens, "gpt-4o"
        )
        started = time.perf_counter()
        status, answer = server.send("POST", "/api/v1/events", orjson.dumps(event), headers)
        acked = time.perf_counter()
        if not 200 <= status < 300:
            ctx.mismatches.add("N2", f"ingest status {status}: {answer[:200]!r}")
            continue
        expectations.add(who, "gpt-4o", tokens)
        acks.append((acked - started) * 1000)
        arrival: Arrival | None = receiver.wait_for(_is_crossing(who, threshold), DELIVERY_WAIT)
        if arrival is None:
            ctx.mismatches.add("N2", f"{who}: no webhook within {DELIVERY_WAIT:.0f} s")
            continue
        latencies.append((arrival.at - acked) * 1000)
        expected = metered_value(ds.grant_amounts(rank), expectations.usage(who))
        problem = value_mismatch(arrival.payload.get("data", {}).get("value", {}), expected)
        if problem:
            ctx.mismatches.add("N2", f"{who}: the payload's value: {problem}")
    lost = len(chosen) - len(latencies)
    details = {
        "latencies_ms": latencies,
        "ingest_ms": acks,
        "threshold": threshold,
        "customers": [ds.customer(r) for r in chosen],
        "lost": lost,
    }
    ctx.add(
        Figure(
            "N2",
            ctx.kind,
            f"first webhook of a crossing after the 2xx, {len(chosen)} customers, p99",
            # A lost delivery is as late as it gets: no p99 then.
            percentile(latencies, 0.99) if not lost else None,
            "ms",
            percentile(acks, 0.5),
            "the ingest's own p50",
            "<= 2000 ms",
            lambda v, _r: v is not None and v <= 2000,
            "bench/receiver.py, sequential",
            details=details,
        )
    )
    ctx.add(
        Figure(
            "N2",
            ctx.kind,
            "first webhook of a crossing after the 2xx, p50",
            percentile(latencies, 0.5),
            "ms",
            percentile(acks, 0.5),
            "the ingest's own p50",
            tool="bench/receiver.py, sequential",
        )
    )
    return rule


def measure_n3(
    ctx: Context,
    server: Server,
    expectations: Expectations,
    ranks: Sequence[int],
    rules: Sequence[Rule],
) -> None:
    checks, values = suite.population_checks(ctx, expectations, ranks)
    latencies: dict[str, list[float]] = {"A": [], "B": []}
    for i, mode in enumerate(MODES):
        for rule in rules:
            rule.enable(mode == "B")
        server.wait_quiet()
        result = suite.run_load(
            ctx,
            f"n3-{i}-{mode}",
            server,
            checks,
            connections=1,
            duration=max(0.5, ctx.scale.duration / 2),
            dump=True,
        )
        suite.verify_checks(ctx, "N3", result, values)
        latencies[mode].extend(a.latency_ms for a in result.answers)
    ctx.add(
        Figure(
            "N3",
            ctx.kind,
            f"check p50, 1 client, {len(rules)} rules active",
            percentile(latencies["B"], 0.5),
            "ms",
            percentile(latencies["A"], 0.5),
            "same, rules disabled, interleaved",
            "<= 1.1x",
            lambda _v, r: r is not None and r <= 1.1,
            load.TOOL + ", 1 client",
            details={"checks": {m: len(v) for m, v in latencies.items()}},
        )
    )
