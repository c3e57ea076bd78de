"""The benchmark's data sets, built once per parameters and reused while sound.

Three databases per data set (each a template a run copies before touching it):

- `pop`: the population. `subjects` customers (key c-00001 ..., subject s-00001 ...), each with
  a metered entitlement on `ai_tokens` (meter `tokens`: SUM of `$.tokens` of `prompt` events,
  group-by `model`) holding 3 grants; `population_events` events over those subjects, Zipf-skewed
  (rank r gets a share of about 1/r), 8 models (skewed too), spread in time order over the
  current usage period, 2 % of them late (hours to 20 days back) and 0.5 % sent twice (a retried
  batch). Plus the B7 customers: `b7_customers` customers with one metered entitlement for each of
  `b7_features` features (meter `calls`, filtered by `feature`), one grant each.
- `stage`: the same population stopped at `stage_fraction` of its events (B6's 1M of 10M).
- `hist`: B3's history: customer `whale` with `whale_events` events in its current period and
  `small` with `small_events`, the same meter, feature and grants as the population.

Events go in through the project's own bulk path, `allotment.services.events.ingest`, called
in-process with large batches from two processes; definitions through the HTTP API (in-process
TestClient), so they take the same checks as any client's. The generator keeps what it sent
(usage per subject, per subject and model, per B7 customer and feature): that, not the server,
is what every answer of the benchmark is compared with.

Reuse: a data set is keyed by its parameters, this generator's source, and the storage code and
migrations that decide how events are stored (src/allotment/storage/, services/events.py): any
change there builds it again. It is also rebuilt once its usage period is within a day of its
end (the period is a calendar month anchored 21 days before the build).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dateutil.relativedelta import relativedelta

from bench import databases
from bench.databases import Store
from bench.scales import Scale

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / "cache"
GENERATOR_VERSION = 1
PROCESSES = int(os.environ.get("BENCH_PROCESSES", "2"))

MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3.5", "llama-3-70b", "mistral-l", "o1", "gemini", "qwen")
MODEL_WEIGHTS = (30, 25, 15, 10, 8, 6, 4, 2)
SOURCE = "bench-generator"


def grant_amounts(rank: int) -> tuple[int, int, int]:
    """The 3 grants (priorities 1, 2, 3) of population customer `rank`; the heavy ranks run into
    overage, most do not."""
    return (20_000 * (1 + rank % 5), 100_000, 1_000 * (1 + rank % 7))


WHALE_GRANTS = (5_000_000, 1_000_000, 250_000)


def b7_grant(feature: int) -> int:
    return 40 + feature


def subject(rank: int) -> str:
    return f"s-{rank:05d}"


def customer(rank: int) -> str:
    return f"c-{rank:05d}"


def b7_customer(index: int) -> str:
    return f"b7-{index:03d}"


def b7_subject(index: int) -> str:
    return f"b7s-{index:03d}"


def b7_feature(index: int) -> str:
    return f"f_{index:03d}"


def rfc3339(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- the time layout --------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    anchor: datetime
    """Start of the usage period (and of measurement) of every entitlement."""
    built_at: datetime

    @property
    def period_end(self) -> datetime:
        return self.anchor + relativedelta(months=1)

    @property
    def first_event(self) -> datetime:
        return self.anchor + timedelta(minutes=1)

    @property
    def last_event(self) -> datetime:
        return self.built_at - timedelta(minutes=2)

    @staticmethod
    def now() -> Layout:
        built = datetime.now(UTC).replace(microsecond=0)
        anchor = (built - timedelta(days=21)).replace(minute=0, second=0)
        return Layout(anchor=anchor, built_at=built)


# -- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    """One deterministic stream of events: chunk j covers the j-th slice of the period."""

    label: str
    subjects: Sequence[str]
    weights: Sequence[float]
    events: int
    seed: int

    def chunks(self, chunk_events: int) -> int:
        return (self.events + chunk_events - 1) // chunk_events


def population_stream(scale: Scale) -> Stream:
    weights = [1.0 / (rank**scale.zipf_exponent) for rank in range(1, scale.subjects + 1)]
    subjects = [subject(rank) for rank in range(1, scale.subjects + 1)]
    return Stream("p", subjects, weights, scale.population_events, seed=1)


def history_streams(scale: Scale) -> list[Stream]:
    return [
        Stream("w", ["whale"], [1.0], scale.whale_events, seed=2),
        Stream("m", ["small"], [1.0], scale.small_events, seed=3),
    ]


def chunk_events(
    stream: Stream, scale: Scale, layout: Layout, chunk: int
) -> tuple[list[list[Any]], dict[str, dict[str, int]]]:
    """The batches of chunk `chunk` (the second repeats a few events of the first: a retried
    send) and the usage they add per subject and model, duplicates counted once."""
    from allotment.domain.events import Event

    rng = random.Random(stream.seed * 1_000_003 + chunk)
    count = min(scale.chunk_events, stream.events - chunk * scale.chunk_events)
    n_chunks = stream.chunks(scale.chunk_events)
    first = layout.first_event.timestamp()
    span = layout.last_event.timestamp() - first
    slice_start = first + span * chunk / n_chunks
    slice_span = span / n_chunks
    cumulative = list(itertools.accumulate(stream.weights))
    model_cumulative = list(itertools.accumulate(MODEL_WEIGHTS))
    subjects = rng.choices(stream.subjects, cum_weights=cumulative, k=count)
    models = rng.choices(MODELS, cum_weights=model_cumulative, k=count)
    times = sorted(slice_start + rng.random() * slice_span for _ in range(count))
    totals: dict[str, dict[str, int]] = {}
    events = []
    for i in range(count):
        at = times[i]
        if rng.random() < scale.late_fraction:
            at = max(first, at - rng.uniform(3600, 20 * 86400))
        tokens = 1 + int(rng.lognormvariate(5.0, 1.2))
        who, model = subjects[i], models[i]
        events.append(
            Event(
                id=f"{stream.label}{chunk:05d}-{i:05d}",
                source=SOURCE,
                type="prompt",
                subject=who,
                time=datetime.fromtimestamp(round(at, 3), UTC),
                data={"tokens": tokens, "model": model},
            )
        )
        by_model = totals.setdefault(who, {})
        by_model[model] = by_model.get(model, 0) + tokens
    half = len(events) // 2
    retried = rng.sample(events[:half], k=int(half * scale.duplicate_fraction * 2)) if half else []
    return [events[:half], events[half:] + retried], totals


def b7_events(scale: Scale, layout: Layout) -> tuple[list[Any], dict[str, dict[str, int]]]:
    from allotment.domain.events import Event

    rng = random.Random(7)
    first = layout.first_event.timestamp()
    span = layout.last_event.timestamp() - first
    usage: dict[str, dict[str, int]] = {}
    events = []
    for c in range(scale.b7_customers):
        for f in range(scale.b7_features):
            for e in range(scale.b7_events_per_entitlement):
                units = rng.randint(1, 20)
                events.append(
                    Event(
                        id=f"b7-{c}-{f}-{e}",
                        source=SOURCE,
                        type="call",
                        subject=b7_subject(c),
                        time=datetime.fromtimestamp(round(first + rng.random() * span, 3), UTC),
                        data={"units": units, "feature": b7_feature(f)},
                    )
                )
                per = usage.setdefault(b7_customer(c), {})
                per[b7_feature(f)] = per.get(b7_feature(f), 0) + units
    return events, usage


# -- the work of the generator processes ------------------------------------------------------

_contexts: dict[str, Any] = {}


def _context(url: str) -> Any:
    if url not in _contexts:
        from allotment.services.context import ServiceContext
        from allotment.storage import Database

        _contexts[url] = ServiceContext(database=Database(url, pool_size=2))
    return _contexts[url]


def _ingest(url: str, batch: Sequence[Any]) -> None:
    from allotment.services import events

    for start in range(0, len(batch), 5_000):
        events.ingest(_context(url), batch[start : start + 5_000])


def _ingest_chunk(job: tuple[str, Stream, Scale, Layout, int]) -> dict[str, dict[str, int]]:
    url, stream, scale, layout, chunk = job
    batches, totals = chunk_events(stream, scale, layout, chunk)
    for batch in batches:
        _ingest(url, batch)
    return totals


def _dispose_contexts() -> None:
    for context in _contexts.values():
        context.database.dispose()
    _contexts.clear()


def _worker_exit(_: int) -> None:
    _dispose_contexts()


def _ingest_stream(
    url: str, stream: Stream, scale: Scale, layout: Layout, chunks: range, into: dict[str, Any]
) -> None:
    """Ingest `chunks` of `stream` from the generator processes; add what they sent to `into`
    (subject -> model -> tokens)."""
    jobs = [(url, stream, scale, layout, j) for j in chunks]
    with multiprocessing.get_context("fork").Pool(PROCESSES) as pool:
        for totals in pool.imap_unordered(_ingest_chunk, jobs):
            merge(into, totals)
        pool.map(_worker_exit, range(PROCESSES))


def merge(into: dict[str, dict[str, int]], totals: dict[str, dict[str, int]]) -> None:
    for who, by_model in totals.items():
        target = into.setdefault(who, {})
        for model, tokens in by_model.items():
            target[model] = target.get(model, 0) + tokens


# -- definitions through the API ---------------------------------------------------------------

_clients: dict[str, Any] = {}


def _client(url: str, key: str) -> Any:
    if url not in _clients:
        from fastapi.testclient import TestClient

        from allotment.api.app import create_app
        from allotment.settings import Settings

        _clients[url] = TestClient(
            # A bulk load, not a client: the per-key write limit (200/s) refused it on a fast
            # machine.
            create_app(Settings(database_url=url, pool_size=2, rate_limit_writes="")),
            headers={"Authorization": f"Bearer {key}"},
        )
    return _clients[url]


def _post_all(job: tuple[str, str, list[tuple[str, dict[str, Any]]]]) -> int:
    url, key, requests = job
    client = _client(url, key)
    for path, body in requests:
        response = client.post(path, json=body)
        if response.status_code not in (200, 201):
            raise RuntimeError(f"POST {path} -> {response.status_code}: {response.text[:300]}")
    return len(requests)


def _close_clients(_: int) -> None:
    for client in _clients.values():
        client.app.state.context.database.dispose()
    _clients.clear()


def _post_parallel(url: str, key: str, requests: list[tuple[str, dict[str, Any]]]) -> None:
    shards = [requests[i::PROCESSES] for i in range(PROCESSES)]
    with multiprocessing.get_context("fork").Pool(PROCESSES) as pool:
        pool.map(_post_all, [(url, key, shard) for shard in shards if shard])
        pool.map(_close_clients, range(PROCESSES))


def metered_entitlement(feature: str, layout: Layout, amounts: Sequence[int]) -> dict[str, Any]:
    start = rfc3339(layout.anchor)
    return {
        "type": "metered",
        "featureKey": feature,
        "usagePeriod": {"interval": "MONTH", "anchor": start},
        "measureUsageFrom": start,
        "grants": [
            {"amount": amount, "priority": priority, "effectiveAt": start}
            for priority, amount in enumerate(amounts, start=1)
        ],
    }


def _customer(key: str, subject_key: str) -> tuple[str, dict[str, Any]]:
    return (
        "/api/v1/customers",
        {"key": key, "name": key, "usageAttribution": {"subjectKeys": [subject_key]}},
    )


TOKENS_METER = {
    "slug": "tokens",
    "eventType": "prompt",
    "aggregation": "SUM",
    "valueProperty": "$.tokens",
    "groupBy": {"model": "$.model"},
}
CALLS_METER = {
    "slug": "calls",
    "eventType": "call",
    "aggregation": "SUM",
    "valueProperty": "$.units",
    "groupBy": {"feature": "$.feature"},
}


def _define_population(url: str, key: str, scale: Scale, layout: Layout) -> None:
    _post_all(
        (
            url,
            key,
            [
                ("/api/v1/meters", TOKENS_METER),
                ("/api/v1/meters", CALLS_METER),
                (
                    "/api/v1/features",
                    {"key": "ai_tokens", "name": "AI tokens", "meterSlug": "tokens"},
                ),
            ]
            + [
                (
                    "/api/v1/features",
                    {
                        "key": b7_feature(f),
                        "name": f"Calls {f}",
                        "meterSlug": "calls",
                        "meterGroupByFilters": {"feature": b7_feature(f)},
                    },
                )
                for f in range(scale.b7_features)
            ],
        )
    )
    _close_clients(0)
    per_customer: list[tuple[str, dict[str, Any]]] = []
    for rank in range(1, scale.subjects + 1):
        per_customer.append(_customer(customer(rank), subject(rank)))
    for c in range(scale.b7_customers):
        per_customer.append(_customer(b7_customer(c), b7_subject(c)))
    _post_parallel(url, key, per_customer)
    entitlements = [
        (
            f"/api/v2/customers/{customer(rank)}/entitlements",
            metered_entitlement("ai_tokens", layout, grant_amounts(rank)),
        )
        for rank in range(1, scale.subjects + 1)
    ]
    entitlements += [
        (
            f"/api/v2/customers/{b7_customer(c)}/entitlements",
            metered_entitlement(b7_feature(f), layout, [b7_grant(f)]),
        )
        for c in range(scale.b7_customers)
        for f in range(scale.b7_features)
    ]
    _post_parallel(url, key, entitlements)


def _define_history(url: str, key: str, layout: Layout) -> None:
    requests = [
        ("/api/v1/meters", TOKENS_METER),
        ("/api/v1/features", {"key": "ai_tokens", "name": "AI tokens", "meterSlug": "tokens"}),
    ]
    for who in ("whale", "small"):
        requests.append(_customer(who, who))
        requests.append(
            (
                f"/api/v2/customers/{who}/entitlements",
                metered_entitlement("ai_tokens", layout, WHALE_GRANTS),
            )
        )
    _post_all((url, key, requests))
    _close_clients(0)


# -- building and reusing ---------------------------------------------------------------------


def _source_hash() -> str:
    digest = hashlib.sha256()
    src = ROOT / "src" / "allotment"
    paths = [*sorted((src / "storage").rglob("*.py")), src / "services" / "events.py"]
    paths += [Path(__file__), ROOT / "bench" / "scales.py"]
    for path in paths:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def dataset_key(kind: str, scale: Scale) -> str:
    material = json.dumps(
        {
            "kind": kind,
            "scale": scale.parameters(),
            "version": GENERATOR_VERSION,
            "source": _source_hash(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:10]


@dataclass
class Dataset:
    kind: str
    scale: Scale
    key: str
    directory: Path
    manifest: dict[str, Any]

    def store(self, role: str) -> Store:
        return databases.store(self.kind, f"{self.scale.name}_{self.key}_{role}", self.directory)

    @property
    def layout(self) -> Layout:
        return Layout(
            anchor=datetime.fromisoformat(self.manifest["anchor"]),
            built_at=datetime.fromisoformat(self.manifest["built_at"]),
        )

    @property
    def api_key(self) -> str:
        return str(self.manifest["api_key"])

    def expected(self, name: str) -> Any:
        return self.manifest["expected"][name]


def _manifest_path(directory: Path) -> Path:
    return directory / "manifest.json"


def load_or_build(kind: str, scale: Scale, *, rebuild: bool = False, log: Any = print) -> Dataset:
    key = dataset_key(kind, scale)
    directory = CACHE / f"{kind}-{scale.name}-{key}"
    dataset = Dataset(kind, scale, key, directory, {})
    path = _manifest_path(directory)
    if path.exists() and not rebuild:
        dataset.manifest = json.loads(path.read_text())
        fresh = datetime.now(UTC) + timedelta(days=1) < dataset.layout.period_end
        stores = all(databases.exists(dataset.store(r)) for r in ("pop", "stage", "hist"))
        if dataset.manifest.get("complete") and fresh and stores:
            log(f"data set {directory.name}: reused (built {dataset.manifest['built_at']})")
            return dataset
        log(f"data set {directory.name}: stale or incomplete, building again")
    _forget_older(kind, scale, keep=key)
    started = time.perf_counter()
    dataset.manifest = _build(dataset, log)
    dataset.manifest["build_seconds"] = round(time.perf_counter() - started, 1)
    dataset.manifest["complete"] = True
    path.write_text(json.dumps(dataset.manifest))
    log(f"data set {directory.name}: built in {dataset.manifest['build_seconds']} s")
    return dataset


def _forget_older(kind: str, scale: Scale, keep: str) -> None:
    """Drop earlier data sets of this kind and scale (they take gigabytes at full scale)."""
    if CACHE.exists():
        for old in CACHE.glob(f"{kind}-{scale.name}-*"):
            if old.name.endswith(keep):
                continue
            for db in old.glob("*.db*"):
                db.unlink()
            _manifest_path(old).unlink(missing_ok=True)
            old.rmdir() if not any(old.iterdir()) else None
    if kind == "postgres":
        for name in databases.list_pg(f"{databases.PREFIX}{scale.name}_"):
            if f"_{keep}_" not in name:
                databases.drop(Store("postgres", name))


def _new_database(s: Store) -> str:
    """An empty, migrated database with an admin key; returns the key."""
    from allotment.services import api_keys
    from allotment.services.context import ServiceContext
    from allotment.storage import Database
    from allotment.storage.migrations import upgrade

    databases.create_empty(s)
    upgrade(s.url)
    context = ServiceContext(database=Database(s.url))
    _key, secret = api_keys.create_key(context, "admin", "benchmark")
    context.database.dispose()
    return str(secret)


def _maintain(s: Store, log: Any) -> None:
    """Fold what the bulk load left pending into the roll-ups, as a running server's maintenance
    worker would have, with the documented command (`allotment maintenance`)."""
    started = time.perf_counter()
    if s.kind == "postgres":
        # Autovacuum is off here: without statistics the maintenance queries plan blind (a
        # quick data set's fold took over 8 minutes instead of seconds). Autovacuum would have
        # analyzed tables this fresh.
        databases.analyze(s)
    allotment = Path(sys.executable).with_name("allotment")
    done = subprocess.run(
        [str(allotment), "maintenance"],
        env={**os.environ, "ALLOTMENT_DATABASE_URL": s.url},
        capture_output=True,
        text=True,
        check=True,
    )
    log(f"  maintenance: {done.stderr.strip()} ({time.perf_counter() - started:.1f} s)")


def _build(dataset: Dataset, log: Any) -> dict[str, Any]:
    scale, layout = dataset.scale, Layout.now()
    dataset.directory.mkdir(parents=True, exist_ok=True)
    pop, stage, hist = (dataset.store(r) for r in ("pop", "stage", "hist"))
    secret = _new_database(pop)
    t = time.perf_counter()
    _define_population(pop.url, secret, scale, layout)
    log(f"  definitions: {time.perf_counter() - t:.1f} s")

    t = time.perf_counter()
    events, b7_usage = b7_events(scale, layout)
    for start in range(0, len(events), 50_000):
        _ingest(pop.url, events[start : start + 50_000])
    _dispose_contexts()
    stream = population_stream(scale)
    n_chunks = stream.chunks(scale.chunk_events)
    n_stage = max(1, round(n_chunks * scale.stage_fraction))
    population: dict[str, dict[str, int]] = {}
    _ingest_stream(pop.url, stream, scale, layout, range(n_stage), population)
    stage_population = json.loads(json.dumps(population))
    _maintain(pop, log)
    databases.finalize(pop)
    databases.copy(pop, stage)
    log(f"  population to the {scale.stage_fraction:.0%} stage: {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    _ingest_stream(pop.url, stream, scale, layout, range(n_stage, n_chunks), population)
    _maintain(pop, log)
    databases.finalize(pop)
    ingest_seconds = time.perf_counter() - t
    log(
        f"  population: {scale.population_events:,} events in {ingest_seconds:.1f} s after the"
        " stage"
    )

    t = time.perf_counter()
    hist_secret = _new_database(hist)
    _define_history(hist.url, hist_secret, layout)
    history: dict[str, dict[str, int]] = {}
    for s in history_streams(scale):
        _ingest_stream(hist.url, s, scale, layout, range(s.chunks(scale.chunk_events)), history)
    _maintain(hist, log)
    databases.finalize(hist)
    log(
        f"  history ({scale.whale_events:,} + {scale.small_events:,} events):"
        f" {time.perf_counter() - t:.1f} s"
    )
    return {
        "kind": dataset.kind,
        "scale": scale.parameters(),
        "anchor": layout.anchor.isoformat(),
        "built_at": layout.built_at.isoformat(),
        "api_key": secret,
        "hist_api_key": hist_secret,
        "stage_chunks": n_stage,
        "expected": {
            "population": population,
            "stage_population": stage_population,
            "history": history,
            "b7": b7_usage,
        },
    }


def subject_usage(by_model: dict[str, dict[str, int]], who: str) -> int:
    return sum(by_model.get(who, {}).values())


def ranks_for_b2(scale: Scale) -> list[int]:
    """B2 rotates over customers spread evenly over the ranks past the top 1 % (the heaviest are
    B3's and B5's subject)."""
    first = max(2, scale.subjects // 100)
    ranks = range(first, scale.subjects + 1)
    step = max(1, len(ranks) // scale.b2_customers)
    return list(ranks[::step])[: scale.b2_customers]
