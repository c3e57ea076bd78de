"""`POST/GET /api/v1/events/corrections` over HTTP: an excluded event leaves meter queries,
entitlement values and the listing says why; problems name the field; only admin keys may."""

from __future__ import annotations

from fastapi.testclient import TestClient

from allotment.services import api_keys
from allotment.services.context import ServiceContext
from tests.api.helpers import MONTHLY, cloud_event, setup_catalogue
from tests.api.problems import problem, problem_fields

BATCH = {"Content-Type": "application/cloudevents-batch+json"}


def _total(client: TestClient) -> float:
    response = client.get("/api/v1/meters/tokens/query", params={"subject": "acme"})
    assert response.status_code == 200, response.text
    return float(sum(row["value"] for row in response.json()["data"]))


def _balance(client: TestClient) -> float:
    response = client.get("/api/v1/subjects/acme/entitlements/ai_tokens/value")
    assert response.status_code == 200, response.text
    return float(response.json()["balance"])


def test_an_excluded_event_stops_counting_everywhere_and_comes_back(client: TestClient) -> None:
    setup_catalogue(client)
    assert client.post("/api/v1/customers", json={"key": "acme", "name": "Acme"}).status_code == 201
    entitlement = {
        "type": "metered",
        "featureKey": "ai_tokens",
        "usagePeriod": MONTHLY,
        "issueAfterReset": 1000,
    }
    created = client.post("/api/v1/subjects/acme/entitlements", json=entitlement)
    assert created.status_code == 201, created.text
    batch = [
        cloud_event("ok-1", data={"tokens": 100, "model": "gpt-4"}),
        cloud_event("oops", data={"tokens": 700, "model": "gpt-4"}),
    ]
    assert client.post("/api/v1/events", json=batch, headers=BATCH).status_code == 204
    assert (_total(client), _balance(client)) == (800, 200)

    response = client.post(
        "/api/v1/events/corrections",
        json={"source": "billing-test", "id": "oops", "action": "exclude", "reason": "test run"},
    )
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["action"] == "exclude" and made["reason"] == "test run"
    assert (made["source"], made["eventId"], made["subject"]) == ("billing-test", "oops", "acme")
    assert made["eventTime"] == "2024-01-15T10:00:00Z" and made["apiKeyId"]
    assert (_total(client), _balance(client)) == (100, 900)

    # Still stored and listed, saying why no meter counts it; a retry of it is still a duplicate.
    listed = {e["event"]["id"]: e for e in client.get("/api/v1/events").json()}
    assert listed["oops"]["validationError"] == "excluded by a correction: test run"
    assert "validationError" not in listed["ok-1"]
    assert client.post("/api/v1/events", json=batch, headers=BATCH).status_code == 204
    assert (_total(client), _balance(client)) == (100, 900)

    again = client.post(
        "/api/v1/events/corrections",
        json={"source": "billing-test", "id": "oops", "action": "exclude", "reason": "twice"},
    )
    assert problem_fields(again, 409) == ["action"]

    restored = client.post(
        "/api/v1/events/corrections",
        json={"source": "billing-test", "id": "oops", "action": "restore", "reason": "real"},
    )
    assert restored.status_code == 201, restored.text
    assert (_total(client), _balance(client)) == (800, 200)

    trail = client.get(
        "/api/v1/events/corrections", params={"source": "billing-test", "id": "oops"}
    )
    assert [(c["action"], c["reason"]) for c in trail.json()] == [
        ("restore", "real"),
        ("exclude", "test run"),
    ]


def test_bad_corrections_are_problems_naming_the_field(client: TestClient) -> None:
    assert client.post("/api/v1/events", json=cloud_event("e1")).status_code == 204
    unknown = client.post(
        "/api/v1/events/corrections",
        json={"source": "billing-test", "id": "nope", "action": "exclude", "reason": "x"},
    )
    assert problem_fields(unknown, 404) == ["id"]
    bad_action = client.post(
        "/api/v1/events/corrections",
        json={"source": "billing-test", "id": "e1", "action": "delete", "reason": "x"},
    )
    assert "action" in problem_fields(bad_action)
    no_reason = client.post(
        "/api/v1/events/corrections",
        json={"source": "billing-test", "id": "e1", "action": "exclude"},
    )
    assert "reason" in problem_fields(no_reason)
    blank = client.post(
        "/api/v1/events/corrections",
        json={"source": "billing-test", "id": "e1", "action": "exclude", "reason": "  "},
    )
    assert problem_fields(blank) == ["reason"]
    half = client.get("/api/v1/events/corrections", params={"source": "billing-test"})
    assert problem_fields(half) == ["id"]


def test_only_admin_keys_correct_events(client: TestClient, context: ServiceContext) -> None:
    assert client.post("/api/v1/events", json=cloud_event("e1")).status_code == 204
    _key, reader = api_keys.create_key(context, "read", "reader")
    body = {"source": "billing-test", "id": "e1", "action": "exclude", "reason": "x"}
    refused = client.post(
        "/api/v1/events/corrections", json=body, headers={"Authorization": f"Bearer {reader}"}
    )
    problem(refused, 403)
    listing = client.get(
        "/api/v1/events/corrections", headers={"Authorization": f"Bearer {reader}"}
    )
    problem(listing, 403)
    assert client.get("/api/v1/events/corrections").json() == []
