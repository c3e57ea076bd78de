"""Prometheus metrics (the `prometheus-client` library), served at GET /metrics.

One set per process, on prometheus-client's default registry (which also carries the process
collector: memory, CPU, open files). Every name starts with `allotment_`; the README lists them.
Label values are bounded sets (route templates, never raw paths), so a scanner probing random
URLs cannot blow up the number of series.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from allotment.storage import Database

REQUESTS = Counter(
    "allotment_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
REQUEST_DURATION = Histogram(
    "allotment_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by method and route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
EVENTS_INGESTED = Counter(
    "allotment_events_ingested", "Events accepted by POST /api/v1/events (duplicates included)."
)
EVENTS_REJECTED = Counter(
    "allotment_events_rejected", "Events refused by POST /api/v1/events, by reason.", ["reason"]
)
ACCESS_CHECKS = Counter(
    "allotment_access_checks",
    "Entitlement value reads (check access), by result: granted or denied.",
    ["result"],
)
DATABASE_UNAVAILABLE = Counter(
    "allotment_database_unavailable",
    "Requests answered 503 because the database could not serve them, by reason.",
    ["reason"],
)
RATE_LIMITED = Counter("allotment_rate_limited", "Requests refused with 429, by limit.", ["limit"])
IDEMPOTENT_REPLAYS = Counter(
    "allotment_idempotent_replays",
    "Requests answered from a stored response because their Idempotency-Key was seen before.",
)


WEBHOOK_ATTEMPTS = Counter(
    "allotment_webhook_attempts",
    "Webhook delivery attempts, by outcome: success (2xx), refused (another status), "
    "unreachable (no answer in time, or no connection).",
    ["result"],
)


def record_webhook_attempt(result: str) -> None:
    WEBHOOK_ATTEMPTS.labels(result=result).inc()


def record_events_ingested(count: int) -> None:
    """For the ingest route: `count` events of an accepted body."""
    EVENTS_INGESTED.inc(count)


def record_events_rejected(count: int, reason: str = "invalid") -> None:
    """For the ingest route: `count` events of a refused body (the whole batch is refused)."""
    EVENTS_REJECTED.labels(reason=reason).inc(count)


def record_access_check(has_access: bool) -> None:
    ACCESS_CHECKS.labels(result="granted" if has_access else "denied").inc()


class _PoolCollector(Collector):
    """Connection pool use of every open Database of this process, read when scraped."""

    def __init__(self) -> None:
        self._databases: weakref.WeakSet[Database] = weakref.WeakSet()

    def watch(self, database: Database) -> None:
        self._databases.add(database)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "allotment_database_pool_connections",
            "Database connections of this process by state (checked_out: in use by a request).",
            labels=["database", "state"],
        )
        for database in list(self._databases):
            use = database.pool_use()
            for state, count in use.items():
                family.add_metric([database.dialect, state], count)
        yield family


_POOLS = _PoolCollector()
REGISTRY.register(_POOLS)


def watch_database(database: Database) -> None:
    _POOLS.watch(database)


def exposition() -> tuple[bytes, str]:
    """The text format body and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
