"""Subscriptions over HTTP: the Free -> Pro -> Free scenario with exact balances at each step,
custom plans, phases, cancel and its undoing, and the errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.api.helpers import send_usage, setup_catalogue
from tests.api.plan_bodies import SSO_CARD, free_plan, plan_body, pro_plan, tokens_card
from tests.api.problems import problem, problem_fields
from tests.conftest import SettableClock

START = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


def _wire(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _published(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    created = client.post("/api/v1/plans", json=body)
    assert created.status_code == 201, created.text
    published = client.post(f"/api/v1/plans/{created.json()['id']}/publish")
    assert published.status_code == 200, published.text
    result: dict[str, Any] = published.json()
    return result


def _setup(client: TestClient, clock: SettableClock) -> None:
    clock.set(START - timedelta(days=1))
    setup_catalogue(client)
    customer = {"key": "acme", "name": "ACME", "usageAttribution": {"subjectKeys": ["acme"]}}
    assert client.post("/api/v1/customers", json=customer).status_code == 201
    _published(client, free_plan())
    _published(client, pro_plan())
    clock.set(START)


def _access(client: TestClient) -> dict[str, Any]:
    response = client.get("/api/v1/customers/acme/access")
    assert response.status_code == 200, response.text
    entitlements: dict[str, Any] = response.json()["entitlements"]
    return entitlements


def _tokens(client: TestClient) -> dict[str, Any]:
    value: dict[str, Any] = client.get("/api/v1/customers/acme/entitlements/ai_tokens/value").json()
    return value


def _subscribe(client: TestClient, plan_key: str, **fields: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/subscriptions", json={"plan": {"key": plan_key}, "customerKey": "acme", **fields}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_free_then_pro_mid_month_keeps_usage_then_top_up_downgrade_and_cancel(
    client: TestClient, clock: SettableClock
) -> None:
    _setup(client, clock)
    free = _subscribe(client, "free")
    assert free["status"] == "active"
    assert free["activeFrom"] == _wire(START)
    assert free["billingAnchor"] == _wire(START)
    assert free["plan"]["key"] == "free"
    customer = client.get("/api/v1/customers/acme").json()
    assert customer["currentSubscriptionId"] == free["id"]

    access = _access(client)
    assert access["ai_tokens"]["balance"] == 1000
    assert "saml_sso" not in access

    send_usage(client, 800, _wire(START + timedelta(days=2)))
    clock.set(START + timedelta(days=5))
    assert _tokens(client)["balance"] == 200

    upgrade = client.post(
        f"/api/v1/subscriptions/{free['id']}/change",
        json={"timing": "immediate", "plan": {"key": "pro"}},
    )
    assert upgrade.status_code == 200, upgrade.text
    changed = upgrade.json()
    assert changed["current"]["activeTo"] == _wire(clock())
    pro = changed["next"]
    assert pro["activeFrom"] == _wire(clock())
    assert pro["billingAnchor"] == _wire(START)
    assert pro["plan"]["key"] == "pro"
    items = {item["key"]: item for item in pro["phases"][0]["items"]}
    assert items["ai_tokens"]["included"]["entitlement"]["type"] == "metered"
    # A subscription's entitlements name it, read-only, as OpenMeter's do.
    listed = client.get("/api/v2/customers/acme/entitlements").json()["items"]
    by_subscription = {
        e["featureKey"]: e.get("annotations") for e in listed if e.get("activeTo") is None
    }
    assert by_subscription["ai_tokens"] == {"subscription.id": pro["id"]}
    assert items["saml_sso"]["included"]["feature"]["key"] == "saml_sso"

    value = _tokens(client)
    assert (value["balance"], value["usage"], value["hasAccess"]) == (9_999_200, 800, True)
    access = _access(client)
    assert access["saml_sso"] == {"hasAccess": True}
    assert access["models"]["config"] == '{"allowed": ["gpt-4o", "o1"]}'
    assert client.get("/api/v1/customers/acme").json()["currentSubscriptionId"] == pro["id"]

    top_up = client.post(
        "/api/v2/customers/acme/entitlements/ai_tokens/grants",
        json={"amount": 5000, "effectiveAt": _wire(clock())},
    )
    assert top_up.status_code == 201, top_up.text
    assert top_up.json()["entitlementId"] == items["ai_tokens"]["included"]["entitlement"]["id"]
    assert _tokens(client)["balance"] == 10_004_200

    downgrade = client.post(
        f"/api/v1/subscriptions/{pro['id']}/change",
        json={"timing": "next_billing_cycle", "plan": {"key": "free"}},
    )
    assert downgrade.status_code == 200, downgrade.text
    next_cycle = datetime(2024, 4, 10, 12, 0, tzinfo=UTC)
    assert downgrade.json()["current"]["activeTo"] == _wire(next_cycle)
    assert downgrade.json()["current"]["status"] == "canceled"
    free_again = downgrade.json()["next"]
    assert (free_again["activeFrom"], free_again["status"]) == (_wire(next_cycle), "scheduled")
    # Still Pro until the cycle ends.
    assert _tokens(client)["balance"] == 10_004_200
    assert _access(client)["saml_sso"] == {"hasAccess": True}

    clock.set(next_cycle + timedelta(minutes=1))
    value = _tokens(client)
    # A new period: Free's 1,000 and the top-up, which carried over (nothing used since).
    assert (value["balance"], value["usage"]) == (6000, 0)
    assert "saml_sso" not in _access(client)
    assert client.get("/api/v1/customers/acme").json()["currentSubscriptionId"] == free_again["id"]

    listed = client.get("/api/v1/customers/acme/subscriptions").json()
    assert [s["plan"]["key"] for s in listed["items"]] == ["free", "pro", "free"]
    assert [s["status"] for s in listed["items"]] == ["inactive", "inactive", "active"]

    canceled = client.post(f"/api/v1/subscriptions/{free_again['id']}/cancel", json={})
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["activeTo"] == _wire(clock())
    assert _tokens(client)["hasAccess"] is False
    assert _access(client) == {}
    assert "currentSubscriptionId" not in client.get("/api/v1/customers/acme").json()
    assert client.delete("/api/v1/customers/acme").status_code == 204


def test_a_customer_with_a_running_subscription_is_not_deleted(
    client: TestClient, clock: SettableClock
) -> None:
    _setup(client, clock)
    custom = plan_body("nothing_metered", {**SSO_CARD, "entitlementTemplate": None})
    del custom["key"]
    created = client.post(
        "/api/v1/subscriptions", json={"customPlan": custom, "customerKey": "acme"}
    )
    assert created.status_code == 201, created.text
    refused = client.delete("/api/v1/customers/acme")
    assert problem(refused, 409)["extensions"]["conflictingEntityId"] == created.json()["id"]


def test_a_scheduled_cancel_can_be_undone(client: TestClient, clock: SettableClock) -> None:
    _setup(client, clock)
    pro = _subscribe(client, "pro")
    canceled = client.post(
        f"/api/v1/subscriptions/{pro['id']}/cancel", json={"timing": "next_billing_cycle"}
    )
    end = datetime(2024, 4, 10, 12, 0, tzinfo=UTC)
    assert canceled.json()["activeTo"] == _wire(end)
    assert canceled.json()["status"] == "canceled"
    expanded = client.get(f"/api/v1/subscriptions/{pro['id']}").json()
    entitlement = expanded["phases"][0]["items"][0]["included"]["entitlement"]
    assert entitlement["activeTo"] == _wire(end)

    restored = client.post(f"/api/v1/subscriptions/{pro['id']}/unschedule-cancelation")
    assert restored.status_code == 200, restored.text
    assert "activeTo" not in restored.json()
    assert restored.json()["status"] == "active"
    clock.set(end + timedelta(days=3))
    assert _access(client)["saml_sso"] == {"hasAccess": True}
    again = client.post(f"/api/v1/subscriptions/{pro['id']}/unschedule-cancelation")
    assert problem_fields(again, 409) == ["subscriptionId"]


def test_a_custom_plan_with_a_trial_phase_moves_on_at_its_boundary(
    client: TestClient, clock: SettableClock
) -> None:
    _setup(client, clock)
    custom = plan_body("deal", tokens_card(50_000))
    custom["phases"].insert(
        0,
        {
            "key": "trial",
            "name": "Trial",
            "duration": "P1M",
            "rateCards": [tokens_card(100), SSO_CARD],
        },
    )
    del custom["key"]
    created = client.post(
        "/api/v1/subscriptions", json={"customPlan": custom, "customerKey": "acme"}
    )
    assert created.status_code == 201, created.text
    assert "plan" not in created.json()
    expanded = client.get(f"/api/v1/subscriptions/{created.json()['id']}").json()
    phases = [(p["key"], p["activeFrom"], p.get("activeTo")) for p in expanded["phases"]]
    boundary = datetime(2024, 4, 10, 12, 0, tzinfo=UTC)
    assert phases == [
        ("trial", _wire(START), _wire(boundary)),
        ("default", _wire(boundary), None),
    ]
    assert _tokens(client)["balance"] == 100
    assert _access(client)["saml_sso"] == {"hasAccess": True}
    send_usage(client, 30, _wire(START + timedelta(days=1)))
    clock.set(boundary + timedelta(hours=1))
    # The trial's period ended at the boundary: the deal starts its own from zero.
    assert (_tokens(client)["balance"], _tokens(client)["usage"]) == (50_000, 0)
    assert "saml_sso" not in _access(client)


def test_subscription_errors_name_their_fields(client: TestClient, clock: SettableClock) -> None:
    _setup(client, clock)
    created = client.post("/api/v1/plans", json=plan_body("draft_only", tokens_card(5)))
    assert created.status_code == 201
    cases = [
        ({"plan": {"key": "nothing"}, "customerKey": "acme"}, 404, ["plan.key"]),
        ({"plan": {"key": "draft_only"}, "customerKey": "acme"}, 400, ["plan.key"]),
        ({"plan": {"key": "free", "version": 7}, "customerKey": "acme"}, 404, ["plan.key"]),
        ({"plan": {"key": "free"}, "customerKey": "nobody"}, 404, ["customerKey"]),
        ({"plan": {"key": "free"}}, 400, ["customerId"]),
        ({"customerKey": "acme"}, 400, ["plan"]),
        (
            {"plan": {"key": "free"}, "customerKey": "acme", "timing": "2020-01-01T00:00:00Z"},
            400,
            ["timing"],
        ),
        (
            {"plan": {"key": "free"}, "customerKey": "acme", "timing": "next_billing_cycle"},
            400,
            ["timing"],
        ),
        (
            {"plan": {"key": "free"}, "customerKey": "acme", "startingPhase": "nope"},
            400,
            ["startingPhase"],
        ),
        (
            {
                "customPlan": plan_body("x", {**tokens_card(5), "featureKey": "gone"}),
                "customerKey": "acme",
            },
            400,
            ["customPlan.phases.0.rateCards.0.key"],
        ),
        (
            {
                "customPlan": plan_body(
                    "x", {**tokens_card(5), "key": "gone", "featureKey": "gone"}
                ),
                "customerKey": "acme",
            },
            400,
            ["customPlan.phases.0.rateCards.0.featureKey"],
        ),
    ]
    for body, status, fields in cases:
        assert problem_fields(client.post("/api/v1/subscriptions", json=body), status) == fields
    free = _subscribe(client, "free")
    second = client.post(
        "/api/v1/subscriptions", json={"plan": {"key": "pro"}, "customerKey": "acme"}
    )
    assert problem_fields(second, 409) == ["customerKey"]
    unknown = "01J00000000000000000000000"
    assert problem_fields(client.get(f"/api/v1/subscriptions/{unknown}"), 404) == ["subscriptionId"]
    past = client.post(
        f"/api/v1/subscriptions/{free['id']}/change",
        json={"timing": "2020-01-01T00:00:00Z", "plan": {"key": "pro"}},
    )
    assert problem_fields(past, 400) == ["timing"]


def test_a_manual_entitlement_for_a_plan_feature_is_a_conflict(
    client: TestClient, clock: SettableClock
) -> None:
    _setup(client, clock)
    manual = client.post(
        "/api/v2/customers/acme/entitlements", json={"type": "boolean", "featureKey": "saml_sso"}
    )
    assert manual.status_code == 201
    response = client.post(
        "/api/v1/subscriptions", json={"plan": {"key": "pro"}, "customerKey": "acme"}
    )
    assert problem_fields(response, 409) == ["featureKey"]
    # Nothing of the subscription was kept.
    assert client.get("/api/v1/customers/acme/subscriptions").json()["items"] == []
    assert set(_access(client)) == {"saml_sso"}


def test_hostile_subscriptions_are_400s_naming_the_field(
    client: TestClient, clock: SettableClock
) -> None:
    _setup(client, clock)
    base = {"plan": {"key": "free"}, "customerKey": "acme"}
    for extra, field in (
        ({"name": "x\u0000"}, "name"),
        ({"metadata": {"a": "\u0000"}}, "metadata"),
        ({"billingAnchor": "9999-01-01T00:00:00Z"}, "billingAnchor"),
        ({"timing": "9999-01-01T00:00:00Z"}, "timing"),
    ):
        response = client.post("/api/v1/subscriptions", json={**base, **extra})
        assert problem_fields(response) == [field], extra
    created = _subscribe(client, "free")
    far = client.post(
        f"/api/v1/subscriptions/{created['id']}/cancel", json={"timing": "9999-01-01T00:00:00Z"}
    )
    assert problem_fields(far) == ["timing"]


def test_idempotency_keys_make_subscribe_and_change_safe_to_retry(
    client: TestClient, clock: SettableClock
) -> None:
    _setup(client, clock)
    body = {"plan": {"key": "free"}, "customerKey": "acme"}
    headers = {"Idempotency-Key": "subscribe-acme-1"}
    first = client.post("/api/v1/subscriptions", json=body, headers=headers)
    again = client.post("/api/v1/subscriptions", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = client.post(
        "/api/v1/subscriptions", json={**body, "plan": {"key": "pro"}}, headers=headers
    )
    assert other.status_code == 422
    assert len(client.get("/api/v1/customers/acme/subscriptions").json()["items"]) == 1

    change = {"timing": "immediate", "plan": {"key": "pro"}}
    path = f"/api/v1/subscriptions/{first.json()['id']}/change"
    changed = client.post(path, json=change, headers={"Idempotency-Key": "upgrade-1"})
    replayed = client.post(path, json=change, headers={"Idempotency-Key": "upgrade-1"})
    assert changed.status_code == replayed.status_code == 200
    assert replayed.json() == changed.json()
    assert replayed.headers["Idempotent-Replayed"] == "true"
    item = replayed.json()["next"]["phases"][0]["items"][0]
    assert "price" in item and item["price"] is None
    assert len(client.get("/api/v1/customers/acme/subscriptions").json()["items"]) == 2
