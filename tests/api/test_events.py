"""POST and GET /api/v1/events over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from allotment.domain.time import utc
from allotment.ids import new_id
from allotment.services.context import ServiceContext
from allotment.storage.tables import customer_subjects, customers
from tests.api.helpers import cloud_event
from tests.api.problems import problem, problem_fields
from tests.conftest import SettableClock

BATCH = "application/cloudevents-batch+json"
SINGLE = "application/cloudevents+json"


def post(client: TestClient, body: Any, content_type: str = BATCH) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/api/v1/events", content=content, headers={"Content-Type": content_type})


def listed_ids(client: TestClient, **params: Any) -> list[str]:
    response = client.get("/api/v1/events", params=params)
    assert response.status_code == 200, response.text
    return [item["event"]["id"] for item in response.json()]


@pytest.mark.parametrize(
    ("body_of", "content_type"),
    [
        (lambda e: e, SINGLE),
        (lambda e: [e], BATCH),
        (lambda e: e, "application/json"),
        (lambda e: [e], "application/json; charset=utf-8"),
        (lambda e: e, "application/cloudevents+json; charset=UTF-8"),
    ],
)
def test_each_content_type_is_accepted(client: TestClient, body_of: Any, content_type: str) -> None:
    response = post(client, body_of(cloud_event("e1")), content_type)
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert listed_ids(client) == ["e1"]


def test_listing_shows_the_event_as_stored(client: TestClient, clock: SettableClock) -> None:
    clock.set(utc(2024, 1, 15, 12))
    sent = cloud_event("e1", specversion=..., time=..., dataschema="https://example.com/s.json")
    assert post(client, sent, SINGLE).status_code == 204
    (item,) = client.get("/api/v1/events").json()
    assert item == {
        "event": {
            "id": "e1",
            "source": "billing-test",
            # Sent without specversion (as the official SDK does): read as 1.0.
            "specversion": "1.0",
            "type": "prompt",
            "subject": "acme",
            # Sent without time: the receipt time.
            "time": "2024-01-15T12:00:00Z",
            "dataschema": "https://example.com/s.json",
            "datacontenttype": "application/json",
            "data": {"tokens": 100, "model": "gpt-4"},
        },
        "ingestedAt": "2024-01-15T12:00:00Z",
        "storedAt": "2024-01-15T12:00:00Z",
    }


def test_a_bad_event_stores_nothing_and_is_named(client: TestClient) -> None:
    batch = [cloud_event(f"e{i}") for i in range(5)]
    batch[3]["subject"] = ""
    batch[4]["time"] = "yesterday"
    response = post(client, batch)
    body = problem(response)
    assert problem_fields(response) == ["[3].subject", "[4].time"]
    assert body["detail"].startswith("invalid events [3], [4]: [3].subject: ")
    assert "nothing was stored" in body["detail"]
    assert listed_ids(client) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": ...}, "[0].id"),
        ({"source": ""}, "[0].source"),
        ({"type": 7}, "[0].type"),
        ({"subject": None}, "[0].subject"),
        ({"specversion": "0.2"}, "[0].specversion"),
        ({"time": "2024-01-15T10:00:00"}, "[0].time"),
        ({"time": 1705312800}, "[0].time"),
        ({"data": "tokens=5"}, "[0].data"),
        ({"data": [1, 2]}, "[0].data"),
        ({"datacontenttype": "application/xml"}, "[0].datacontenttype"),
        ({"id": "x" * 257}, "[0].id"),
        ({"dataschema": ""}, "[0].dataschema"),
        ({"dataschema": "AAA"}, "[0].dataschema"),
        ({"dataschema": "https://example.com/a b"}, "[0].dataschema"),
    ],
)
def test_each_rule_names_its_field(client: TestClient, change: dict[str, Any], field: str) -> None:
    response = post(client, [cloud_event("e0", **change)])
    assert problem_fields(response) == [field]


def test_a_single_event_is_named_without_an_index(client: TestClient) -> None:
    assert problem_fields(post(client, cloud_event("e0", subject=""), SINGLE)) == ["subject"]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'[{"id":"a","source":"s","type":"t","subject":"x","data":{"n":NaN}}]', "finite"),
        (b'[{"id":"a","source":"s","type":"t","subject":"x","data":{"n":1e99999}}]', "finite"),
        (b'[{"id":"a","source":"s","type":"t","subject":"x","data":{"k":"a\\u0000b"}}]', "NUL"),
        (b'[{"id":"a\\u0000","source":"s","type":"t","subject":"x"}]', "NUL"),
    ],
)
def test_values_no_database_can_store_are_rejected(
    client: TestClient, raw: bytes, fragment: str
) -> None:
    body = problem(post(client, raw))
    assert fragment in body["detail"]
    assert listed_ids(client) == []


def test_content_errors_are_listed_with_schema_errors(client: TestClient) -> None:
    raw = (
        b'[{"id":"a","source":"s","type":"t"},'
        b'{"id":"b","source":"s","type":"t","subject":"x","data":{"n":NaN}}]'
    )
    assert problem_fields(post(client, raw)) == ["[0].subject", "[1].data"]


@pytest.mark.parametrize(
    ("content", "content_type", "field", "detail"),
    [
        (b"[]", BATCH, "body", "no events found"),
        (b"", "application/json", "body", "no events found"),
        (b"{oops", "application/json", "body", "not valid JSON"),
        (b'{"id": "a"}', BATCH, "body", "a batch is a JSON array"),
        (b"{}", "text/plain", "Content-Type", "invalid content type: text/plain"),
    ],
)
def test_malformed_requests(
    client: TestClient, content: bytes, content_type: str, field: str, detail: str
) -> None:
    response = post(client, content, content_type)
    assert problem_fields(response) == [field]
    assert detail in problem(response)["detail"]


def test_duplicates_count_once(client: TestClient) -> None:
    meter = {
        "slug": "tokens",
        "aggregation": "SUM",
        "eventType": "prompt",
        "valueProperty": "$.tokens",
    }
    assert client.post("/api/v1/meters", json=meter).status_code == 201
    batch = [cloud_event("e1"), cloud_event("e2"), cloud_event("e1", data={"tokens": 5})]
    assert post(client, batch).status_code == 204
    assert post(client, batch).status_code == 204  # the retry of the same batch
    assert post(client, cloud_event("e2"), SINGLE).status_code == 204
    query = client.get("/api/v1/meters/tokens/query").json()
    # e1 (100, its first copy) + e2 (100); the duplicates add nothing.
    assert [row["value"] for row in query["data"]] == [200]
    assert sorted(listed_ids(client)) == ["e1", "e2"]


def test_listing_explains_events_meters_cannot_count(client: TestClient) -> None:
    for meter in [
        {
            "slug": "tokens",
            "aggregation": "SUM",
            "eventType": "prompt",
            "valueProperty": "$.tokens",
        },
        {"slug": "prompts", "aggregation": "COUNT", "eventType": "prompt"},
        {
            "slug": "users",
            "aggregation": "UNIQUE_COUNT",
            "eventType": "prompt",
            "valueProperty": "$.user",
        },
    ]:
        assert client.post("/api/v1/meters", json=meter).status_code == 201
    batch = [
        cloud_event("ok", data={"tokens": "250", "user": "u1"}, time="2024-01-15T10:00:00Z"),
        cloud_event("no-data", data=None, time="2024-01-15T10:01:00Z"),
        cloud_event("text", data={"tokens": "lots", "user": "u2"}, time="2024-01-15T10:02:00Z"),
        cloud_event("null", data={"tokens": None, "user": "u3"}, time="2024-01-15T10:03:00Z"),
        cloud_event("other", type="upload", data={}, time="2024-01-15T10:04:00Z"),
    ]
    assert post(client, batch).status_code == 204
    listed = {item["event"]["id"]: item for item in client.get("/api/v1/events").json()}
    assert "validationError" not in listed["ok"]
    assert "validationError" not in listed["other"]  # no meter reads uploads
    assert listed["no-data"]["validationError"] == (
        "meter tokens: the event has no data, so value property '$.tokens' is missing; "
        "meter users: the event has no data, so value property '$.user' is missing"
    )
    assert listed["text"]["validationError"] == (
        "meter tokens: value property '$.tokens' is the string 'lots', not a number"
    )
    assert listed["null"]["validationError"] == "meter tokens: value property '$.tokens' is null"
    # The meters agree with the listing: the SUM counts "ok" only, the COUNT every prompt.
    tokens = client.get("/api/v1/meters/tokens/query").json()["data"]
    assert [row["value"] for row in tokens] == [250]
    prompts = client.get("/api/v1/meters/prompts/query").json()["data"]
    assert [row["value"] for row in prompts] == [4]


def test_listing_filters(client: TestClient, clock: SettableClock) -> None:
    clock.set(utc(2024, 1, 15, 12))
    post(
        client,
        [
            cloud_event("order-1", subject="acme", time="2024-01-10T00:00:00Z"),
            cloud_event("order-2", subject="acme-eu", time="2024-01-11T00:00:00Z"),
            cloud_event("refund-3", subject="beta", time="2024-01-12T00:00:00Z"),
        ],
    )
    clock.set(utc(2024, 1, 16, 12))
    post(client, [cloud_event("order-4", subject="beta", time="2024-01-09T00:00:00Z")])
    assert listed_ids(client) == ["refund-3", "order-2", "order-1", "order-4"]
    assert listed_ids(client, id="order") == ["order-2", "order-1", "order-4"]
    assert listed_ids(client, subject="acme") == ["order-2", "order-1"]
    assert listed_ids(client, limit=1) == ["refund-3"]
    assert listed_ids(client, **{"from": "2024-01-11T00:00:00Z", "to": "2024-01-12T00:00:00Z"}) == [
        "refund-3",
        "order-2",
    ]
    assert listed_ids(client, ingestedAtFrom="2024-01-16T00:00:00Z") == ["order-4"]
    assert listed_ids(client, ingestedAtTo="2024-01-15T12:00:00Z", clientId="dash") == [
        "refund-3",
        "order-2",
        "order-1",
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"from": "2024-01-12T00:00:00Z", "to": "2024-01-11T00:00:00Z"}, "to"),
        (
            {"ingestedAtFrom": "2024-01-12T00:00:00Z", "ingestedAtTo": "2024-01-11T00:00:00Z"},
            "ingestedAtTo",
        ),
        ({"from": "last week"}, "from"),
        ({"from": "1969-12-31T23:59:59Z"}, "from"),
        ({"ingestedAtTo": "8000-01-01T00:00:00Z"}, "ingestedAtTo"),
    ],
)
def test_listing_rejects_bad_filters(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    assert problem_fields(client.get("/api/v1/events", params=params)) == [field]


def test_listing_shows_and_filters_by_customer(client: TestClient, context: ServiceContext) -> None:
    acme = new_id()
    now = utc(2024, 1, 1)
    with context.database.engine.begin() as connection:
        connection.execute(
            customers.insert().values(
                id=acme, key="acme", name="Acme", created_at=now, updated_at=now
            )
        )
        connection.execute(
            customer_subjects.insert().values(customer_id=acme, subject_key="acme-eu")
        )
    post(
        client,
        [
            cloud_event("1", subject="acme", time="2024-01-10T00:00:00Z"),
            cloud_event("2", subject="acme-eu", time="2024-01-11T00:00:00Z"),
            cloud_event("3", subject="beta", time="2024-01-12T00:00:00Z"),
        ],
    )
    listed = client.get("/api/v1/events").json()
    assert [(i["event"]["id"], i.get("customerId")) for i in listed] == [
        ("3", None),
        ("2", acme),
        ("1", acme),
    ]
    assert listed_ids(client, customerId=[acme]) == ["2", "1"]
    assert listed_ids(client, customerId=[new_id()]) == []


@pytest.mark.parametrize(
    "time", ["1969-12-31T23:59:59Z", "8000-01-01T00:00:00Z", "0001-01-01T00:00:00Z"]
)
def test_event_times_must_be_plausible(client: TestClient, time: str) -> None:
    response = post(client, [cloud_event("ok"), cloud_event("far", time=time)])
    assert problem_fields(response) == ["[1].time"]
    assert listed_ids(client) == []


def test_nul_characters_in_filters_are_refused_not_crashed_on(client: TestClient) -> None:
    for params, field in [({"id": "a\x00b"}, "id"), ({"customerId": "\x00"}, "customerId")]:
        assert problem_fields(client.get("/api/v1/events", params=params)) == [field]
