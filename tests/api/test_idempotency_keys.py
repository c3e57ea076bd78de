"""Issue 12, item 16: Idempotency-Key on grant create, void, reset and override (Stripe's rules),
on both databases, across app instances (as across worker processes) and under concurrency."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from allotment.api.app import create_app
from allotment.services.context import ServiceContext
from allotment.storage import Database
from tests.api.helpers import MONTHLY, setup_catalogue
from tests.api.problems import fields_of, problem
from tests.conftest import SettableClock

GRANTS = "/api/v2/customers/acme/entitlements/ai_tokens/grants"
GRANT = {"amount": 1000, "effectiveAt": "2024-01-15T12:00:00Z"}


@pytest.fixture
def metered(client: TestClient) -> TestClient:
    setup_catalogue(client)
    assert client.post("/api/v1/customers", json={"key": "acme", "name": "ACME"}).status_code == 201
    created = client.post(
        "/api/v2/customers/acme/entitlements",
        json={"type": "metered", "featureKey": "ai_tokens", "usagePeriod": MONTHLY},
    )
    assert created.status_code == 201, created.text
    return client


def _grants(client: TestClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get(GRANTS).json()["items"]
    return items


def test_a_retried_grant_is_granted_once_and_answered_the_same(metered: TestClient) -> None:
    headers = {"Idempotency-Key": "grant-7f1c"}
    first = metered.post(GRANTS, json=GRANT, headers=headers)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    again = metered.post(GRANTS, json=GRANT, headers=headers)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert [grant["id"] for grant in _grants(metered)] == [first.json()["id"]]
    value = metered.get("/api/v2/customers/acme/entitlements/ai_tokens/value").json()
    assert value["balance"] == 1000


def test_the_same_key_with_another_body_is_422(metered: TestClient) -> None:
    headers = {"Idempotency-Key": "grant-1"}
    assert metered.post(GRANTS, json=GRANT, headers=headers).status_code == 201
    other = metered.post(GRANTS, json={**GRANT, "amount": 5000}, headers=headers)
    assert fields_of(problem(other, 422)) == ["Idempotency-Key"]
    # Formatting and key order are not "another body".
    reordered = metered.post(
        GRANTS,
        content='{ "effectiveAt": "2024-01-15T12:00:00Z",  "amount": 1000 }',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert reordered.status_code == 201 and reordered.headers["idempotent-replayed"] == "true"
    assert len(_grants(metered)) == 1


def test_without_a_key_every_request_counts(metered: TestClient) -> None:
    assert metered.post(GRANTS, json=GRANT).status_code == 201
    assert metered.post(GRANTS, json=GRANT).status_code == 201
    assert len(_grants(metered)) == 2


def test_a_failed_request_stores_nothing_so_its_retry_runs(metered: TestClient) -> None:
    headers = {"Idempotency-Key": "k-fail"}
    bad = metered.post(GRANTS, json={**GRANT, "amount": -1}, headers=headers)
    problem(bad, 400)
    assert metered.post(GRANTS, json=GRANT, headers=headers).status_code == 201
    assert len(_grants(metered)) == 1


def test_keys_are_per_api_key_and_malformed_keys_are_400(
    metered: TestClient, context: ServiceContext
) -> None:
    from allotment.services import api_keys

    _key, other = api_keys.create_key(context, "admin")
    headers = {"Idempotency-Key": "shared"}
    assert metered.post(GRANTS, json=GRANT, headers=headers).status_code == 201
    second = metered.post(
        GRANTS, json=GRANT, headers={**headers, "Authorization": f"Bearer {other}"}
    )
    assert second.status_code == 201 and "idempotent-replayed" not in second.headers
    assert len(_grants(metered)) == 2
    bad = metered.post(GRANTS, json=GRANT, headers={"Idempotency-Key": "x" * 256})
    assert fields_of(problem(bad, 400)) == ["Idempotency-Key"]


def test_void_reset_and_override_replay(metered: TestClient, clock: SettableClock) -> None:
    grant = metered.post(GRANTS, json=GRANT).json()
    clock.set(clock() + timedelta(minutes=5))
    void = {"Idempotency-Key": "void-1"}
    assert metered.delete(f"/api/v1/grants/{grant['id']}", headers=void).status_code == 204
    # Without the key a second void is refused (already voided); with it, the first answer.
    replay = metered.delete(f"/api/v1/grants/{grant['id']}", headers=void)
    assert replay.status_code == 204 and replay.headers["idempotent-replayed"] == "true"
    problem(metered.delete(f"/api/v1/grants/{grant['id']}"), 400)

    reset_path = "/api/v2/customers/acme/entitlements/ai_tokens/reset"
    reset = {"Idempotency-Key": "reset-1"}
    assert metered.post(reset_path, json={}, headers=reset).status_code == 204
    again = metered.post(reset_path, json={}, headers=reset)
    assert again.status_code == 204 and again.headers["idempotent-replayed"] == "true"
    problem(metered.post(reset_path, json={}), 400)  # a second reset in the same minute

    clock.set(clock() + timedelta(minutes=5))
    override_path = "/api/v2/customers/acme/entitlements/ai_tokens/override"
    body = {"type": "metered", "featureKey": "ai_tokens", "usagePeriod": MONTHLY}
    override = {"Idempotency-Key": "override-1"}
    first = metered.put(override_path, json=body, headers=override)
    assert first.status_code == 201, first.text
    second = metered.put(override_path, json=body, headers=override)
    assert second.status_code == 201 and second.json()["id"] == first.json()["id"]
    listed = metered.get(
        "/api/v2/customers/acme/entitlements", params={"includeDeleted": "true"}
    ).json()
    assert len(listed["items"]) == 2  # the original and one override, not two


def test_a_key_works_across_app_instances_and_concurrent_retries(
    metered: TestClient, context: ServiceContext, admin_key: str
) -> None:
    # Two apps, each with its own connection pool, stand for two worker processes; eight
    # clients send the same request with the same key at once, as a retrying client would.
    apps = [
        create_app(
            context=ServiceContext(
                database=Database(context.database.url, pool_size=4), clock=context.clock
            )
        )
        for _ in range(2)
    ]
    clients = [
        TestClient(app, headers={"Authorization": f"Bearer {admin_key}"}).__enter__()
        for app in apps
    ]
    # FastAPI builds a route's models on its first request; warm each app up first, since
    # under pytest a warning that build raises in one thread can escape in another.
    for index, client in enumerate(clients):
        warm = client.post(GRANTS, json=GRANT, headers={"Idempotency-Key": f"warm-{index}"})
        assert warm.status_code == 201
    answers: list[Any] = []
    barrier = threading.Barrier(8)

    def send(index: int) -> None:
        barrier.wait()
        answers.append(
            clients[index % 2].post(GRANTS, json=GRANT, headers={"Idempotency-Key": "burst"})
        )

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.__exit__(None, None, None)
    assert sorted(a.status_code for a in answers) == [201] * 8, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 7
    assert len(_grants(metered)) == 1 + len(clients)
