"""/api/v1/subjects: list, upsert (array in, array out), get and delete by id or key."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.problems import fields_of, problem
from tests.conftest import SettableClock


def test_upsert_creates_and_partially_updates(client: TestClient, clock: SettableClock) -> None:
    created = client.post(
        "/api/v1/subjects",
        json=[
            {
                "key": "acme",
                "displayName": "ACME",
                "metadata": {"hubspotId": "1", "nested": {"n": None}},
                "currentPeriodStart": "2024-01-01T00:00:00+01:00",
                "stripeCustomerId": "cus_42",
            },
            {"key": "beta"},
        ],
    )
    assert created.status_code == 200
    acme, beta = created.json()
    assert acme == {
        "id": acme["id"],
        "key": "acme",
        "displayName": "ACME",
        "metadata": {"hubspotId": "1", "nested": {"n": None}},
        "currentPeriodStart": "2023-12-31T23:00:00Z",
        "stripeCustomerId": "cus_42",
        "createdAt": "2024-01-15T12:00:00Z",
        "updatedAt": "2024-01-15T12:00:00Z",
    }
    assert beta["key"] == "beta" and "displayName" not in beta

    clock.set(clock().replace(minute=30))
    updated = client.post("/api/v1/subjects", json=[{"key": "acme", "displayName": None}])
    [after] = updated.json()
    assert after["id"] == acme["id"]
    assert "displayName" not in after
    assert after["metadata"] == acme["metadata"]
    assert after["stripeCustomerId"] == "cus_42"
    assert after["updatedAt"] == "2024-01-15T12:30:00Z"

    listed = client.get("/api/v1/subjects").json()
    assert [s["key"] for s in listed] == ["acme", "beta"]


def test_get_and_delete_by_id_or_key(client: TestClient) -> None:
    [acme] = client.post("/api/v1/subjects", json=[{"key": "acme"}]).json()
    assert client.get(f"/api/v1/subjects/{acme['id']}").json() == acme
    assert client.get("/api/v1/subjects/acme").json() == acme

    deleted = client.delete("/api/v1/subjects/acme")
    assert deleted.status_code == 204
    assert deleted.content == b""
    missing = problem(client.get(f"/api/v1/subjects/{acme['id']}"), 404)
    assert "subject not found" in missing["detail"]
    problem(client.delete("/api/v1/subjects/acme"), 404)
    assert client.get("/api/v1/subjects").json() == []


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ([{"key": "a", "stripeCustomerId": "acct_1"}], ["0.stripeCustomerId"]),
        ([{"key": "a"}, {"displayName": "no key"}], ["1.key"]),
        ([{"key": ""}], ["0.key"]),
        ([{"key": "k" * 257}], ["0.key"]),
        ([{"key": "a", "currentPeriodStart": "2024-01-01T00:00:00"}], ["0.currentPeriodStart"]),
        ([{"key": "a", "metadata": {"k": "nul\u0000"}}], ["0.metadata"]),
        ({"key": "not an array"}, ["body"]),
    ],
)
def test_bad_upserts_are_400_naming_the_field_and_store_nothing(
    client: TestClient, body: Any, fields: list[str]
) -> None:
    refused = problem(client.post("/api/v1/subjects", json=body), 400)
    assert fields_of(refused) == fields
    assert client.get("/api/v1/subjects").json() == []


def test_a_nul_in_the_path_is_400_naming_it_not_500(client: TestClient) -> None:
    refused = problem(client.get("/api/v1/subjects/a%00b"), 400)
    assert fields_of(refused) == ["subjectIdOrKey"]
