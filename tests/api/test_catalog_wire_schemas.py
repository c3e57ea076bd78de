"""Every plan and subscription response of the scenario validates against OpenMeter's schema."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from tests.api.openmeter_schemas import assert_openmeter_schema
from tests.api.plan_bodies import plan_body, tokens_card
from tests.api.test_subscriptions_api import START, _setup
from tests.conftest import SettableClock


def test_plan_responses_match_openmeter(client: TestClient, clock: SettableClock) -> None:
    _setup(client, clock)
    draft = client.post("/api/v1/plans", json=plan_body("team", tokens_card(5)))
    assert_openmeter_schema("Plan", draft.json())
    assert_openmeter_schema("Plan", client.get("/api/v1/plans/pro").json())
    assert_openmeter_schema("PlanPaginatedResponse", client.get("/api/v1/plans").json())
    nxt = client.post("/api/v1/plans/pro/next")
    assert_openmeter_schema("Plan", nxt.json())
    assert_openmeter_schema("Plan", client.post("/api/v1/plans/free/archive").json())


def test_subscription_responses_match_openmeter(client: TestClient, clock: SettableClock) -> None:
    _setup(client, clock)
    created = client.post(
        "/api/v1/subscriptions", json={"plan": {"key": "free"}, "customerKey": "acme"}
    )
    assert_openmeter_schema("Subscription", created.json())
    subscription_id = created.json()["id"]
    assert_openmeter_schema(
        "SubscriptionExpanded", client.get(f"/api/v1/subscriptions/{subscription_id}").json()
    )
    clock.set(START + timedelta(days=3))
    changed = client.post(
        f"/api/v1/subscriptions/{subscription_id}/change",
        json={"timing": "immediate", "plan": {"key": "pro"}},
    )
    assert_openmeter_schema("SubscriptionChangeResponseBody", changed.json())
    pro_id = changed.json()["next"]["id"]
    canceled = client.post(
        f"/api/v1/subscriptions/{pro_id}/cancel", json={"timing": "next_billing_cycle"}
    )
    assert_openmeter_schema("Subscription", canceled.json())
    restored = client.post(f"/api/v1/subscriptions/{pro_id}/unschedule-cancelation")
    assert_openmeter_schema("Subscription", restored.json())
    listed = client.get("/api/v1/customers/acme/subscriptions").json()
    assert_openmeter_schema("SubscriptionPaginatedResponse", listed)
    assert_openmeter_schema("Customer", client.get("/api/v1/customers/acme").json())
