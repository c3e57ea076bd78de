"""The v1 subject-keyed entitlement and grant routes over raw HTTP (the SDK cannot reach them),
plus the v1 global lists, voiding, resets and history, with exact JSON, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import MONTHLY, send_usage, setup_catalogue
from tests.api.problems import problem
from tests.conftest import SettableClock

SUBJECT = "/api/v1/subjects/acme/entitlements"


@pytest.fixture
def catalogue(client: TestClient) -> TestClient:
    setup_catalogue(client)
    return client


def _create_metered(client: TestClient, **fields: object) -> dict:  # type: ignore[type-arg]
    body = {"type": "metered", "featureKey": "ai_tokens", "usagePeriod": MONTHLY, **fields}
    response = client.post(SUBJECT, json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_create_for_a_new_subject_and_read_everything_back(catalogue: TestClient) -> None:
    created = _create_metered(catalogue, issueAfterReset=1000, metadata={"plan": "pro"})
    entitlement_id = created.pop("id")
    feature_id = created.pop("featureId")
    assert len(entitlement_id) == 26 and len(feature_id) == 26
    assert created == {
        "type": "metered",
        "featureKey": "ai_tokens",
        "subjectKey": "acme",
        "metadata": {"plan": "pro"},
        "isSoftLimit": False,
        "isUnlimited": False,
        "preserveOverageAtReset": False,
        "issueAfterReset": 1000,
        "issueAfterResetPriority": 1,
        "activeFrom": "2024-01-15T12:00:00Z",
        "createdAt": "2024-01-15T12:00:00Z",
        "updatedAt": "2024-01-15T12:00:00Z",
        "measureUsageFrom": "2024-01-01T00:00:00Z",
        "lastReset": "2024-01-01T00:00:00Z",
        "currentUsagePeriod": {"from": "2024-01-01T00:00:00Z", "to": "2024-02-01T00:00:00Z"},
        "usagePeriod": {
            "interval": "MONTH",
            "intervalISO": "P1M",
            "anchor": "2024-01-01T00:00:00Z",
        },
    }
    # The subject had no customer: one was created, keyed by the subject.
    customer = catalogue.get("/api/v1/customers/acme").json()
    assert customer["usageAttribution"] == {"subjectKeys": ["acme"]}

    send_usage(catalogue, 300, "2024-01-10T08:00:00Z")
    value = catalogue.get(f"{SUBJECT}/ai_tokens/value")
    assert value.json() == {
        "hasAccess": True,
        "balance": 700,
        "usage": 300,
        "overage": 0,
        "totalAvailableGrantAmount": 1000,
    }
    assert catalogue.get(f"{SUBJECT}/{entitlement_id}/value").json()["balance"] == 700
    assert [e["id"] for e in catalogue.get(SUBJECT).json()] == [entitlement_id]
    assert catalogue.get(f"{SUBJECT}/{entitlement_id}").json()["id"] == entitlement_id
    assert catalogue.get(f"/api/v1/entitlements/{entitlement_id}").json()["subjectKey"] == "acme"


def test_static_and_boolean_show_their_type_and_values(catalogue: TestClient) -> None:
    config = '{"allowed": ["gpt-4o-mini"]}'
    static = catalogue.post(
        SUBJECT, json={"type": "static", "featureKey": "models", "config": config}
    )
    assert static.status_code == 201
    assert (static.json()["type"], static.json()["config"]) == ("static", config)
    assert "isSoftLimit" not in static.json() and "lastReset" not in static.json()
    boolean = catalogue.post(SUBJECT, json={"type": "boolean", "featureKey": "saml_sso"})
    assert boolean.json()["type"] == "boolean"

    assert catalogue.get(f"{SUBJECT}/models/value").json() == {"hasAccess": True, "config": config}
    assert catalogue.get(f"{SUBJECT}/saml_sso/value").json() == {"hasAccess": True}
    assert catalogue.get(f"{SUBJECT}/ai_tokens/value").json() == {"hasAccess": False}
    access = catalogue.get("/api/v1/customers/acme/access").json()
    assert access == {
        "entitlements": {
            "models": {"hasAccess": True, "config": config},
            "saml_sso": {"hasAccess": True},
        }
    }
    assert catalogue.get("/api/v1/customers/acme/entitlements/ai_tokens/value").json() == {
        "hasAccess": False
    }


def test_amounts_are_exact_decimals_on_the_wire(catalogue: TestClient) -> None:
    _create_metered(catalogue)
    grant = {
        "amount": 0.3,
        "effectiveAt": "2024-01-15T12:00:00Z",
        "expiration": {"duration": "DAY", "count": 1},
    }
    assert catalogue.post(f"{SUBJECT}/ai_tokens/grants", json=grant).status_code == 201
    send_usage(catalogue, 0.1, "2024-01-15T12:01:00Z")
    send_usage(catalogue, 0.2, "2024-01-15T12:02:00Z")
    value = catalogue.get(f"{SUBJECT}/ai_tokens/value", params={"time": "2024-01-15T13:00:00Z"})
    assert value.json() == {
        "hasAccess": False,
        "balance": 0,
        "usage": 0.3,
        "overage": 0,
        "totalAvailableGrantAmount": 0.3,
    }
    assert b'"balance":0,' in value.content


def test_v1_grants_always_show_an_expiration(catalogue: TestClient) -> None:
    entitlement = _create_metered(catalogue, issueAfterReset=1000)
    response = catalogue.post(
        f"{SUBJECT}/{entitlement['id']}/grants",
        json={
            "amount": 500,
            "priority": 3,
            "effectiveAt": "2024-01-15T12:00:30Z",
            "expiration": {"duration": "DAY", "count": 10},
            "metadata": {"reason": "promo"},
        },
    )
    assert response.status_code == 201
    top_up = response.json()
    assert {k: v for k, v in top_up.items() if k not in ("id", "entitlementId")} == {
        "amount": 500,
        "priority": 3,
        "effectiveAt": "2024-01-15T12:00:00Z",
        "expiration": {"duration": "DAY", "count": 10},
        "expiresAt": "2024-01-25T12:00:00Z",
        "maxRolloverAmount": 0,
        "minRolloverAmount": 0,
        "metadata": {"reason": "promo"},
        "createdAt": "2024-01-15T12:00:00Z",
        "updatedAt": "2024-01-15T12:00:00Z",
    }
    listed = catalogue.get(f"{SUBJECT}/ai_tokens/grants", params={"orderBy": "createdAt"}).json()
    issued = next(g for g in listed if g["id"] != top_up["id"])
    assert issued["expiration"] == {"duration": "YEAR", "count": 100}
    assert issued["expiresAt"] == "2124-01-01T00:00:00Z"
    assert issued["annotations"] == {"issueAfterReset": True}
    assert (issued["minRolloverAmount"], issued["maxRolloverAmount"]) == (1000, 1000)


def test_global_lists_are_bare_arrays_unless_paged(
    catalogue: TestClient, clock: SettableClock
) -> None:
    first = _create_metered(catalogue)
    clock.set(datetime(2024, 1, 15, 12, 1, tzinfo=UTC))
    catalogue.post(
        "/api/v1/subjects/globex/entitlements", json={"type": "boolean", "featureKey": "saml_sso"}
    )
    bare = catalogue.get("/api/v1/entitlements")
    assert [e["subjectKey"] for e in bare.json()] == ["acme", "globex"]
    paged = catalogue.get("/api/v1/entitlements", params={"pageSize": 1, "page": 2}).json()
    assert (paged["page"], paged["pageSize"], paged["totalCount"]) == (2, 1, 2)
    assert [e["subjectKey"] for e in paged["items"]] == ["globex"]
    limited = catalogue.get("/api/v1/entitlements", params={"limit": 1, "order": "DESC"}).json()
    assert [e["subjectKey"] for e in limited] == ["globex"]
    filtered = catalogue.get(
        "/api/v1/entitlements", params={"entitlementType": "metered", "subject": "acme"}
    ).json()
    assert [e["id"] for e in filtered] == [first["id"]]
    assert catalogue.get("/api/v1/entitlements", params={"feature": "models"}).json() == []

    catalogue.post(
        f"{SUBJECT}/ai_tokens/grants",
        json={
            "amount": 5,
            "effectiveAt": "2024-01-15T12:00:00Z",
            "expiration": {"duration": "HOUR", "count": 1},
        },
    )
    grants = catalogue.get("/api/v1/grants", params={"subject": "acme"}).json()
    assert [g["amount"] for g in grants] == [5]
    paged_grants = catalogue.get("/api/v1/grants", params={"page": 1}).json()
    assert (paged_grants["totalCount"], paged_grants["items"][0]["amount"]) == (1, 5)


def test_void_over_http(catalogue: TestClient, clock: SettableClock) -> None:
    _create_metered(catalogue)
    grant = catalogue.post(
        f"{SUBJECT}/ai_tokens/grants",
        json={
            "amount": 100,
            "effectiveAt": "2024-01-15T12:00:00Z",
            "expiration": {"duration": "MONTH", "count": 1},
        },
    ).json()
    send_usage(catalogue, 60, "2024-01-15T12:10:00Z")
    clock.set(datetime(2024, 1, 15, 13, tzinfo=UTC))

    assert catalogue.delete(f"/api/v1/grants/{grant['id']}").status_code == 204
    assert catalogue.get(f"{SUBJECT}/ai_tokens/value").json() == {
        "hasAccess": False,
        "balance": 0,
        "usage": 60,
        "overage": 0,
        "totalAvailableGrantAmount": 60,
    }
    (voided,) = catalogue.get(f"{SUBJECT}/ai_tokens/grants").json()
    assert voided["voidedAt"] == "2024-01-15T13:00:00Z"
    again = problem(catalogue.delete(f"/api/v1/grants/{grant['id']}"), 400)
    assert "already voided" in again["detail"]


def test_reset_over_http_with_and_without_anchor_and_overage(
    catalogue: TestClient, clock: SettableClock
) -> None:
    entitlement = _create_metered(catalogue, issueAfterReset=100)
    reset = f"{SUBJECT}/{entitlement['id']}/reset"
    send_usage(catalogue, 130, "2024-01-10T00:00:00Z")

    response = catalogue.post(reset, json={"preserveOverage": True})
    assert response.status_code == 204
    after = catalogue.get(f"{SUBJECT}/{entitlement['id']}").json()
    assert after["lastReset"] == "2024-01-15T12:00:00Z"
    assert after["currentUsagePeriod"] == {
        "from": "2024-01-15T12:00:00Z",
        "to": "2024-02-15T12:00:00Z",
    }
    value = catalogue.get(f"{SUBJECT}/ai_tokens/value").json()
    assert (value["balance"], value["usage"], value["overage"]) == (70, 0, 0)

    send_usage(catalogue, 90, "2024-01-16T00:00:00Z")
    clock.set(datetime(2024, 1, 20, 6, 30, tzinfo=UTC))
    assert catalogue.post(reset, json={"retainAnchor": True}).status_code == 204
    after = catalogue.get(f"{SUBJECT}/{entitlement['id']}").json()
    assert after["currentUsagePeriod"] == {
        "from": "2024-01-20T06:30:00Z",
        "to": "2024-02-15T12:00:00Z",
    }
    value = catalogue.get(f"{SUBJECT}/ai_tokens/value").json()
    assert (value["balance"], value["usage"], value["overage"]) == (100, 0, 0)
    # No body at all is a reset now with the defaults.
    clock.set(datetime(2024, 1, 21, tzinfo=UTC))
    assert catalogue.post(reset).status_code == 204
    assert catalogue.get(f"{SUBJECT}/ai_tokens").json()["lastReset"] == "2024-01-21T00:00:00Z"


def test_history_over_http_adds_up(catalogue: TestClient, clock: SettableClock) -> None:
    entitlement = _create_metered(catalogue, issueAfterReset=1000, measureUsageFrom="NOW")
    send_usage(catalogue, 100, "2024-01-15T12:30:00Z")
    send_usage(catalogue, 250, "2024-01-15T14:45:00Z")
    clock.set(datetime(2024, 1, 15, 15, tzinfo=UTC))

    response = catalogue.get(
        f"{SUBJECT}/{entitlement['id']}/history", params={"windowSize": "HOUR"}
    )
    assert response.status_code == 200, response.text
    history = response.json()
    assert [
        (w["period"]["from"][11:16], w["usage"], w["balanceAtStart"])
        for w in history["windowedHistory"]
    ] == [("12:00", 100, 1000), ("13:00", 0, 900), ("14:00", 250, 900)]
    (segment,) = history["burndownHistory"]
    (grant_id,) = segment["grantBalancesAtStart"]
    assert segment == {
        "period": {"from": "2024-01-15T12:00:00Z", "to": "2024-01-15T15:00:00Z"},
        "usage": 350,
        "overage": 0,
        "balanceAtStart": 1000,
        "grantBalancesAtStart": {grant_id: 1000},
        "balanceAtEnd": 650,
        "grantBalancesAtEnd": {grant_id: 650},
        "grantUsages": [{"grantId": grant_id, "usage": 350}],
    }


def test_history_windows_are_whole_windows_of_the_time_zone(
    catalogue: TestClient, clock: SettableClock
) -> None:
    """As OpenMeter reports them: from the start of the window holding `from` to the end of the
    one holding `to`, in the requested zone; usage counts only inside [from, to), and the first
    balance is the balance at `from`, so the windows still add up."""
    entitlement = _create_metered(catalogue, issueAfterReset=1000, measureUsageFrom="NOW")
    send_usage(catalogue, 100, "2024-01-15T12:30:00Z")  # before `from`
    send_usage(catalogue, 40, "2024-01-15T13:10:00Z")
    send_usage(catalogue, 250, "2024-01-16T22:45:00Z")
    send_usage(catalogue, 7, "2024-01-17T01:00:00Z")  # after `to`
    clock.set(datetime(2024, 1, 18, tzinfo=UTC))
    params = {
        "windowSize": "DAY",
        "windowTimeZone": "Europe/Paris",
        "from": "2024-01-15T13:00:00Z",
        "to": "2024-01-16T23:30:00Z",  # 00:30 on the 17th in Paris
    }
    history = catalogue.get(f"{SUBJECT}/{entitlement['id']}/history", params=params).json()
    assert [
        (w["period"]["from"], w["period"]["to"], w["usage"], w["balanceAtStart"])
        for w in history["windowedHistory"]
    ] == [
        ("2024-01-14T23:00:00Z", "2024-01-15T23:00:00Z", 40, 900),
        ("2024-01-15T23:00:00Z", "2024-01-16T23:00:00Z", 250, 860),
        ("2024-01-16T23:00:00Z", "2024-01-17T23:00:00Z", 0, 610),
    ]
    # The burn-down still covers the range asked for, not the whole windows.
    (segment,) = history["burndownHistory"]
    assert segment["period"] == {"from": "2024-01-15T13:00:00Z", "to": "2024-01-16T23:30:00Z"}
    assert segment["balanceAtEnd"] == 610


def test_delete_and_override_over_http(catalogue: TestClient, clock: SettableClock) -> None:
    old = _create_metered(catalogue, issueAfterReset=1000)
    clock.set(datetime(2024, 1, 16, tzinfo=UTC))
    override = catalogue.put(
        f"{SUBJECT}/ai_tokens/override",
        json={
            "type": "metered",
            "featureKey": "ai_tokens",
            "usagePeriod": MONTHLY,
            "issueAfterReset": 10,
        },
    )
    assert override.status_code == 201
    new = override.json()
    assert (new["measureUsageFrom"], new["issueAfterReset"]) == ("2024-01-16T00:00:00Z", 10)
    assert catalogue.get(f"{SUBJECT}/{old['id']}").json()["deletedAt"] == "2024-01-16T00:00:00Z"
    assert [e["id"] for e in catalogue.get(SUBJECT).json()] == [new["id"]]
    with_deleted = catalogue.get(SUBJECT, params={"includeDeleted": "true"}).json()
    assert {e["id"] for e in with_deleted} == {old["id"], new["id"]}

    clock.set(datetime(2024, 1, 17, tzinfo=UTC))
    assert catalogue.delete(f"{SUBJECT}/{new['id']}").status_code == 204
    assert catalogue.get(f"{SUBJECT}/ai_tokens/value").json() == {"hasAccess": False}
    earlier = catalogue.get(
        f"{SUBJECT}/ai_tokens/value", params={"time": "2024-01-16T12:00:00Z"}
    ).json()
    assert (earlier["hasAccess"], earlier["balance"]) == (True, 10)
    problem(catalogue.delete(f"{SUBJECT}/{new['id']}"), 404)
