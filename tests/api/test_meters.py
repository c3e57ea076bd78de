"""Meter CRUD over HTTP (create 201, list, get by id or slug, replace, soft delete)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from allotment.domain.time import utc
from allotment.ids import is_ulid
from allotment.services.context import ServiceContext
from tests.api.problems import problem, problem_fields
from tests.conftest import SettableClock
from tests.factories import make_feature

TOKENS = {
    "slug": "tokens",
    "name": "Tokens",
    "description": "LLM tokens",
    "aggregation": "SUM",
    "eventType": "prompt",
    "valueProperty": "$.tokens",
    "groupBy": {"model": "$.model", "kind": "$.type"},
    "metadata": {"team": "ai"},
}


def create(client: TestClient, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/v1/meters", json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_create_returns_the_meter(client: TestClient, clock: SettableClock) -> None:
    clock.set(utc(2024, 1, 15, 12))
    meter = create(client, **TOKENS, eventFrom="2024-01-01T00:00:00+01:00")
    assert is_ulid(meter.pop("id"))
    assert meter == {
        "slug": "tokens",
        "name": "Tokens",
        "description": "LLM tokens",
        "metadata": {"team": "ai"},
        "aggregation": "SUM",
        "eventType": "prompt",
        "eventFrom": "2023-12-31T23:00:00Z",
        "valueProperty": "$.tokens",
        "groupBy": {"model": "$.model", "kind": "$.type"},
        "createdAt": "2024-01-15T12:00:00Z",
        "updatedAt": "2024-01-15T12:00:00Z",
    }


def test_a_count_meter_needs_no_value_property_and_is_named_after_its_slug(
    client: TestClient,
) -> None:
    meter = create(client, slug="prompts", aggregation="COUNT", eventType="prompt")
    assert meter["name"] == "prompts"
    assert "valueProperty" not in meter
    assert "groupBy" not in meter


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"slug": "Tokens"}, ["slug"]),
        ({"slug": "a" * 65}, ["slug"]),
        ({"aggregation": "MEDIAN"}, ["aggregation"]),
        ({"eventType": ""}, ["eventType"]),
        ({"valueProperty": None}, ["valueProperty"]),
        ({"valueProperty": "tokens"}, ["valueProperty"]),
        ({"valueProperty": "$..tokens"}, ["valueProperty"]),
        ({"aggregation": "COUNT"}, ["valueProperty"]),
        ({"groupBy": {"bad key": "$.a"}}, ["groupBy.bad key"]),
        ({"groupBy": {"model": "model"}}, ["groupBy.model"]),
        ({"groupBy": {"subject": "$.s"}}, ["groupBy.subject"]),
        ({"groupBy": {"again": "$.tokens"}}, ["groupBy.again"]),
        ({"eventFrom": "2024-01-01T00:00:00"}, ["eventFrom"]),
        ({"eventFrom": "1969-12-31T23:59:59Z"}, ["eventFrom"]),
        ({"eventFrom": "8000-01-01T00:00:00Z"}, ["eventFrom"]),
        ({"metadata": {"n": 1}}, ["metadata.n"]),
        ({"name": ""}, ["name"]),
    ],
)
def test_invalid_definitions_name_the_field(
    client: TestClient, changes: dict[str, Any], fields: list[str]
) -> None:
    response = client.post("/api/v1/meters", json={**TOKENS, **changes})
    assert problem_fields(response) == fields
    assert client.get("/api/v1/meters").json() == []


def test_a_live_slug_is_unique(client: TestClient) -> None:
    first = create(client, **TOKENS)
    body = problem(client.post("/api/v1/meters", json=TOKENS), 409)
    assert body["detail"] == "meter with the same slug already exists: tokens"
    assert body["extensions"]["conflictingEntityId"] == first["id"]


def test_get_by_id_or_slug(client: TestClient) -> None:
    meter = create(client, **TOKENS)
    assert client.get(f"/api/v1/meters/{meter['id']}").json() == meter
    assert client.get("/api/v1/meters/tokens").json() == meter
    body = problem(client.get("/api/v1/meters/nothing"), 404)
    assert body["detail"] == "meter not found: nothing"


def test_list_orders_and_includes_deleted_on_request(
    client: TestClient, clock: SettableClock
) -> None:
    clock.set(utc(2024, 1, 1))
    create(client, slug="b_meter", name="Zeta", aggregation="COUNT", eventType="x")
    clock.set(utc(2024, 1, 2))
    create(
        client, slug="a_meter", name="Alpha", aggregation="MAX", eventType="x", valueProperty="$.v"
    )
    clock.set(utc(2024, 1, 3))
    create(
        client, slug="c_meter", name="Mid", aggregation="AVG", eventType="x", valueProperty="$.v"
    )
    assert client.delete("/api/v1/meters/c_meter").status_code == 204

    def slugs(**params: Any) -> list[str]:
        response = client.get("/api/v1/meters", params=params)
        assert response.status_code == 200, response.text
        return [meter["slug"] for meter in response.json()]

    assert slugs() == ["a_meter", "b_meter"]
    assert slugs(includeDeleted="true") == ["a_meter", "b_meter", "c_meter"]
    assert slugs(orderBy="name", includeDeleted="true") == ["a_meter", "c_meter", "b_meter"]
    assert slugs(orderBy="createdAt", order="DESC") == ["a_meter", "b_meter"]
    assert slugs(orderBy="aggregation") == ["b_meter", "a_meter"]
    assert slugs(page=2, pageSize=1) == ["b_meter"]
    assert problem_fields(client.get("/api/v1/meters", params={"orderBy": "colour"})) == ["orderBy"]


def test_update_replaces_the_mutable_fields(client: TestClient, clock: SettableClock) -> None:
    clock.set(utc(2024, 1, 1))
    meter = create(client, **TOKENS)
    clock.set(utc(2024, 2, 1))
    response = client.put("/api/v1/meters/tokens", json={"groupBy": {"model": "$.model"}})
    assert response.status_code == 200, response.text
    updated = response.json()
    # A replace: the name falls back to the slug, description and metadata are cleared.
    assert updated == {
        "id": meter["id"],
        "slug": "tokens",
        "name": "tokens",
        "aggregation": "SUM",
        "eventType": "prompt",
        "valueProperty": "$.tokens",
        "groupBy": {"model": "$.model"},
        "createdAt": "2024-01-01T00:00:00Z",
        "updatedAt": "2024-02-01T00:00:00Z",
    }
    assert client.get(f"/api/v1/meters/{meter['id']}").json() == updated
    assert problem_fields(client.put("/api/v1/meters/tokens", json={"groupBy": {"m": "$..x"}})) == [
        "groupBy.m"
    ]
    assert problem(client.put("/api/v1/meters/none", json={}), 404)["status"] == 404


def test_a_group_by_a_feature_filters_on_cannot_be_dropped(
    client: TestClient, context: ServiceContext
) -> None:
    create(client, **TOKENS)
    make_feature(context, "ai_tokens", "tokens", {"model": "gpt-4"})
    body = problem(client.put("/api/v1/meters/tokens", json={"groupBy": {"kind": "$.type"}}), 409)
    assert "feature ai_tokens filters on group-by model" in body["detail"]
    keep = client.put("/api/v1/meters/tokens", json={"groupBy": {"model": "$.model"}})
    assert keep.status_code == 200


def test_delete_is_soft_and_frees_the_slug(client: TestClient, clock: SettableClock) -> None:
    old = create(client, **TOKENS)
    clock.set(utc(2024, 3, 1))
    assert client.delete("/api/v1/meters/tokens").status_code == 204
    assert client.delete(f"/api/v1/meters/{old['id']}").status_code == 204  # again: no-op
    deleted = client.get(f"/api/v1/meters/{old['id']}").json()
    assert deleted["deletedAt"] == "2024-03-01T00:00:00Z"
    assert client.get("/api/v1/meters").json() == []
    assert problem(client.put(f"/api/v1/meters/{old['id']}", json={}), 412)["status"] == 412
    new = create(client, **TOKENS)
    assert client.get("/api/v1/meters/tokens").json()["id"] == new["id"]


def test_a_meter_a_feature_reads_cannot_be_deleted(
    client: TestClient, context: ServiceContext
) -> None:
    create(client, **TOKENS)
    make_feature(context, "ai_tokens", "tokens")
    body = problem(client.delete("/api/v1/meters/tokens"), 409)
    assert "used by a feature" in body["detail"]
