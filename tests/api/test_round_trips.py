"""Check access costs one database round trip, on both databases.

A test counts every statement the server sends while it answers one request, and whether any
of them ran inside a transaction (a BEGIN and a ROLLBACK are round trips too): once the
server has seen the key and the entitlement, a value read and a customer's access (many
features) are each one statement outside any transaction. A change to a definition costs the
next read a few more, once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from allotment.api.app import create_app
from allotment.services.context import ServiceContext
from allotment.services.maintenance import run_until_idle, save_checkpoints
from allotment.settings import Settings
from allotment.storage import hot_read
from tests.api.helpers import send_usage, setup_catalogue


@dataclass
class Statements:
    """Statements sent on the request-serving threads (the background workers are off)."""

    sql: list[str] = field(default_factory=list)
    in_transaction: list[bool] = field(default_factory=list)
    on: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        return len(self.sql)

    def reset(self) -> None:
        with self.lock:
            self.sql.clear()
            self.in_transaction.clear()


@pytest.fixture
def statements(context: ServiceContext) -> Iterator[Statements]:
    seen = Statements()
    engine = context.database.engine

    def before(conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if not seen.on:
            return
        dbapi = conn.connection.dbapi_connection
        if conn.dialect.name == "sqlite":
            open_transaction = bool(dbapi.in_transaction)
        else:
            open_transaction = not dbapi.autocommit
        with seen.lock:
            seen.sql.append(statement)
            seen.in_transaction.append(open_transaction)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


@pytest.fixture
def quiet_client(context: ServiceContext, admin_key: str) -> Iterator[TestClient]:
    # Both background workers off: their polls would run on the same engine mid-request.
    settings = Settings(maintenance_interval_seconds=0, webhook_sender_enabled=False)
    app = create_app(settings, context=context)
    with TestClient(app, headers={"Authorization": f"Bearer {admin_key}"}) as client:
        yield client


def _entitled(client: TestClient, customer: str, features: list[str]) -> None:
    assert client.post("/api/v1/customers", json={"key": customer, "name": customer}).is_success
    for feature in features:
        body = {
            "type": "metered",
            "featureKey": feature,
            "usagePeriod": {"interval": "MONTH", "anchor": "2024-01-01T00:00:00Z"},
            "issueAfterReset": 1000,
        }
        created = client.post(f"/api/v2/customers/{customer}/entitlements", json=body)
        assert created.status_code == 201, created.text
        for amount in (10, 20):
            grant = {"amount": amount, "effectiveAt": "2024-01-02T00:00:00Z"}
            path = f"/api/v2/customers/{customer}/entitlements/{feature}/grants"
            assert client.post(path, json=grant).status_code == 201


def _metered_features(client: TestClient, count: int) -> list[str]:
    """`count` features of one SUM meter of `prompt` events' tokens."""
    meter = {
        "slug": "tokens",
        "eventType": "prompt",
        "aggregation": "SUM",
        "valueProperty": "$.tokens",
    }
    assert client.post("/api/v1/meters", json=meter).is_success
    features = [f"feature_{n}" for n in range(count)]
    for key in features:
        body = {"key": key, "name": key, "meterSlug": "tokens"}
        assert client.post("/api/v1/features", json=body).is_success
    return features


def test_a_value_read_is_one_statement_outside_any_transaction(
    quiet_client: TestClient, statements: Statements
) -> None:
    setup_catalogue(quiet_client)
    _entitled(quiet_client, "acme", ["ai_tokens"])
    send_usage(quiet_client, 120, "2024-01-10T10:00:00Z")
    path = "/api/v1/customers/acme/entitlements/ai_tokens/value"
    first = quiet_client.get(path).json()
    assert first["balance"] == 1030 - 120

    statements.on = True
    for _ in range(3):
        statements.reset()
        assert quiet_client.get(path).json() == first
        assert statements.count() == 1, statements.sql
        assert statements.in_transaction == [False]

    # The v1 subject path and the v2 customer path answer from the same one statement.
    for other in (
        "/api/v1/subjects/acme/entitlements/ai_tokens/value",
        "/api/v2/customers/acme/entitlements/ai_tokens/value",
    ):
        quiet_client.get(other)
        statements.reset()
        assert quiet_client.get(other).json()["balance"] == first["balance"]
        assert statements.count() == 1, statements.sql

    # Usage needs no reload: still one statement, and the new event counts at once.
    statements.on = False
    send_usage(quiet_client, 30, "2024-01-11T10:00:00Z")
    statements.on = True
    statements.reset()
    assert quiet_client.get(path).json()["balance"] == 1030 - 150
    assert statements.count() == 1

    # A top-up changes the definitions: the next read reloads them (a few statements, once)
    # and is exact; the one after is one statement again.
    statements.on = False
    grant = {"amount": 500, "effectiveAt": "2024-01-12T00:00:00Z"}
    assert quiet_client.post(
        "/api/v2/customers/acme/entitlements/ai_tokens/grants", json=grant
    ).is_success
    statements.on = True
    statements.reset()
    assert quiet_client.get(path).json()["balance"] == 1530 - 150
    assert 1 < statements.count() <= 16, statements.sql
    statements.reset()
    assert quiet_client.get(path).json()["balance"] == 1530 - 150
    assert statements.count() == 1


