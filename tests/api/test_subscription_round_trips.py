"""Check access stays one statement after plan changes: a customer whose tokens entitlement was
Free's, is Pro's and will be Free's again (three rows for one feature) is read as before."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from tests.api.helpers import send_usage, setup_catalogue
from tests.api.plan_bodies import free_plan, pro_plan
from tests.api.test_round_trips import Statements, quiet_client, statements
from tests.api.test_subscriptions_api import START, _published, _wire
from tests.conftest import SettableClock

__all__ = ["quiet_client", "statements"]


def test_a_check_after_plan_changes_is_one_statement(
    quiet_client: TestClient, statements: Statements, clock: SettableClock
) -> None:
    client = quiet_client
    clock.set(START - timedelta(days=1))
    setup_catalogue(client)
    customer = {"key": "acme", "name": "ACME", "usageAttribution": {"subjectKeys": ["acme"]}}
    assert client.post("/api/v1/customers", json=customer).status_code == 201
    _published(client, free_plan())
    _published(client, pro_plan())
    clock.set(START)
    created = client.post(
        "/api/v1/subscriptions", json={"plan": {"key": "free"}, "customerKey": "acme"}
    ).json()
    send_usage(client, 800, _wire(START + timedelta(days=1)))
    clock.set(START + timedelta(days=2))
    pro = client.post(
        f"/api/v1/subscriptions/{created['id']}/change",
        json={"timing": "immediate", "plan": {"key": "pro"}},
    ).json()["next"]
    client.post(
        f"/api/v1/subscriptions/{pro['id']}/change",
        json={"timing": "next_billing_cycle", "plan": {"key": "free"}},
    )
    value_path = "/api/v1/customers/acme/entitlements/ai_tokens/value"
    first = client.get(value_path).json()
    assert first["balance"] == 9_999_200
    access = client.get("/api/v1/customers/acme/access").json()

    statements.on = True
    for path, expected in ((value_path, first), ("/api/v1/customers/acme/access", access)):
        statements.reset()
        assert client.get(path).json() == expected
        assert statements.count() == 1, statements.sql
        assert statements.in_transaction == [False]
