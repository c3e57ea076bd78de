"""The customer portal: tokens made with an API key, and the meter query a portal token may
make (its own subject, its allowed meters, until it expires or is invalidated)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import send_usage, setup_catalogue
from tests.api.problems import problem, problem_fields
from tests.conftest import SettableClock


@pytest.fixture
def portal(client: TestClient) -> TestClient:
    """The same app (a second one would share and close the same database); each call below
    replaces the admin key with the token it names."""
    return client


def _token(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/portal/tokens", json={"subject": "acme", **body})
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


def _query(portal: TestClient, secret: str, slug: str = "tokens", **params: Any) -> Any:
    return portal.get(
        f"/api/v1/portal/meters/{slug}/query",
        params=params,
        headers={"Authorization": f"Bearer {secret}"},
    )


def _usage(client: TestClient) -> None:
    setup_catalogue(client)
    send_usage(client, 70, "2024-01-15T09:00:00Z", subject="acme")
    send_usage(client, 2, "2024-01-15T10:00:00Z", subject="acme")
    send_usage(client, 500, "2024-01-15T10:00:00Z", subject="globex")


def test_a_token_reads_its_own_subjects_usage_only(client: TestClient, portal: TestClient) -> None:
    _usage(client)
    token = _token(client)
    assert token["subject"] == "acme" and token["expired"] is False
    assert token["expiresAt"] == "2024-01-15T13:00:00Z"  # an hour by default
    assert token["createdAt"] == "2024-01-15T12:00:00Z"
    response = _query(portal, token["token"], subject="globex", filterCustomerId="x")
    assert response.status_code == 200, response.text
    (row,) = response.json()["data"]
    assert row["value"] == 72 and row["subject"] == "acme"
    windowed = _query(portal, token["token"], windowSize="HOUR", groupBy="model").json()
    assert [(r["windowStart"], r["value"]) for r in windowed["data"]] == [
        ("2024-01-15T09:00:00Z", 70),
        ("2024-01-15T10:00:00Z", 2),
    ]


def test_the_query_answers_csv_when_asked(client: TestClient, portal: TestClient) -> None:
    _usage(client)
    secret = _token(client)["token"]
    response = portal.get(
        "/api/v1/portal/meters/tokens/query",
        headers={"Authorization": f"Bearer {secret}", "Accept": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "acme" in response.text and "globex" not in response.text


def test_allowed_meters_bound_the_token(client: TestClient, portal: TestClient) -> None:
    _usage(client)
    other = {"slug": "requests", "eventType": "prompt", "aggregation": "COUNT"}
    assert client.post("/api/v1/meters", json=other).status_code == 201
    token = _token(client, allowedMeterSlugs=["requests"])
    assert token["allowedMeterSlugs"] == ["requests"]
    assert _query(portal, token["token"], "requests").json()["data"][0]["value"] == 2
    assert problem(_query(portal, token["token"], "tokens"), 401)["detail"].startswith(
        "meter slug not allowed"
    )
    response = client.post(
        "/api/v1/portal/tokens", json={"subject": "acme", "allowedMeterSlugs": ["nope"]}
    )
    assert problem_fields(response, 404) == ["allowedMeterSlugs.0"]


def test_a_token_expires(client: TestClient, portal: TestClient, clock: SettableClock) -> None:
    _usage(client)
    token = _token(client, expiresAt="2024-01-15T12:30:00Z")
    assert _query(portal, token["token"]).status_code == 200
    clock.set(clock.now + timedelta(minutes=30))
    assert "expired" in problem(_query(portal, token["token"]), 401)["detail"]
    (listed,) = client.get("/api/v1/portal/tokens").json()
    assert listed["expired"] is True and "token" not in listed
    past = client.post(
        "/api/v1/portal/tokens", json={"subject": "acme", "expiresAt": "2024-01-01T00:00:00Z"}
    )
    assert problem_fields(past) == ["expiresAt"]
    far = client.post(
        "/api/v1/portal/tokens", json={"subject": "acme", "expiresAt": "9999-01-01T00:00:00Z"}
    )
    assert problem_fields(far) == ["expiresAt"]


def test_invalidating_by_id_and_by_subject(
    client: TestClient, portal: TestClient, clock: SettableClock
) -> None:
    _usage(client)
    made = []
    for subject in ("acme", "acme", "globex"):
        made.append(_token(client, subject=subject))
        clock.set(clock.now + timedelta(seconds=1))  # the listing is newest first
    first, second, third = made
    response = client.post("/api/v1/portal/tokens/invalidate", json={"id": first["id"]})
    assert response.status_code == 204, response.text
    assert "invalidated" in problem(_query(portal, first["token"]), 401)["detail"]
    assert _query(portal, second["token"]).status_code == 200
    response = client.post("/api/v1/portal/tokens/invalidate", json={"subject": "acme"})
    assert response.status_code == 204
    assert _query(portal, second["token"]).status_code == 401
    assert _query(portal, third["token"]).json()["data"][0]["value"] == 500
    listed = client.get("/api/v1/portal/tokens", params={"limit": 2}).json()
    assert [t["id"] for t in listed] == [third["id"], second["id"]]
    assert problem_fields(client.post("/api/v1/portal/tokens/invalidate", json={})) == ["id"]
    unknown = client.post("/api/v1/portal/tokens/invalidate", json={"id": "01" + "0" * 24})
    assert problem_fields(unknown, 404) == ["id"]


def test_a_portal_token_reaches_no_other_route(client: TestClient, portal: TestClient) -> None:
    _usage(client)
    secret = _token(client)["token"]
    headers = {"Authorization": f"Bearer {secret}"}
    for method, path in [
        ("GET", "/api/v1/meters/tokens/query"),
        ("GET", "/api/v1/meters"),
        ("GET", "/api/v1/portal/tokens"),
        ("POST", "/api/v1/portal/tokens"),
        ("GET", "/api/v1/customers/acme/entitlements/ai_tokens/value"),
        ("GET", "/api/v1/events"),
    ]:
        response = portal.request(method, path, headers=headers, json={"subject": "x"})
        assert problem(response, 401)["detail"] == "invalid or revoked API key", path


def test_an_api_key_is_no_portal_token(
    client: TestClient, portal: TestClient, admin_key: str
) -> None:
    _usage(client)
    assert problem(_query(portal, admin_key), 401)["detail"] == "invalid portal token"
    bare = portal.get("/api/v1/portal/meters/tokens/query", headers={"Authorization": ""})
    assert problem(bare, 401)["detail"].startswith("missing portal token")
    # The path's slug must match OpenMeter's pattern (a meter id is no slug here).
    secret = _token(client)["token"]
    assert problem_fields(_query(portal, secret, "Tokens")) == ["meterSlug"]


def test_unstorable_text_is_refused_by_name(client: TestClient) -> None:
    for body, field in [({"id": "a\u0000"}, "id"), ({"subject": "a\u0000"}, "subject")]:
        response = client.post("/api/v1/portal/tokens/invalidate", json=body)
        assert problem_fields(response) == [field]
    created = client.post("/api/v1/portal/tokens", json={"subject": "a\u0000"})
    assert problem_fields(created) == ["subject"]
