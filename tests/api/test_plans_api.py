"""Plans over HTTP: create, edit a draft, publish, versions, archive, delete, and the errors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.api.helpers import setup_catalogue
from tests.api.plan_bodies import MODELS_CARD, SSO_CARD, free_plan, plan_body, pro_plan, tokens_card
from tests.api.problems import problem, problem_fields
from tests.conftest import SettableClock


def _create(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/v1/plans", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_a_plan_is_created_as_a_draft_and_read_back_as_sent(client: TestClient) -> None:
    setup_catalogue(client)
    created = _create(client, pro_plan())
    assert created["status"] == "draft"
    assert created["version"] == 1
    assert "effectiveFrom" not in created
    assert created["validationErrors"] == []
    cards = {card["key"]: card for card in created["phases"][0]["rateCards"]}
    assert created["phases"][0]["duration"] is None
    assert cards["ai_tokens"]["entitlementTemplate"] == {
        "type": "metered",
        "issueAfterReset": 10_000_000,
        "isSoftLimit": False,
        "preserveOverageAtReset": False,
    }
    assert cards["saml_sso"]["billingCadence"] is None
    assert cards["saml_sso"]["price"] is None
    assert cards["models"]["price"] == MODELS_CARD["price"]
    assert (
        cards["models"]["entitlementTemplate"]["config"]
        == MODELS_CARD["entitlementTemplate"]["config"]
    )
    for path in (created["id"], "pro"):
        assert client.get(f"/api/v1/plans/{path}").json() == created


def test_publish_makes_a_draft_active_and_only_drafts_can_be_edited(
    client: TestClient, clock: SettableClock
) -> None:
    setup_catalogue(client)
    plan = _create(client, free_plan())
    edited = plan_body("free", tokens_card(2000), name="Free forever")
    response = client.put(f"/api/v1/plans/{plan['id']}", json=edited)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Free forever"
    assert response.json()["currency"] == "USD"
    template = response.json()["phases"][0]["rateCards"][0]["entitlementTemplate"]
    assert template["issueAfterReset"] == 2000

    clock.advance(timedelta(minutes=1))
    published = client.post(f"/api/v1/plans/{plan['id']}/publish")
    assert published.status_code == 200, published.text
    assert published.json()["status"] == "active"
    assert published.json()["effectiveFrom"] == clock().isoformat().replace("+00:00", "Z")

    refused = client.put(f"/api/v1/plans/{plan['id']}", json=edited)
    assert problem(refused, 409)["detail"].startswith(f"plan {plan['id']} is active")
    assert problem_fields(refused, 409) == ["planId"]
    assert problem_fields(client.post(f"/api/v1/plans/{plan['id']}/publish"), 409) == ["planId"]


def test_next_versions_replace_the_active_one_when_published(
    client: TestClient, clock: SettableClock
) -> None:
    setup_catalogue(client)
    first = _create(client, free_plan())
    client.post(f"/api/v1/plans/{first['id']}/publish")
    assert problem_fields(client.post("/api/v1/plans", json=free_plan()), 409) == ["key"]

    second = client.post("/api/v1/plans/free/next")
    assert second.status_code == 201, second.text
    assert second.json()["version"] == 2
    assert second.json()["status"] == "draft"
    assert second.json()["phases"] == first["phases"]
    assert problem_fields(client.post("/api/v1/plans/free/next"), 409) == ["planId"]
    # The key still names the active version; includeLatest the newest.
    assert client.get("/api/v1/plans/free").json()["version"] == 1
    assert client.get("/api/v1/plans/free?includeLatest=true").json()["version"] == 2

    clock.advance(timedelta(minutes=5))
    client.post(f"/api/v1/plans/{second.json()['id']}/publish")
    old = client.get(f"/api/v1/plans/{first['id']}").json()
    assert old["status"] == "archived"
    assert old["effectiveTo"] == clock().isoformat().replace("+00:00", "Z")
    assert client.get("/api/v1/plans/free").json()["version"] == 2

    listed = client.get("/api/v1/plans?status=active").json()
    assert [(p["key"], p["version"]) for p in listed["items"]] == [("free", 2)]
    assert listed["totalCount"] == 1
    everything = client.get("/api/v1/plans?key=free&orderBy=version&order=DESC").json()
    assert [p["version"] for p in everything["items"]] == [2, 1]


def test_archive_and_delete(client: TestClient, clock: SettableClock) -> None:
    setup_catalogue(client)
    plan = _create(client, free_plan())
    assert problem_fields(client.post(f"/api/v1/plans/{plan['id']}/archive"), 409) == ["planId"]
    client.post(f"/api/v1/plans/{plan['id']}/publish")
    clock.advance(timedelta(minutes=1))
    assert problem_fields(client.delete(f"/api/v1/plans/{plan['id']}"), 409) == ["planId"]
    archived = client.post(f"/api/v1/plans/{plan['id']}/archive")
    assert archived.json()["status"] == "archived"
    assert client.delete(f"/api/v1/plans/{plan['id']}").status_code == 204
    assert problem_fields(client.get(f"/api/v1/plans/{plan['id']}"), 404) == ["planId"]
    assert client.get("/api/v1/plans").json()["items"] == []
    deleted = client.get("/api/v1/plans?includeDeleted=true").json()["items"]
    assert [p["id"] for p in deleted] == [plan["id"]]
    # The key is free again; version numbers are never reused.
    assert _create(client, free_plan())["version"] == 2


def test_validation_errors_name_the_phase_rate_card_and_field(client: TestClient) -> None:
    setup_catalogue(client)
    body = plan_body(
        "broken",
        tokens_card(-5, usagePeriod="PT30M"),
        {**SSO_CARD, "key": "sso"},
        {**MODELS_CARD, "entitlementTemplate": {"type": "static", "config": "{not json"}},
        {**tokens_card(10), "key": "tokens_again", "billingCadence": None, "type": "usage_based"},
    )
    body["phases"].insert(0, {"key": "trial", "name": "Trial", "duration": None, "rateCards": []})
    fields = problem_fields(client.post("/api/v1/plans", json=body))
    assert set(fields) == {
        "phases.0.duration",
        "phases.1.rateCards.0.entitlementTemplate.issueAfterReset",
        "phases.1.rateCards.0.entitlementTemplate.usagePeriod",
        "phases.1.rateCards.1.key",
        "phases.1.rateCards.2.entitlementTemplate.config",
        "phases.1.rateCards.3.key",
        "phases.1.rateCards.3.featureKey",
        "phases.1.rateCards.3.billingCadence",
        "phases.1.rateCards.3.entitlementTemplate.usagePeriod",
    }


def test_features_must_exist_and_back_their_templates(client: TestClient) -> None:
    setup_catalogue(client)
    body = plan_body(
        "mixed",
        {**tokens_card(5), "key": "unknown", "featureKey": "unknown"},
        {**tokens_card(5), "key": "saml_sso", "featureKey": "saml_sso"},
    )
    response = client.post("/api/v1/plans", json=body)
    assert problem_fields(response) == [
        "phases.0.rateCards.0.featureKey",
        "phases.0.rateCards.1.featureKey",
    ]
    assert "has no meter" in problem(response)["detail"]


def test_a_metered_template_needs_a_usage_period_or_a_billing_cadence(client: TestClient) -> None:
    setup_catalogue(client)
    card = {**tokens_card(5), "type": "flat_fee", "billingCadence": None}
    response = client.post("/api/v1/plans", json=plan_body("one_off", card))
    assert problem_fields(response) == ["phases.0.rateCards.0.entitlementTemplate.usagePeriod"]
    card["entitlementTemplate"]["usagePeriod"] = "P1W"
    created = _create(client, plan_body("one_off", card))
    assert created["phases"][0]["rateCards"][0]["entitlementTemplate"]["usagePeriod"] == "P1W"


def test_unknown_plans_and_bad_bodies(client: TestClient) -> None:
    assert problem_fields(client.get("/api/v1/plans/nothing"), 404) == ["planId"]
    assert problem_fields(client.post("/api/v1/plans/01J0000000000000000000000Z/publish"), 404) == [
        "planId"
    ]
    response = client.post("/api/v1/plans", json={**free_plan(), "phases": []})
    assert response.status_code == 400
    assert any("phases" in f for f in problem_fields(response))


def test_hostile_plans_are_400s_naming_the_field(client: TestClient) -> None:
    setup_catalogue(client)
    nul = free_plan()
    nul["name"] = "Free\u0000"
    nul["phases"][0]["rateCards"][0]["name"] = "AI\u0000"
    assert problem_fields(client.post("/api/v1/plans", json=nul)) == [
        "name",
        "phases.0.rateCards.0.name",
    ]
    ulid_key = {**free_plan(), "key": "01hzzzzzzzzzzzzzzzzzzzzzzz"}
    assert problem_fields(client.post("/api/v1/plans", json=ulid_key)) == ["key"]
    long_phase = plan_body("long", tokens_card(5), billingCadence="P200Y")
    assert problem_fields(client.post("/api/v1/plans", json=long_phase)) == ["billingCadence"]
    many = plan_body("many", tokens_card(5))
    trial = {"key": "p", "name": "P", "duration": "P100Y", "rateCards": []}
    many["phases"] = [{**trial, "key": f"p{i}"} for i in range(30)] + many["phases"]
    assert problem_fields(client.post("/api/v1/plans", json=many)) == ["phases"]