def test_customer_access_for_many_features_is_one_statement(
    quiet_client: TestClient, statements: Statements
) -> None:
    features = _metered_features(quiet_client, 12)
    assert quiet_client.post("/api/v1/features", json={"key": "sso", "name": "SSO"}).is_success
    _entitled(quiet_client, "acme", features)
    assert quiet_client.post(
        "/api/v2/customers/acme/entitlements", json={"type": "boolean", "featureKey": "sso"}
    ).is_success
    send_usage(quiet_client, 7, "2024-01-10T10:00:00Z")
    first = quiet_client.get("/api/v1/customers/acme/access").json()["entitlements"]
    assert set(first) == {*features, "sso"}
    assert all(first[key]["balance"] == 1030 - 7 for key in features)

    statements.on = True
    statements.reset()
    again = quiet_client.get("/api/v1/customers/acme/access").json()["entitlements"]
    assert again == first
    assert statements.count() == 1, statements.sql
    assert statements.in_transaction == [False]


def test_customer_access_adopts_the_checkpoints_maintenance_saved_and_stops_asking(
    quiet_client: TestClient, context: ServiceContext, statements: Statements
) -> None:
    """A read that starts far back asks maintenance for checkpoints; once they are saved, the
    next read of the customer notices (in its one statement), starts from them, and asks no
    more. A customer's access read once kept asking forever: maintenance saved checkpoints of
    all its entitlements every few seconds, which a read of many features never picked up."""
    features = _metered_features(quiet_client, 3)
    _entitled(quiet_client, "acme", features)
    send_usage(quiet_client, 7, "2024-01-10T10:00:00Z")
    path = "/api/v1/customers/acme/access"
    first = quiet_client.get(path).json()["entitlements"]
    assert run_until_idle(context).checkpoints == len(features)  # the first read asked

    statements.on = True
    statements.reset()
    assert quiet_client.get(path).json()["entitlements"] == first
    # The read, then the newer checkpoints loaded for the reads after it.
    assert statements.count() == 2, statements.sql
    for _ in range(2):
        statements.reset()
        assert quiet_client.get(path).json()["entitlements"] == first
        assert statements.count() == 1, statements.sql
    assert context.caches.take_checkpoint_requests() == []


def test_checkpoints_saved_one_by_one_keep_the_customer_on_one_compiled_statement(
    quiet_client: TestClient, context: ServiceContext, statements: Statements
) -> None:
    """Maintenance saves a customer's checkpoints one entitlement at a time, and reads start
    from each as it appears. Which ones exist once decided the statement's shape, so a customer
    of 100 features compiled a new 65 KB statement after nearly every save."""
    features = _metered_features(quiet_client, 3)
    _entitled(quiet_client, "acme", features)
    send_usage(quiet_client, 7, "2024-01-10T10:00:00Z")
    run_until_idle(context)  # PostgreSQL's pending deltas folded: they would void checkpoints
    path = "/api/v1/customers/acme/access"
    first = quiet_client.get(path).json()["entitlements"]
    ids = sorted(context.caches.take_checkpoint_requests())
    assert len(ids) == len(features)  # the first read asked for each

    shapes: set[object] = set()
    for saved in range(1, len(ids) + 1):
        assert save_checkpoints(context, ids[saved - 1 : saved]) == 1
        quiet_client.get(path)  # notices the newer checkpoint and loads it
        context.caches.take_checkpoint_requests()  # the others' requests, again
        before = set(hot_read._cache)
        statements.on = True
        statements.reset()
        assert quiet_client.get(path).json()["entitlements"] == first
        assert statements.count() == 1, statements.sql
        statements.on = False
        shapes |= set(hot_read._cache) - before
        if saved == 1:
            assert before, "the read compiled its statement before"
    # Reads from one, two, then three checkpoints: one statement for all of them (compiled
    # at the first, when it was new), none after.
    assert len(shapes) <= 1


def test_a_late_event_before_the_checkpoints_reloads_checkpoints_only(
    quiet_client: TestClient, context: ServiceContext, statements: Statements
) -> None:
    """Late usage before a checkpoint makes the next read's statement refuse it; the cached
    definitions still hold, so the read chooses checkpoints again and loads nothing else."""
    features = _metered_features(quiet_client, 3)
    _entitled(quiet_client, "acme", features)
    send_usage(quiet_client, 7, "2024-01-10T10:00:00Z")
    run_until_idle(context)
    path = "/api/v1/customers/acme/access"
    quiet_client.get(path)
    assert run_until_idle(context).checkpoints == len(features)
    quiet_client.get(path)  # adopts them
    send_usage(quiet_client, 5, "2024-01-12T10:00:00Z")  # before every checkpoint

    statements.on = True
    statements.reset()
    after = quiet_client.get(path).json()["entitlements"]
    assert {value["usage"] for value in after.values()} == {12}
    # Read statements (they check the customer's revision too) and what choosing checkpoints
    # reads: no query of the definitions' own tables.
    reloaded = [
        sql.split()[:12]
        for sql in statements.sql
        if not sql.startswith("WITH candidates")
        and any(f"FROM {table}" in sql for table in ("customers", "entitlements", "grants"))
    ]
    assert reloaded == [], reloaded
    assert quiet_client.get(path).json()["entitlements"] == after
