"""Checks answered again from a kept answer, through HTTP, with two apps standing in for two
worker processes (each its own Database object, so its own mapping of the change board, and
its own caches): a repeated check sends no statement, a write through the other app is in the
very next answer, and the kept body is byte for byte what the route computes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from allotment.api.app import create_app
from allotment.services.context import ServiceContext
from allotment.settings import Settings
from allotment.storage import Database
from tests.api.helpers import send_usage, setup_catalogue
from tests.conftest import SettableClock

NOW = datetime(2024, 1, 15, 12, 0, 20, tzinfo=UTC)
VALUE = "/api/v1/customers/acme/entitlements/ai_tokens/value"
ACCESS = "/api/v1/customers/acme/access"


def _client(context: ServiceContext, key: str) -> TestClient:
    settings = Settings(maintenance_interval_seconds=0, webhook_sender_enabled=False)
    app = create_app(settings, context=context)
    return TestClient(app, headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(NOW)


@pytest.fixture
def two_workers(context: ServiceContext, admin_key: str) -> Iterator[tuple[TestClient, TestClient]]:
    other = Database(context.database.url, pool_size=2)
    second = ServiceContext(database=other, clock=context.clock)
    with _client(context, admin_key) as first, _client(second, admin_key) as reader:
        yield first, reader
    other.dispose()


@pytest.fixture
def statements(two_workers: tuple[TestClient, TestClient]) -> Iterator[list[str]]:
    """Statements the reading app sends."""
    reader = two_workers[1]
    engine: Any = reader.app.state.context.database.engine  # type: ignore[attr-defined]
    sent: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    yield sent
    event.remove(engine, "before_cursor_execute", before)


def _customer(client: TestClient) -> None:
    setup_catalogue(client)
    assert client.post("/api/v1/customers", json={"key": "acme", "name": "Acme"}).is_success
    body = {
        "type": "metered",
        "featureKey": "ai_tokens",
        "usagePeriod": {"interval": "MONTH", "anchor": "2024-01-01T00:00:00Z"},
        "issueAfterReset": 1000,
    }
    assert client.post("/api/v2/customers/acme/entitlements", json=body).status_code == 201
    boolean = {"type": "boolean", "featureKey": "saml_sso"}
    assert client.post("/api/v2/customers/acme/entitlements", json=boolean).status_code == 201


def test_a_repeated_check_is_answered_without_the_database_and_a_write_ends_that(
    two_workers: tuple[TestClient, TestClient], statements: list[str], clock: SettableClock
) -> None:
    writer, reader = two_workers
    _customer(writer)
    send_usage(writer, 120, "2024-01-10T10:00:00Z")
    assert reader.get(VALUE).json()["balance"] == 880  # the reader learns the key
    first = reader.get(VALUE)
    assert first.json()["balance"] == 880
    statements.clear()
    clock.advance(timedelta(seconds=5))
    again = reader.get(VALUE)
    assert again.content == first.content
    assert statements == []
    # Usage through the other worker: its 204 comes after the board is marked.
    send_usage(writer, 30, "2024-01-15T11:59:00Z")
    assert reader.get(VALUE).json()["balance"] == 850
    assert statements, "the write made the reader compute again"
    # A top-up through the other worker, then an override of the feature's entitlement.
    grant = {"amount": 50, "effectiveAt": "2024-01-15T11:00:00Z"}
    path = "/api/v2/customers/acme/entitlements/ai_tokens/grants"
    assert writer.post(path, json=grant).status_code == 201
    assert reader.get(VALUE).json()["balance"] == 900
    override = {
        "type": "metered",
        "featureKey": "ai_tokens",
        "usagePeriod": {"interval": "DAY", "anchor": "2024-01-01T00:00:00Z"},
        "issueAfterReset": 10,
    }
    replaced = writer.put("/api/v2/customers/acme/entitlements/ai_tokens/override", json=override)
    assert replaced.status_code == 201, replaced.text
    # The new entitlement measures usage from now (an override's default): nothing used yet.
    after = reader.get(VALUE).json()
    assert (after["balance"], after["usage"]) == (10, 0)
    assert after == _fresh(reader, clock)


def _fresh(client: TestClient, clock: SettableClock) -> Any:
    """The value the FastAPI route computes at the clock's instant (never a kept answer)."""
    at = clock().isoformat().replace("+00:00", "Z")
    return client.get(VALUE, params={"time": at}).json()


def test_a_kept_access_list_is_what_the_route_computes(
    two_workers: tuple[TestClient, TestClient], statements: list[str], clock: SettableClock
) -> None:
    writer, reader = two_workers
    _customer(writer)
    send_usage(writer, 120, "2024-01-10T10:00:00Z")
    assert reader.get(VALUE).status_code == 200  # the reader learns the key
    computed = reader.get(ACCESS)
    assert computed.status_code == 200
    assert set(computed.json()["entitlements"]) == {"ai_tokens", "saml_sso"}
    statements.clear()
    kept = reader.get(ACCESS)
    assert statements == []
    # The FastAPI route at the same instant (a `time` parameter is never answered from a
    # kept answer) gives the same bytes.
    at = clock().isoformat().replace("+00:00", "Z")
    routed = reader.get(ACCESS, params={"time": at})
    assert statements, "the route read the database"
    assert kept.content == computed.content == routed.content
    assert kept.headers["content-type"] == routed.headers["content-type"]
    # A deleted entitlement leaves the list at once.
    entitlement_id = writer.get("/api/v2/customers/acme/entitlements").json()["items"]
    boolean = [e["id"] for e in entitlement_id if e["featureKey"] == "saml_sso"]
    assert writer.delete(f"/api/v2/customers/acme/entitlements/{boolean[0]}").status_code == 204
    assert set(reader.get(ACCESS).json()["entitlements"]) == {"ai_tokens"}


def test_an_unknown_key_is_refused_even_when_an_answer_is_kept(
    two_workers: tuple[TestClient, TestClient],
) -> None:
    writer, reader = two_workers
    _customer(writer)
    assert reader.get(VALUE).status_code == 200
    assert reader.get(VALUE).status_code == 200
    refused = reader.get(VALUE, headers={"Authorization": "Bearer om_not_a_key"})
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"


def test_a_key_trusted_no_longer_is_checked_again_and_the_kept_answer_stands(
    two_workers: tuple[TestClient, TestClient], statements: list[str]
) -> None:
    # Once a key's trust ran out (ALLOTMENT_API_KEY_CACHE_SECONDS), the check asks the database
    # for the key (one statement) and still gives its kept answer, rather than leaving the
    # request to the route, which would compute the whole answer again.
    writer, reader = two_workers
    _customer(writer)
    caches = reader.app.state.context.caches  # type: ignore[attr-defined]
    caches.api_key_seconds = 0  # nothing trusted: every request checks its key
    first = reader.get(ACCESS)
    assert first.status_code == 200
    statements.clear()
    again = reader.get(ACCESS)
    assert again.content == first.content
    assert len(statements) == 1 and "api_keys" in statements[0], statements
