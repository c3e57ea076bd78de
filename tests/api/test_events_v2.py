"""GET /api/v2/events: the cursor-paginated event list and its `filter` parameter."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from tests.api.helpers import cloud_event
from tests.api.problems import problem_fields
from tests.conftest import SettableClock


def _send(client: TestClient, *events: dict[str, Any]) -> None:
    response = client.post("/api/v1/events", json=list(events))
    assert response.status_code == 204, response.text


def _page(client: TestClient, **params: Any) -> dict[str, Any]:
    if "filter" in params and not isinstance(params["filter"], str):
        params["filter"] = json.dumps(params["filter"])
    response = client.get("/api/v2/events", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _ids(body: dict[str, Any]) -> list[str]:
    return [item["event"]["id"] for item in body["items"]]


def _events(client: TestClient) -> None:
    _send(
        client,
        cloud_event("a", subject="acme", time="2024-01-15T09:00:00Z"),
        cloud_event("b", subject="acme", time="2024-01-15T10:00:00Z", type="search"),
        cloud_event("c", subject="globex", time="2024-01-15T10:00:00Z"),
        cloud_event("d", subject="initech", time="2024-01-15T11:00:00Z", source="other"),
        cloud_event("e", subject="acme", time="2024-01-15T11:30:00Z"),
    )


def test_pages_follow_the_cursor_until_the_end(client: TestClient) -> None:
    _events(client)
    seen: list[str] = []
    body = _page(client, limit=2)
    pages = 1
    while "nextCursor" in body:
        seen += _ids(body)
        body = _page(client, limit=2, cursor=body["nextCursor"])
        pages += 1
    seen += _ids(body)
    # Newest first; the two events of 10:00 in the order opposite to their storing.
    assert seen == ["e", "d", "c", "b", "a"]
    assert pages == 3
    assert "nextCursor" not in _page(client, limit=5)
    assert _ids(_page(client)) == ["e", "d", "c", "b", "a"]


def test_string_filters(client: TestClient) -> None:
    _events(client)
    assert _ids(_page(client, filter={"subject": {"$eq": "acme"}})) == ["e", "b", "a"]
    assert _ids(_page(client, filter={"subject": {"$in": ["globex", "initech"]}})) == ["d", "c"]
    assert _ids(_page(client, filter={"type": {"$ne": "prompt"}})) == ["b"]
    assert _ids(_page(client, filter={"source": {"$like": "oth%"}})) == ["d"]
    assert _ids(_page(client, filter={"id": {"$eq": None}, "subject": {"$ilike": "ACME"}})) == [
        "e",
        "b",
        "a",
    ]
    both = {"subject": {"$eq": "acme"}, "type": {"$eq": "prompt"}}
    assert _ids(_page(client, filter=both)) == ["e", "a"]
    either = {"id": {"$or": [{"$eq": "a"}, {"$eq": "d"}]}}
    assert _ids(_page(client, filter=either)) == ["d", "a"]


def test_time_filters(client: TestClient, clock: SettableClock) -> None:
    _events(client)
    window = {"time": {"$gte": "2024-01-15T10:00:00Z", "$lt": "2024-01-15T11:30:00Z"}}
    assert _ids(_page(client, filter=window)) == ["d", "c", "b"]
    # 09:00Z: the event at 09:00 is not after it.
    after = {"time": {"$gt": "2024-01-15T10:00:00+01:00"}}
    assert _ids(_page(client, filter=after)) == ["e", "d", "c", "b"]
    either = {"time": {"$or": [{"$lte": "2024-01-15T09:00:00Z"}, {"$gt": "2024-01-15T11:00:00Z"}]}}
    assert _ids(_page(client, filter=either)) == ["e", "a"]
    clock.set(clock.now.replace(hour=13))
    _send(client, cloud_event("late", time="2024-01-15T08:00:00Z"))
    ingested = {"ingestedAt": {"$gte": "2024-01-15T13:00:00Z"}}
    assert _ids(_page(client, filter=ingested)) == ["late"]


def test_customer_filter(client: TestClient) -> None:
    _events(client)
    created = client.post(
        "/api/v1/customers",
        json={"key": "acme-co", "name": "ACME", "usageAttribution": {"subjectKeys": ["globex"]}},
    )
    assert created.status_code == 201, created.text
    customer = created.json()["id"]
    body = _page(client, filter={"customerId": {"$in": [customer]}})
    assert _ids(body) == ["c"]
    assert body["items"][0]["customerId"] == customer


def test_bad_parameters_name_themselves(client: TestClient) -> None:
    def fields(**params: Any) -> list[str]:
        return problem_fields(client.get("/api/v2/events", params=params))

    assert fields(filter="not json") == ["filter"]
    assert fields(filter="[1]") == ["filter"]
    assert fields(filter=json.dumps({"subjekt": {"$eq": "a"}})) == ["filter.subjekt"]
    assert fields(filter=json.dumps({"time": {"$gte": 0}})) == ["filter.time.$gte"]
    assert fields(filter=json.dumps({"time": {"$eq": "2024-01-15T10:00:00Z"}})) == [
        "filter.time.$eq"
    ]
    assert fields(filter=json.dumps({"subject": {"$foo": "a"}})) == ["filter.subject"]
    assert fields(filter=json.dumps({"customerId": {"$eq": "x"}})) == ["filter.customerId.$eq"]
    assert fields(cursor="nonsense") == ["cursor"]
    assert fields(limit=0) == ["limit"]
    assert fields(limit=101) == ["limit"]
