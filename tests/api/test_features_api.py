"""/api/v1/features: create (201), list (bare array or page), get, archive."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from allotment.services.context import ServiceContext
from tests.api.helpers import cloud_event
from tests.api.problems import fields_of, problem
from tests.conftest import SettableClock
from tests.factories import make_meter


@pytest.fixture
def tokens_meter(context: ServiceContext) -> str:
    make_meter(context, "tokens", group_by={"model": "$.model", "type": "$.type"})
    return "tokens"


def test_create_fills_both_filter_forms(client: TestClient, tokens_meter: str) -> None:
    response = client.post(
        "/api/v1/features",
        json={
            "key": "gpt4_tokens",
            "name": "GPT-4 tokens",
            "meterSlug": tokens_meter,
            "meterGroupByFilters": {"model": "gpt-4"},
            "metadata": {"team": "ai"},
            "unitCost": {"type": "manual", "amount": "0.1"},
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert body == {
        "id": body["id"],
        "key": "gpt4_tokens",
        "name": "GPT-4 tokens",
        "meterSlug": "tokens",
        "meterGroupByFilters": {"model": "gpt-4"},
        "advancedMeterGroupByFilters": {"model": {"$eq": "gpt-4"}},
        "metadata": {"team": "ai"},
        "unitCost": {"type": "manual", "amount": "0.1"},
        "createdAt": "2024-01-15T12:00:00Z",
        "updatedAt": "2024-01-15T12:00:00Z",
    }
    assert client.get(f"/api/v1/features/{body['id']}").json() == body
    assert client.get("/api/v1/features/gpt4_tokens").json() == body


def test_advanced_filters_of_every_operator_are_accepted_and_echoed(
    client: TestClient, tokens_meter: str
) -> None:
    body = {"key": "gpt4", "name": "GPT-4", "meterSlug": tokens_meter}
    response = client.post(
        "/api/v1/features",
        json={**body, "advancedMeterGroupByFilters": {"model": {"$eq": "gpt-4"}}},
    )
    assert response.status_code == 201
    assert response.json()["meterGroupByFilters"] == {"model": "gpt-4"}
    assert response.json()["advancedMeterGroupByFilters"] == {"model": {"$eq": "gpt-4"}}

    family = {"model": {"$in": ["gpt-4", "gpt-4o"]}, "type": {"$eq": "input"}}
    created = client.post(
        "/api/v1/features",
        json={**body, "key": "gpt4_family", "advancedMeterGroupByFilters": family},
    )
    assert created.status_code == 201, created.text
    # The legacy map shows the plain equalities; the advanced form shows every filter.
    assert created.json()["meterGroupByFilters"] == {"type": "input"}
    assert created.json()["advancedMeterGroupByFilters"] == family
    read = client.get(f"/api/v1/features/{created.json()['id']}").json()
    assert read["advancedMeterGroupByFilters"] == family


# Usage events of customer acme: (tokens, model, type); None leaves the property out.
FILTERED_USAGE = [
    (1, "gpt-4o", "input"),
    (2, "gpt-4o-mini", "input"),
    (32, "gpt-4o", "output"),
    (4, "gpt-4", "input"),
    (8, "o1-mini", "input"),
    (16, None, "input"),
]


@pytest.mark.parametrize(
    ("filters", "legacy", "counted"),
    [
        ({"model": {"$in": ["gpt-4o", "gpt-4o-mini"]}}, None, 1 + 2 + 32),
        (
            {"model": {"$in": ["gpt-4o", "gpt-4o-mini"]}, "type": {"$eq": "input"}},
            {"type": "input"},
            1 + 2,
        ),
        ({"model": {"$like": "%mini"}}, None, 2 + 8),
        # An event without a model is not like anything: the negative operators count it.
        ({"model": {"$nlike": "gpt%"}}, None, 8 + 16),
    ],
)
def test_balances_count_only_the_usage_the_feature_filters_match(
    client: TestClient,
    tokens_meter: str,
    filters: dict[str, Any],
    legacy: dict[str, str] | None,
    counted: int,
) -> None:
    feature = client.post(
        "/api/v1/features",
        json={
            "key": "filtered_tokens",
            "name": "Filtered tokens",
            "meterSlug": tokens_meter,
            "advancedMeterGroupByFilters": filters,
        },
    )
    assert feature.status_code == 201, feature.text
    assert feature.json()["advancedMeterGroupByFilters"] == filters
    assert feature.json().get("meterGroupByFilters") == legacy
    customer = {"key": "acme", "name": "ACME", "usageAttribution": {"subjectKeys": ["acme"]}}
    assert client.post("/api/v1/customers", json=customer).status_code == 201
    entitlement = {
        "type": "metered",
        "featureKey": "filtered_tokens",
        "usagePeriod": {"interval": "MONTH", "anchor": "2024-01-01T00:00:00Z"},
        "issueAfterReset": 100,
    }
    created = client.post("/api/v2/customers/acme/entitlements", json=entitlement)
    assert created.status_code == 201, created.text
    for index, (tokens, model, kind) in enumerate(FILTERED_USAGE):
        data: dict[str, Any] = {"tokens": tokens, "type": kind}
        if model is not None:
            data["model"] = model
        event = cloud_event(f"usage-{index}", data=data)
        assert client.post("/api/v1/events", json=event).status_code == 204

    value = client.get("/api/v2/customers/acme/entitlements/filtered_tokens/value").json()
    assert (value["usage"], value["balance"]) == (counted, 100 - counted)


@pytest.mark.parametrize(
    ("body", "status", "fields"),
    [
        ({"key": "Bad-Key", "name": "x"}, 400, ["key"]),
        ({"key": "01arz3ndektsv4rrffq69g5fav", "name": "x"}, 400, ["key"]),
        ({"key": "a" * 65, "name": "x"}, 400, ["key"]),
        ({"key": "ok"}, 400, ["name"]),
        ({"key": "ok", "name": "x", "meterSlug": "missing"}, 404, ["meterSlug"]),
        ({"key": "ok", "name": "x", "meterGroupByFilters": {"model": "a"}}, 400,
         ["meterGroupByFilters"]),
        ({"key": "ok", "name": "x", "meterSlug": "tokens", "meterGroupByFilters": {"colour": "a"}},
         400, ["meterGroupByFilters.colour"]),
        ({"key": "ok", "name": "x", "meterSlug": "tokens", "meterGroupByFilters": {"model": ""}},
         400, ["meterGroupByFilters.model"]),
        ({"key": "ok", "name": "x", "meterSlug": "tokens",
          "advancedMeterGroupByFilters": {"model": {"$eq": "a", "$ne": "b"}}},
         400, ["advancedMeterGroupByFilters.model"]),
        ({"key": "ok", "name": "x", "meterSlug": "tokens",
          "advancedMeterGroupByFilters": {"model": {"$regex": "a"}}},
         400, ["advancedMeterGroupByFilters.model.$regex"]),
        ({"key": "ok", "name": "x", "meterSlug": "tokens",
          "advancedMeterGroupByFilters": {"model": {"$in": []}}},
         400, ["advancedMeterGroupByFilters.model.$in"]),
        ({"key": "ok", "name": "x", "meterSlug": "tokens",
          "meterGroupByFilters": {"model": "a"},
          "advancedMeterGroupByFilters": {"model": {"$eq": "a"}}},
         400, ["advancedMeterGroupByFilters"]),
    ],
)  # fmt: skip
def test_invalid_features_are_refused_naming_the_field(
    client: TestClient, tokens_meter: str, body: dict[str, Any], status: int, fields: list[str]
) -> None:
    refused = problem(client.post("/api/v1/features", json=body), status)
    assert fields_of(refused) == fields


def test_meter_aggregation_must_suit_a_balance(client: TestClient, context: ServiceContext) -> None:
    make_meter(context, "latency", aggregation="MAX")
    refused = problem(
        client.post("/api/v1/features", json={"key": "k", "name": "n", "meterSlug": "latency"}),
        400,
    )
    assert "aggregates MAX" in refused["detail"]


def test_duplicate_live_key_is_409_and_archive_frees_it(
    client: TestClient, clock: SettableClock
) -> None:
    first = client.post("/api/v1/features", json={"key": "sso", "name": "SSO"}).json()
    conflict = problem(client.post("/api/v1/features", json={"key": "sso", "name": "again"}), 409)
    assert conflict["extensions"]["conflictingEntityId"] == first["id"]
    assert fields_of(conflict) == ["key"]

    clock.set(clock().replace(hour=14))
    archived = client.delete("/api/v1/features/sso")
    assert (archived.status_code, archived.content) == (204, b"")
    problem(client.get("/api/v1/features/sso"), 404)
    problem(client.get(f"/api/v1/features/{first['id']}"), 404)
    assert client.delete(f"/api/v1/features/{first['id']}").status_code == 204
    problem(client.delete("/api/v1/features/sso"), 404)

    second = client.post("/api/v1/features", json={"key": "sso", "name": "SSO v2"})
    assert second.status_code == 201
    listed = client.get("/api/v1/features?includeArchived=true").json()
    assert [(f["name"], f.get("archivedAt")) for f in listed] == [
        ("SSO", "2024-01-15T14:00:00Z"),
        ("SSO v2", None),
    ]


def test_list_shapes_filters_and_order(
    client: TestClient, context: ServiceContext, clock: SettableClock
) -> None:
    make_meter(context, "tokens")
    make_meter(context, "calls", aggregation="COUNT")
    created = [
        ("b_feature", "Alpha", "tokens"),
        ("c_feature", "Bravo", "calls"),
        ("a_feature", "C", None),
    ]
    for minute, (key, name, meter) in enumerate(created):
        clock.set(clock().replace(minute=minute))
        body: dict[str, Any] = {"key": key, "name": name}
        if meter:
            body["meterSlug"] = meter
        assert client.post("/api/v1/features", json=body).status_code == 201

    def keys(query: str = "") -> list[str]:
        return [f["key"] for f in client.get(f"/api/v1/features?{query}").json()]

    assert keys() == ["a_feature", "b_feature", "c_feature"]
    assert keys("limit=1&offset=1") == ["b_feature"]
    assert keys("orderBy=name&order=DESC") == ["a_feature", "c_feature", "b_feature"]
    assert keys("meterSlug=tokens&meterSlug=calls") == ["b_feature", "c_feature"]
    assert keys("orderBy=createdAt") == ["b_feature", "c_feature", "a_feature"]

    page = client.get("/api/v1/features?pageSize=2&page=2").json()
    assert (page["page"], page["pageSize"], page["totalCount"]) == (2, 2, 3)
    assert [f["key"] for f in page["items"]] == ["c_feature"]
    assert client.get("/api/v1/features?page=1").json()["pageSize"] == 100


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page=0", "page"),
        ("pageSize=0", "pageSize"),
        ("limit=1001", "limit"),
        ("offset=-1", "offset"),
        ("orderBy=meterSlug", "orderBy"),
    ],
)
def test_bad_list_parameters_are_400(client: TestClient, query: str, field: str) -> None:
    assert fields_of(problem(client.get(f"/api/v1/features?{query}"), 400)) == [field]
