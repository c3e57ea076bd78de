"""/api/v1/customers: create (201), paginated list with filters, get/replace/delete."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from allotment.services.context import ServiceContext
from tests.api.problems import fields_of, problem
from tests.conftest import SettableClock
from tests.factories import add_boolean_entitlement_row

ACME = {
    "name": "ACME Inc.",
    "key": "acme",
    "usageAttribution": {"subjectKeys": ["acme-prod", "acme-dev"]},
    "primaryEmail": "billing@acme.test",
    "currency": "USD",
    "billingAddress": {"country": "US", "city": "Springfield", "line1": "1 Main St"},
    "metadata": {"crmId": "42"},
    "description": "first customer",
}


def test_create_returns_201_with_every_field(client: TestClient) -> None:
    response = client.post("/api/v1/customers", json=ACME)
    assert response.status_code == 201
    body = response.json()
    assert body == {
        **ACME,
        "id": body["id"],
        "usageAttribution": {"subjectKeys": ["acme-dev", "acme-prod"]},
        "createdAt": "2024-01-15T12:00:00Z",
        "updatedAt": "2024-01-15T12:00:00Z",
    }
    assert client.get("/api/v1/customers/acme").json() == body
    assert client.get(f"/api/v1/customers/{body['id']}").json() == body
    # The subject keys became subjects.
    assert [s["key"] for s in client.get("/api/v1/subjects").json()] == ["acme-dev", "acme-prod"]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"name": "no attribution"}, ["key", "usageAttribution.subjectKeys"]),
        ({"key": "k"}, ["name"]),
        ({"name": "x", "key": ""}, ["key"]),
        ({"name": "x", "key": "k", "currency": "usd"}, ["currency"]),
        (
            {"name": "x", "key": "k", "billingAddress": {"country": "USA"}},
            ["billingAddress.country"],
        ),
        (
            {"name": "x", "usageAttribution": {"subjectKeys": ["ok", ""]}},
            ["usageAttribution.subjectKeys.1"],
        ),
        ({"name": "x", "usageAttribution": {}}, ["usageAttribution.subjectKeys"]),
        ({"name": "x", "key": "k", "metadata": {"n": 1}}, ["metadata.n"]),
        ({"name": "x\u0000", "key": "k"}, ["name"]),
        ({"name": "x" * 257, "key": "k"}, ["name"]),
    ],
)
def test_invalid_customers_are_400_naming_the_field(
    client: TestClient, body: dict[str, Any], fields: list[str]
) -> None:
    refused = problem(client.post("/api/v1/customers", json=body), 400)
    assert fields_of(refused) == fields


def test_conflicts_are_409_naming_the_field(client: TestClient) -> None:
    acme = client.post("/api/v1/customers", json=ACME).json()
    taken_key = problem(client.post("/api/v1/customers", json={"name": "A2", "key": "acme"}), 409)
    assert fields_of(taken_key) == ["key"]
    assert taken_key["extensions"]["conflictingEntityId"] == acme["id"]
    taken_subject = problem(
        client.post(
            "/api/v1/customers",
            json={"name": "B", "key": "beta", "usageAttribution": {"subjectKeys": ["acme-dev"]}},
        ),
        409,
    )
    assert fields_of(taken_subject) == ["usageAttribution.subjectKeys"]
    assert "'acme-dev' is already a subject key" in taken_subject["detail"]


def test_put_replaces_everything(client: TestClient, clock: SettableClock) -> None:
    acme = client.post("/api/v1/customers", json=ACME).json()
    clock.set(clock().replace(hour=13))
    replaced = client.put(
        "/api/v1/customers/acme",
        json={"name": "ACME", "key": "acme", "usageAttribution": {"subjectKeys": ["acme-new"]}},
    )
    assert replaced.status_code == 200
    assert replaced.json() == {
        "id": acme["id"],
        "name": "ACME",
        "key": "acme",
        "usageAttribution": {"subjectKeys": ["acme-new"]},
        "createdAt": "2024-01-15T12:00:00Z",
        "updatedAt": "2024-01-15T13:00:00Z",
    }
    problem(client.put("/api/v1/customers/acme", json={"key": "acme"}), 400)
    problem(client.put("/api/v1/customers/nobody", json={"name": "n", "key": "n"}), 404)


def test_delete_soft_deletes_and_guards_entitlements(
    client: TestClient, context: ServiceContext, clock: SettableClock
) -> None:
    acme = client.post("/api/v1/customers", json=ACME).json()
    beta = client.post("/api/v1/customers", json={"name": "Beta", "key": "beta"}).json()
    add_boolean_entitlement_row(context, beta["id"], at=clock())
    refused = problem(client.delete("/api/v1/customers/beta"), 409)
    assert "active entitlement" in refused["detail"]

    assert client.delete("/api/v1/customers/acme").status_code == 204
    problem(client.get("/api/v1/customers/acme"), 404)
    deleted = client.get(f"/api/v1/customers/{acme['id']}").json()
    assert deleted["deletedAt"] == "2024-01-15T12:00:00Z"
    problem(client.put(f"/api/v1/customers/{acme['id']}", json={"name": "x", "key": "x"}), 412)
    problem(client.delete(f"/api/v1/customers/{acme['id']}"), 404)


def test_list_is_always_paginated_and_filters(client: TestClient, clock: SettableClock) -> None:
    for index, (name, key, subject) in enumerate(
        [("Charlie", "c", "sub-c"), ("Alpha", "a", "sub-a"), ("Bravo", "b", "sub-b")]
    ):
        clock.set(clock().replace(minute=index))
        client.post(
            "/api/v1/customers",
            json={"name": name, "key": key, "usageAttribution": {"subjectKeys": [subject]}},
        )
    client.delete("/api/v1/customers/b")

    listed = client.get("/api/v1/customers").json()
    assert (listed["page"], listed["pageSize"], listed["totalCount"]) == (1, 100, 2)
    assert [c["name"] for c in listed["items"]] == ["Alpha", "Charlie"]

    def names(query: str) -> list[str]:
        return [c["name"] for c in client.get(f"/api/v1/customers?{query}").json()["items"]]

    assert names("includeDeleted=true") == ["Alpha", "Bravo", "Charlie"]
    assert names("orderBy=createdAt&order=DESC&includeDeleted=true") == [
        "Bravo",
        "Alpha",
        "Charlie",
    ]
    assert names("subject=SUB-C") == ["Charlie"]
    assert names("name=lph") == ["Alpha"]
    assert names("planKey=pro") == []
    paged = client.get("/api/v1/customers?page=2&pageSize=1").json()
    assert (paged["page"], paged["pageSize"], paged["totalCount"]) == (2, 1, 2)
    assert [c["name"] for c in paged["items"]] == ["Charlie"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page=0", "page"),
        ("pageSize=1001", "pageSize"),
        ("orderBy=key", "orderBy"),
        ("order=up", "order"),
        ("includeDeleted=maybe", "includeDeleted"),
        ("name=a%00b", "name"),
    ],
)
def test_bad_list_parameters_are_400(client: TestClient, query: str, field: str) -> None:
    refused = problem(client.get(f"/api/v1/customers?{query}"), 400)
    assert fields_of(refused) == [field]
