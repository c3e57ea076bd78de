"""The error catalogue of entitlements and grants: every case answers its status with a
problem+json body naming the field, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import MONTHLY, setup_catalogue
from tests.api.problems import fields_of, problem
from tests.conftest import SettableClock

V2 = "/api/v2/customers/acme/entitlements"
V1 = "/api/v1/subjects/acme/entitlements"
METERED = {"type": "metered", "featureKey": "ai_tokens", "usagePeriod": MONTHLY}
A_GRANT = {"amount": 10, "effectiveAt": "2024-01-15T12:00:00Z"}


@pytest.fixture
def catalogue(client: TestClient) -> TestClient:
    setup_catalogue(client)
    customer = {"key": "acme", "name": "ACME", "usageAttribution": {"subjectKeys": ["acme"]}}
    assert client.post("/api/v1/customers", json=customer).status_code == 201
    return client


CREATE_CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "static config not JSON",
        {"type": "static", "featureKey": "models", "config": "{x"},
        "config",
    ),
    ("static without config", {"type": "static", "featureKey": "models"}, "config"),
    (
        "boolean with isSoftLimit",
        {"type": "boolean", "featureKey": "saml_sso", "isSoftLimit": True},
        "isSoftLimit",
    ),
    (
        "static with issueAfterReset",
        {"type": "static", "featureKey": "models", "config": "{}", "issueAfterReset": 5},
        "issueAfterReset",
    ),
    (
        "boolean with measureUsageFrom",
        {"type": "boolean", "featureKey": "saml_sso", "measureUsageFrom": "NOW"},
        "measureUsageFrom",
    ),
    ("metered without usagePeriod", {"type": "metered", "featureKey": "ai_tokens"}, "usagePeriod"),
    (
        "metered on a feature without meter",
        {**METERED, "featureKey": "saml_sso"},
        "featureKey",
    ),
    (
        "issueAfterResetPriority alone",
        {**METERED, "issueAfterResetPriority": 2},
        "issueAfterResetPriority",
    ),
    (
        "usage period under an hour",
        {**METERED, "usagePeriod": {"interval": "PT30M"}},
        "usagePeriod.interval",
    ),
    (
        "usage period not an interval",
        {**METERED, "usagePeriod": {"interval": "sometimes"}},
        "usagePeriod.interval",
    ),
    ("negative issueAfterReset", {**METERED, "issueAfterReset": -1}, "issueAfterReset"),
    ("measureUsageFrom garbage", {**METERED, "measureUsageFrom": "soon"}, "measureUsageFrom"),
    ("no type", {"featureKey": "ai_tokens"}, "type"),
    ("unknown type", {"type": "unlimited", "featureKey": "ai_tokens"}, "type"),
    ("no feature", {"type": "boolean"}, "featureKey"),
    ("feature key malformed", {"type": "boolean", "featureKey": "Not A Key"}, "featureKey"),
    (
        "v2 grants with issueAfterReset",
        {**METERED, "issueAfterReset": 5, "grants": [A_GRANT]},
        "grants",
    ),
    ("v2 grants on boolean", {"type": "boolean", "featureKey": "saml_sso", "grants": []}, "grants"),
    (
        "v2 grant inside the create is invalid",
        {**METERED, "grants": [{**A_GRANT, "amount": 0}]},
        "grants.0.amount",
    ),
]


@pytest.mark.parametrize(
    ("body", "field"), [case[1:] for case in CREATE_CASES], ids=[c[0] for c in CREATE_CASES]
)
def test_invalid_creates_are_400_naming_the_field(
    catalogue: TestClient, body: dict[str, Any], field: str
) -> None:
    assert field in fields_of(problem(catalogue.post(V2, json=body), 400))


def test_grants_only_for_metered_has_its_code(catalogue: TestClient) -> None:
    body = problem(
        catalogue.post(V2, json={"type": "boolean", "featureKey": "saml_sso", "grants": []}), 400
    )
    (error,) = body["extensions"]["validationErrors"]
    assert error == {
        "field": "grants",
        "code": "entitlement_grants_only_supported_for_metered_entitlements",
        "message": "only metered entitlements take grants",
    }


def test_unknown_and_archived_features_are_404(catalogue: TestClient) -> None:
    unknown = problem(catalogue.post(V2, json={**METERED, "featureKey": "gpu_hours"}), 404)
    assert fields_of(unknown) == ["featureKey"]
    by_id = problem(
        catalogue.post(V2, json={"type": "boolean", "featureId": "01HZZZZZZZZZZZZZZZZZZZZZZZ"}),
        404,
    )
    assert fields_of(by_id) == ["featureId"]
    assert catalogue.delete("/api/v1/features/saml_sso").status_code == 204
    archived = problem(catalogue.post(V2, json={"type": "boolean", "featureKey": "saml_sso"}), 404)
    assert "archived" in archived["detail"]


def test_a_second_entitlement_is_409_naming_the_first(catalogue: TestClient) -> None:
    first = catalogue.post(V2, json=METERED).json()
    body = problem(catalogue.post(V1, json=METERED), 409)
    assert body["extensions"]["conflictingEntityId"] == first["id"]
    assert fields_of(body) == ["featureKey"]


def test_unknown_owners_are_404(catalogue: TestClient) -> None:
    assert fields_of(problem(catalogue.get("/api/v2/customers/nobody/entitlements"), 404)) == [
        "customerIdOrKey"
    ]
    assert fields_of(problem(catalogue.get("/api/v1/customers/nobody/access"), 404)) == [
        "customerIdOrKey"
    ]
    assert fields_of(
        problem(catalogue.get("/api/v1/subjects/nobody/entitlements/ai_tokens/value"), 404)
    ) == ["subjectIdOrKey"]
    assert fields_of(problem(catalogue.get(f"{V2}/01HZZZZZZZZZZZZZZZZZZZZZZZ"), 404)) == [
        "entitlementIdOrFeatureKey"
    ]
    unknown = "/api/v2/entitlements/01HZZZZZZZZZZZZZZZZZZZZZZZ"
    assert fields_of(problem(catalogue.get(unknown), 404)) == ["entitlementId"]
    # Not shaped like an id at all: OpenMeter's pattern refuses it.
    assert fields_of(problem(catalogue.get("/api/v2/entitlements/nope"), 400)) == ["entitlementId"]


def test_grant_errors(catalogue: TestClient) -> None:
    catalogue.post(V2, json=METERED)
    catalogue.post(V2, json={"type": "boolean", "featureKey": "saml_sso"})
    v1_grants = f"{V1}/ai_tokens/grants"
    v2_grants = f"{V2}/ai_tokens/grants"

    cases: list[tuple[str, dict[str, Any], str]] = [
        (v2_grants, {**A_GRANT, "amount": 0}, "amount"),
        (v2_grants, {"amount": 10}, "effectiveAt"),
        (v2_grants, {**A_GRANT, "effectiveAt": "2023-12-31T23:59:00Z"}, "effectiveAt"),
        (v2_grants, {**A_GRANT, "effectiveAt": "2024-01-15T12:00:00"}, "effectiveAt"),
        (v2_grants, {**A_GRANT, "priority": 256}, "priority"),
        (v2_grants, {**A_GRANT, "expiration": {"duration": "DAY", "count": 0}}, "expiration.count"),
        (v2_grants, {**A_GRANT, "recurrence": {"interval": "PT5M"}}, "recurrence.interval"),
        (v1_grants, A_GRANT, "expiration"),
        (f"{V2}/saml_sso/grants", A_GRANT, "entitlementIdOrFeatureKey"),
    ]
    for path, body, field in cases:
        assert field in fields_of(problem(catalogue.post(path, json=body), 400)), (path, body)
    assert fields_of(problem(catalogue.post(f"{V2}/models/grants", json=A_GRANT), 404)) == [
        "entitlementIdOrFeatureKey"
    ]


def test_void_errors(catalogue: TestClient, clock: SettableClock) -> None:
    catalogue.post(V2, json=METERED)
    grant_id = catalogue.post(f"{V2}/ai_tokens/grants", json=A_GRANT).json()["id"]

    future = problem(catalogue.delete(f"/api/v1/grants/{grant_id}?at=2024-01-15T12:01:00Z"), 400)
    assert fields_of(future) == ["at"]
    clock.set(datetime(2024, 2, 2, tzinfo=UTC))
    closed = problem(catalogue.delete(f"/api/v1/grants/{grant_id}?at=2024-01-31T00:00:00Z"), 400)
    assert fields_of(closed) == ["at"]
    assert catalogue.delete(f"/api/v1/grants/{grant_id}").status_code == 204
    assert fields_of(problem(catalogue.delete(f"/api/v1/grants/{grant_id}"), 400)) == ["grantId"]
    unknown = problem(catalogue.delete("/api/v1/grants/01HZZZZZZZZZZZZZZZZZZZZZZZ"), 404)
    assert fields_of(unknown) == ["grantId"]
    naive = problem(catalogue.delete(f"/api/v1/grants/{grant_id}?at=2024-02-01T00:00:00"), 400)
    assert fields_of(naive) == ["at"]


def test_reset_errors(catalogue: TestClient, clock: SettableClock) -> None:
    catalogue.post(V2, json=METERED)
    catalogue.post(V2, json={"type": "boolean", "featureKey": "saml_sso"})
    reset = f"{V2}/ai_tokens/reset"
    for body in (
        {"effectiveAt": "2024-01-15T12:00:01Z"},  # in the future
        {"effectiveAt": "2023-12-31T00:00:00Z"},  # before the current period
    ):
        assert fields_of(problem(catalogue.post(reset, json=body), 400)) == ["effectiveAt"]
    assert catalogue.post(reset, json={}).status_code == 204
    clock.set(datetime(2024, 1, 15, 12, 0, 30, tzinfo=UTC))
    same_minute = problem(catalogue.post(reset, json={}), 400)
    assert "after the last reset" in same_minute["detail"]
    boolean = problem(catalogue.post(f"{V2}/saml_sso/reset", json={}), 400)
    assert fields_of(boolean) == ["entitlementIdOrFeatureKey"]
    assert fields_of(problem(catalogue.post(reset, json={"retainAnchor": "maybe"}), 400)) == [
        "retainAnchor"
    ]


def test_history_errors(catalogue: TestClient) -> None:
    catalogue.post(V2, json=METERED)
    history = f"{V2}/ai_tokens/history"
    cases: list[tuple[dict[str, str], str]] = [
        ({}, "windowSize"),
        ({"windowSize": "WEEK"}, "windowSize"),
        ({"windowSize": "DAY", "from": "2023-12-01T00:00:00Z"}, "from"),
        ({"windowSize": "DAY", "windowTimeZone": "Mars/Base"}, "windowTimeZone"),
        ({"windowSize": "DAY", "to": "2023-12-01T00:00:00Z"}, "to"),
        ({"windowSize": "MINUTE", "to": "2300-01-01T00:00:00Z"}, "windowSize"),
    ]
    for params, field in cases:
        assert fields_of(problem(catalogue.get(history, params=params), 400)) == [field], params


def test_override_errors(catalogue: TestClient, clock: SettableClock) -> None:
    entitlement = catalogue.post(V2, json=METERED).json()
    same_instant = problem(catalogue.put(f"{V2}/ai_tokens/override", json=METERED), 400)
    assert fields_of(same_instant) == ["entitlementIdOrFeatureKey"]
    clock.set(datetime(2024, 1, 16, tzinfo=UTC))
    other_feature = problem(
        catalogue.put(
            f"{V2}/ai_tokens/override", json={"type": "boolean", "featureKey": "saml_sso"}
        ),
        400,
    )
    assert fields_of(other_feature) == ["featureKey"]
    assert catalogue.delete(f"{V2}/ai_tokens").status_code == 204
    deleted = problem(catalogue.put(f"{V2}/{entitlement['id']}/override", json=METERED), 400)
    assert "deleted" in deleted["detail"]
    assert fields_of(problem(catalogue.put(f"{V2}/ai_tokens/override", json=METERED), 404)) == [
        "entitlementIdOrFeatureKey"
    ]


def test_list_parameter_errors(catalogue: TestClient) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/api/v1/entitlements", {"entitlementType": "unlimited"}, "entitlementType.0"),
        ("/api/v1/entitlements", {"page": 0}, "page"),
        ("/api/v2/entitlements", {"pageSize": 1001}, "pageSize"),
        ("/api/v2/grants", {"orderBy": "amount"}, "orderBy"),
        ("/api/v1/grants", {"order": "UP"}, "order"),
        (f"{V2}/ai_tokens/value", {"time": "yesterday"}, "time"),
    ]
    for path, params, field in cases:
        assert fields_of(problem(catalogue.get(path, params=params), 400)) == [field], path


def test_a_body_that_is_not_json_is_400(catalogue: TestClient) -> None:
    response = catalogue.post(
        V2, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    problem(response, 400)


def test_times_and_intervals_the_engine_cannot_hold_are_400(catalogue: TestClient) -> None:
    creates: list[tuple[dict[str, Any], str]] = [
        (
            {**METERED, "usagePeriod": {"interval": "MONTH", "anchor": "0001-01-01T00:00:00Z"}},
            "usagePeriod.anchor",
        ),
        ({**METERED, "measureUsageFrom": "9999-12-31T00:00:00Z"}, "measureUsageFrom"),
        ({**METERED, "usagePeriod": {"interval": "P101Y"}}, "usagePeriod.interval"),
    ]
    for body, field in creates:
        assert fields_of(problem(catalogue.post(V2, json=body), 400)) == [field], body
    catalogue.post(V2, json=METERED)
    grants = f"{V2}/ai_tokens/grants"
    far = {"amount": 1, "effectiveAt": "9999-01-01T00:00:00Z"}
    assert fields_of(problem(catalogue.post(grants, json=far), 400)) == ["effectiveAt"]
    ancient = {**A_GRANT, "recurrence": {"interval": "DAY", "anchor": "0001-01-01T00:00:00Z"}}
    assert fields_of(problem(catalogue.post(grants, json=ancient), 400)) == ["recurrence.anchor"]
    tiny = {**A_GRANT, "amount": "0.0000000000000000001"}
    assert fields_of(problem(catalogue.post(grants, json=tiny), 400)) == ["amount"]
    for time in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00"):
        response = catalogue.get(f"{V2}/ai_tokens/value", params={"time": time})
        assert fields_of(problem(response, 400)) == ["time"]
    history = catalogue.get(
        f"{V2}/ai_tokens/history", params={"windowSize": "DAY", "to": "9000-01-01T00:00:00Z"}
    )
    assert fields_of(problem(history, 400)) == ["to"]
    reset = catalogue.post(f"{V2}/ai_tokens/reset", json={"effectiveAt": "1900-01-01T00:00:00Z"})
    assert fields_of(problem(reset, 400)) == ["effectiveAt"]
    void = catalogue.delete("/api/v1/grants/01HZZZZZZZZZZZZZZZZZZZZZZZ?at=1900-01-01T00:00:00Z")
    assert fields_of(problem(void, 400)) == ["at"]


def test_filters_no_database_can_hold_are_400(catalogue: TestClient) -> None:
    for path, name in (
        ("/api/v2/entitlements", "feature"),
        ("/api/v1/entitlements", "subject"),
        ("/api/v2/grants", "customer"),
        ("/api/v1/grants", "subject"),
    ):
        response = catalogue.get(path, params={name: "a\x00b"})
        assert fields_of(problem(response, 400)) == [name], path
