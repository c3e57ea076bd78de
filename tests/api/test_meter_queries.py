"""Meter queries over HTTP: worked examples with real numbers for every aggregation and window
size, time zones across DST, calendar months, filters, grouping and CSV."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from allotment.domain.time import utc
from allotment.ids import new_id
from allotment.services.context import ServiceContext
from allotment.storage.tables import customer_subjects, customers
from tests.api.problems import problem_fields
from tests.conftest import SettableClock


def ingest(client: TestClient, *events: tuple[str, str, dict[str, Any] | None]) -> None:
    """Events as (time, subject, data); ids are their position in the call."""
    batch = [
        {
            "id": f"{time}-{index}",
            "source": "test",
            "type": "prompt",
            "subject": subject,
            "time": time,
            "data": data,
        }
        for index, (time, subject, data) in enumerate(events)
    ]
    response = client.post(
        "/api/v1/events",
        content=json.dumps(batch),
        headers={"Content-Type": "application/cloudevents-batch+json"},
    )
    assert response.status_code == 204, response.text


def create_meter(client: TestClient, aggregation: str = "SUM", **fields: Any) -> None:
    body = {
        "slug": "tokens",
        "aggregation": aggregation,
        "eventType": "prompt",
        "groupBy": {"model": "$.model"},
        **fields,
    }
    if aggregation != "COUNT":
        body.setdefault("valueProperty", "$.tokens")
    response = client.post("/api/v1/meters", json=body)
    assert response.status_code == 201, response.text


def query(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/meters/tokens/query", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def rows(client: TestClient, **params: Any) -> list[tuple[Any, ...]]:
    """(windowStart, windowEnd, subject, groupBy, value) per row."""
    return [
        (r["windowStart"], r["windowEnd"], r["subject"], r["groupBy"], r["value"])
        for r in query(client, **params)["data"]
    ]


# Eight values over one hour: 3 1 4 1 5 9 2 6, the last at 10:07.
PI_DIGITS = [3, 1, 4, 1, 5, 9, 2, 6]


@pytest.mark.parametrize(
    ("aggregation", "value"),
    [
        ("SUM", 31),
        ("COUNT", 8),
        ("AVG", 3.875),
        ("MIN", 1),
        ("MAX", 9),
        ("LATEST", 6),
        ("UNIQUE_COUNT", 7),
    ],
)
def test_each_aggregation(client: TestClient, aggregation: str, value: float) -> None:
    create_meter(client, aggregation)
    ingest(
        client,
        *[(f"2024-01-15T10:0{i}:00Z", "acme", {"tokens": d}) for i, d in enumerate(PI_DIGITS)],
    )
    result = query(client, **{"from": "2024-01-15T10:00:00Z", "to": "2024-01-15T11:00:00Z"})
    assert result == {
        "from": "2024-01-15T10:00:00Z",
        "to": "2024-01-15T11:00:00Z",
        "data": [
            {
                "value": value,
                "windowStart": "2024-01-15T10:00:00Z",
                "windowEnd": "2024-01-15T11:00:00Z",
                "subject": None,
                "groupBy": {},
            }
        ],
    }


def test_daily_tokens_per_model(client: TestClient) -> None:
    create_meter(client)
    ingest(
        client,
        ("2024-01-15T10:00:00Z", "acme", {"tokens": 100, "model": "gpt-4"}),
        ("2024-01-15T11:00:00Z", "acme", {"tokens": 50, "model": "mini"}),
        ("2024-01-15T23:59:59.999Z", "beta", {"tokens": 25, "model": "gpt-4"}),
        ("2024-01-16T00:00:00Z", "acme", {"tokens": "12.5", "model": "gpt-4"}),
        ("2024-01-16T01:00:00Z", "acme", {"tokens": "abc", "model": "gpt-4"}),
        ("2024-01-17T00:00:00Z", "acme", {"tokens": 1000, "model": "gpt-4"}),
    )
    assert rows(
        client,
        windowSize="DAY",
        groupBy="model",
        **{"from": "2024-01-15T00:00:00Z", "to": "2024-01-17T00:00:00Z"},
    ) == [
        ("2024-01-15T00:00:00Z", "2024-01-16T00:00:00Z", None, {"model": "gpt-4"}, 125),
        ("2024-01-15T00:00:00Z", "2024-01-16T00:00:00Z", None, {"model": "mini"}, 50),
        ("2024-01-16T00:00:00Z", "2024-01-17T00:00:00Z", None, {"model": "gpt-4"}, 12.5),
    ]


def test_minute_windows_only_where_there_is_usage(client: TestClient) -> None:
    create_meter(client, "COUNT")
    ingest(
        client,
        ("2024-01-15T10:00:10Z", "acme", None),
        ("2024-01-15T10:00:50Z", "acme", None),
        ("2024-01-15T10:01:00Z", "acme", None),
        ("2024-01-15T10:03:59Z", "acme", None),
    )
    assert [(r[0], r[1], r[4]) for r in rows(client, windowSize="MINUTE")] == [
        ("2024-01-15T10:00:00Z", "2024-01-15T10:01:00Z", 2),
        ("2024-01-15T10:01:00Z", "2024-01-15T10:02:00Z", 1),
        ("2024-01-15T10:03:00Z", "2024-01-15T10:04:00Z", 1),
    ]


def test_hour_windows_in_a_half_hour_zone(client: TestClient) -> None:
    create_meter(client)
    ingest(
        client,
        ("2024-01-15T10:10:00Z", "acme", {"tokens": 1}),
        ("2024-01-15T10:40:00Z", "acme", {"tokens": 2}),
        ("2024-01-15T11:29:59Z", "acme", {"tokens": 4}),
    )
    # Kolkata is UTC+05:30: its hours start at half past in UTC.
    assert [
        (r[0], r[1], r[4]) for r in rows(client, windowSize="HOUR", windowTimeZone="Asia/Kolkata")
    ] == [
        ("2024-01-15T09:30:00Z", "2024-01-15T10:30:00Z", 1),
        ("2024-01-15T10:30:00Z", "2024-01-15T11:30:00Z", 6),
    ]
    assert [r[4] for r in rows(client, windowSize="HOUR")] == [3, 4]


def test_los_angeles_days_across_daylight_saving(client: TestClient) -> None:
    create_meter(client)
    ingest(
        client,
        ("2024-03-10T07:30:00Z", "acme", {"tokens": 1}),  # Mar 9, 23:30 PST
        ("2024-03-10T08:00:00Z", "acme", {"tokens": 2}),  # Mar 10, 00:00 PST
        ("2024-03-11T06:59:00Z", "acme", {"tokens": 4}),  # Mar 10, 23:59 PDT
        ("2024-03-11T07:00:00Z", "acme", {"tokens": 8}),  # Mar 11, 00:00 PDT
        ("2024-11-03T07:00:00Z", "acme", {"tokens": 16}),  # Nov 3, 00:00 PDT
        ("2024-11-04T07:59:00Z", "acme", {"tokens": 32}),  # Nov 3, 23:59 PST
    )
    assert [
        (r[0], r[1], r[4])
        for r in rows(client, windowSize="DAY", windowTimeZone="America/Los_Angeles")
    ] == [
        ("2024-03-09T08:00:00Z", "2024-03-10T08:00:00Z", 1),
        # Spring forward: March 10 is 23 hours long.
        ("2024-03-10T08:00:00Z", "2024-03-11T07:00:00Z", 6),
        ("2024-03-11T07:00:00Z", "2024-03-12T07:00:00Z", 8),
        # Fall back: November 3 is 25 hours long.
        ("2024-11-03T07:00:00Z", "2024-11-04T08:00:00Z", 48),
    ]


def test_calendar_month_windows(client: TestClient) -> None:
    create_meter(client)
    ingest(
        client,
        ("2023-02-28T23:59:59Z", "acme", {"tokens": 1}),
        ("2024-01-31T23:00:00Z", "acme", {"tokens": 2}),
        ("2024-02-29T12:00:00Z", "acme", {"tokens": 4}),  # leap day
        ("2024-03-01T00:00:00Z", "acme", {"tokens": 8}),
        ("2024-03-01T05:00:00Z", "acme", {"tokens": 16}),
    )
    assert [(r[0], r[1], r[4]) for r in rows(client, windowSize="MONTH")] == [
        ("2023-02-01T00:00:00Z", "2023-03-01T00:00:00Z", 1),
        ("2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z", 2),
        ("2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z", 4),
        ("2024-03-01T00:00:00Z", "2024-04-01T00:00:00Z", 24),
    ]
    # In Los Angeles, both March 1 events (UTC) still fall in February.
    la = rows(client, windowSize="MONTH", windowTimeZone="America/Los_Angeles")
    assert [(r[0], r[1], r[4]) for r in la][-2:] == [
        ("2024-01-01T08:00:00Z", "2024-02-01T08:00:00Z", 2),
        ("2024-02-01T08:00:00Z", "2024-03-01T08:00:00Z", 28),
    ]


def test_an_unwindowed_row_spans_the_range_or_the_events(client: TestClient) -> None:
    create_meter(client)
    ingest(
        client,
        ("2024-01-15T10:00:30Z", "acme", {"tokens": 1}),
        ("2024-01-15T12:34:56Z", "acme", {"tokens": 2}),
    )
    # Without a range: the first event's minute to one minute past the last event's minute.
    assert rows(client) == [("2024-01-15T10:00:00Z", "2024-01-15T12:35:00Z", None, {}, 3)]
    assert rows(client, **{"from": "2024-01-15T00:00:00Z"}) == [
        ("2024-01-15T00:00:00Z", "2024-01-15T12:35:00Z", None, {}, 3)
    ]
    assert query(client, **{"from": "2024-01-16T00:00:00Z"})["data"] == []


def test_subjects_filter_and_group(client: TestClient) -> None:
    create_meter(client)
    ingest(
        client,
        ("2024-01-15T10:00:00Z", "acme", {"tokens": 1, "model": "a"}),
        ("2024-01-15T10:00:00Z", "beta", {"tokens": 2, "model": "a"}),
        ("2024-01-15T10:00:00Z", "beta", {"tokens": 4, "model": "b"}),
        ("2024-01-15T10:00:00Z", "gamma", {"tokens": 8}),
    )
    window = ("2024-01-15T10:00:00Z", "2024-01-15T10:01:00Z")
    assert rows(client, subject=["beta", "acme"]) == [
        (*window, "acme", {}, 1),
        (*window, "beta", {}, 6),
    ]
    assert rows(client, groupBy=["subject", "model"], subject="beta") == [
        (*window, "beta", {"model": "a"}, 2),
        (*window, "beta", {"model": "b"}, 4),
    ]
    by_model = rows(client, groupBy="model")
    assert [(r[2], r[3], r[4]) for r in by_model] == [
        (None, {"model": None}, 8),
        (None, {"model": "a"}, 3),
        (None, {"model": "b"}, 4),
    ]


def test_group_by_filters_get_and_post(client: TestClient) -> None:
    create_meter(client, groupBy={"model": "$.model", "kind": "$.kind"})
    ingest(
        client,
        ("2024-01-15T10:00:00Z", "acme", {"tokens": 1, "model": "gpt-4", "kind": "input"}),
        ("2024-01-15T10:00:00Z", "acme", {"tokens": 2, "model": "gpt-4", "kind": "output"}),
        ("2024-01-15T10:00:00Z", "acme", {"tokens": 4, "model": "mini", "kind": "input"}),
        ("2024-01-15T10:00:00Z", "acme", {"tokens": 8, "model": "o1", "kind": "input"}),
    )
    deep = client.get(
        "/api/v1/meters/tokens/query?filterGroupBy[model]=gpt-4&filterGroupBy[model]=mini"
        "&filterGroupBy[kind]=input"
    )
    assert [r["value"] for r in deep.json()["data"]] == [5]
    posted = client.post(
        "/api/v1/meters/tokens/query",
        json={"filterGroupBy": {"model": ["gpt-4", "o1"]}, "groupBy": ["kind"]},
    )
    assert posted.status_code == 200, posted.text
    assert [(r["groupBy"], r["value"]) for r in posted.json()["data"]] == [
        ({"kind": "input"}, 9),
        ({"kind": "output"}, 2),
    ]
    # The object form of the parameter, as JSON or as the Python SDK writes it.
    for text in ['{"model": ["o1"]}', "{'model': 'o1'}"]:
        response = client.get("/api/v1/meters/tokens/query", params={"filterGroupBy": text})
        assert [r["value"] for r in response.json()["data"]] == [8], text
    everything = client.post("/api/v1/meters/tokens/query")
    assert [r["value"] for r in everything.json()["data"]] == [15]


def test_event_from_hides_older_usage(client: TestClient) -> None:
    create_meter(client, eventFrom="2024-01-15T11:00:00Z")
    ingest(
        client,
        ("2024-01-15T10:59:59Z", "acme", {"tokens": 1}),
        ("2024-01-15T11:00:00Z", "acme", {"tokens": 2}),
    )
    assert [r[4] for r in rows(client)] == [2]


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"groupBy": "colour"}, ["groupBy"]),
        ({"groupBy": "customer_id"}, ["groupBy"]),
        ({"from": "2024-01-15T00:00:00Z", "to": "2024-01-15T00:00:00Z"}, ["to"]),
        ({"from": "2024-01-16T00:00:00Z", "to": "2024-01-15T00:00:00Z"}, ["to"]),
        ({"windowTimeZone": "Mars/Olympus_Mons"}, ["windowTimeZone"]),
        ({"windowTimeZone": "+02:00"}, ["windowTimeZone"]),
        ({"windowSize": "WEEK"}, ["windowSize"]),
        ({"from": "tomorrow"}, ["from"]),
        ({"filterGroupBy[colour]": "red"}, ["filterGroupBy.colour"]),
        ({"filterGroupBy": "[1, 2]"}, ["filterGroupBy"]),
        ({"advancedMeterGroupByFilters": "model=a"}, ["advancedMeterGroupByFilters"]),
        (
            {"advancedMeterGroupByFilters": '{"model": {"$eq": ""}}'},
            ["advancedMeterGroupByFilters.model.$eq"],
        ),
        (
            {"advancedMeterGroupByFilters": '{"colour": {"$eq": "red"}}'},
            ["advancedMeterGroupByFilters.colour"],
        ),
        (
            {
                "advancedMeterGroupByFilters": '{"model": {"$eq": "a"}}',
                "filterGroupBy[model]": "a",
            },
            ["advancedMeterGroupByFilters"],
        ),
    ],
)
def test_invalid_queries_name_the_field(
    client: TestClient, params: dict[str, Any], fields: list[str]
) -> None:
    create_meter(client)
    assert problem_fields(client.get("/api/v1/meters/tokens/query", params=params)) == fields


def test_invalid_posted_queries_name_the_field(client: TestClient) -> None:
    create_meter(client)
    for body, fields in [
        ({"windowSize": "DECADE"}, ["windowSize"]),
        ({"filterGroupBy": {"model": "gpt-4"}}, ["filterGroupBy.model"]),
        ({"subject": ["s"] * 101}, ["subject"]),
        ({"filterCustomerId": [new_id()]}, ["filterCustomerId"]),
    ]:
        status = 404 if "filterCustomerId" in body else 400
        response = client.post("/api/v1/meters/tokens/query", json=body)
        assert problem_fields(response, status) == fields, body
    assert problem_fields(client.get("/api/v1/meters/none/query"), 404) == ["meterIdOrSlug"]


def test_csv_when_asked(client: TestClient) -> None:
    create_meter(client)
    ingest(
        client,
        ("2024-01-15T10:00:00Z", "acme", {"tokens": 400, "model": "gpt-4"}),
        ("2024-01-15T11:00:00Z", "acme", {"tokens": "0.5", "model": "mini"}),
        ("2024-01-16T10:00:00Z", "beta", {"tokens": 7}),
    )
    response = client.get(
        "/api/v1/meters/tokens/query",
        params={"windowSize": "DAY", "groupBy": ["subject", "model"]},
        headers={"Accept": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == "attachment; filename=tokens.csv"
    assert response.text.splitlines() == [
        "window_start,window_end,subject,model,value",
        "2024-01-15T00:00:00Z,2024-01-16T00:00:00Z,acme,gpt-4,400.000000",
        "2024-01-15T00:00:00Z,2024-01-16T00:00:00Z,acme,mini,0.500000",
        "2024-01-16T00:00:00Z,2024-01-17T00:00:00Z,beta,,7.000000",
    ]
    posted = client.post("/api/v1/meters/tokens/query", headers={"Accept": "text/csv"})
    assert posted.text.splitlines() == [
        "window_start,window_end,value",
        "2024-01-15T10:00:00Z,2024-01-16T10:01:00Z,407.500000",
    ]


def test_subjects_and_group_by_values(client: TestClient, clock: SettableClock) -> None:
    clock.set(utc(2024, 1, 16, 12))
    create_meter(client)
    ingest(
        client,
        ("2024-01-14T10:00:00Z", "old", {"tokens": 1, "model": "davinci"}),
        ("2024-01-16T10:00:00Z", "zed", {"tokens": 1, "model": "gpt-4"}),
        ("2024-01-16T11:00:00Z", "amy", {"tokens": 1, "model": "mini"}),
        ("2024-01-16T11:00:00Z", "amy", {"tokens": 1, "model": "gpt-4"}),
    )
    assert client.get("/api/v1/meters/tokens/subjects").json() == ["amy", "old", "zed"]
    params = {"from": "2024-01-16T10:30:00Z"}
    assert client.get("/api/v1/meters/tokens/subjects", params=params).json() == ["amy"]
    # Group-by values default to the last 24 hours.
    values = client.get("/api/v1/meters/tokens/group-by/model/values")
    assert values.json() == ["gpt-4", "mini"]
    everything = {"from": "2024-01-01T00:00:00Z"}
    assert client.get("/api/v1/meters/tokens/group-by/model/values", params=everything).json() == [
        "davinci",
        "gpt-4",
        "mini",
    ]
    unknown = client.get("/api/v1/meters/tokens/group-by/colour/values")
    assert problem_fields(unknown) == ["groupByKey"]


def test_customers_filter_and_group(client: TestClient, context: ServiceContext) -> None:
    acme, beta = new_id(), new_id()
    now = utc(2024, 1, 1)
    with context.database.engine.begin() as connection:
        for customer_id, key in [(acme, "acme"), (beta, None)]:
            connection.execute(
                customers.insert().values(
                    id=customer_id, key=key, name=customer_id, created_at=now, updated_at=now
                )
            )
        connection.execute(
            customer_subjects.insert(),
            [
                {"customer_id": acme, "subject_key": "acme-eu"},
                {"customer_id": beta, "subject_key": "beta-1"},
            ],
        )
    create_meter(client)
    ingest(
        client,
        ("2024-01-15T10:00:00Z", "acme", {"tokens": 1}),
        ("2024-01-15T10:00:00Z", "acme-eu", {"tokens": 2}),
        ("2024-01-15T10:00:00Z", "beta-1", {"tokens": 4}),
        ("2024-01-15T10:00:00Z", "nobody", {"tokens": 8}),
    )
    data = query(client, filterCustomerId=[acme, beta])["data"]
    assert sorted((r["customerId"], r["value"]) for r in data) == sorted([(acme, 3), (beta, 4)])
    only_eu = query(client, filterCustomerId=[acme], subject="acme-eu")["data"]
    assert [(r["customerId"], r["subject"], r["value"]) for r in only_eu] == [(acme, "acme-eu", 2)]


def test_inputs_no_database_can_hold_are_refused(client: TestClient) -> None:
    create_meter(client)
    ingest(
        client,
        ("1970-01-01T00:00:00Z", "acme", {"tokens": 1}),
        ("2999-12-31T23:59:59.999999Z", "acme", {"tokens": 2}),
    )
    nul = client.get("/api/v1/meters/tokens/query", params={"filterGroupBy[model]": "a\x00"})
    assert problem_fields(nul) == ["filterGroupBy[model]"]
    posted = client.post("/api/v1/meters/tokens/query", json={"subject": ["\x00"]})
    assert problem_fields(posted) == ["body"]
    meter = client.post(
        "/api/v1/meters",
        json={"slug": "x", "aggregation": "COUNT", "eventType": "p", "description": "\x00"},
    )
    assert problem_fields(meter) == ["body"]
    # The ends of the client range are fine in a query: windows come from event times.
    extreme = query(
        client,
        windowSize="MONTH",
        windowTimeZone="Pacific/Kiritimati",
        **{"from": "1970-01-01T00:00:00Z", "to": "7999-12-31T23:59:59Z"},
    )
    # Kiritimati was UTC-10:40 in 1969 and is UTC+14 now: the months start accordingly.
    assert [(r["windowStart"], r["value"]) for r in extreme["data"]] == [
        ("1969-12-01T10:40:00Z", 1),
        ("2999-12-31T10:00:00Z", 2),
    ]
    # Beyond them, a query is refused naming the bound, on GET and POST alike.
    for bounds, field in (
        ({"from": "1969-12-31T23:59:59Z"}, "from"),
        ({"to": "8000-01-01T00:00:00Z"}, "to"),
    ):
        assert problem_fields(client.get("/api/v1/meters/tokens/query", params=bounds)) == [field]
        posted = client.post("/api/v1/meters/tokens/query", json=bounds)
        assert problem_fields(posted) == [field]
        subjects = client.get("/api/v1/meters/tokens/subjects", params=bounds)
        assert problem_fields(subjects) == [field]


def test_values_beyond_64_bits_count_exactly_and_values_outside_the_usage_domain_do_not(
    client: TestClient,
) -> None:
    create_meter(client)
    ingest(
        client,
        ("2024-01-15T10:00:00Z", "big", {"tokens": 2**70}),
        ("2024-01-15T10:00:00Z", "big", {"tokens": 2**70}),
        ("2024-01-15T10:00:00Z", "huge", {"tokens": "9e999"}),
        ("2024-01-15T10:00:00Z", "tiny", {"tokens": "1e-70"}),
    )
    response = client.get("/api/v1/meters/tokens/query", params={"groupBy": "subject"})
    # Every digit, as a JSON number: never rounded to a double (it was 2.3611832414348226e+21).
    assert '"value":2361183241434822606848,' in response.text
    values = {r["subject"]: r["value"] for r in response.json()["data"]}
    assert values == {"big": 2 * 2**70}
    listed = client.get("/api/v1/events", params={"subject": "big"}).json()
    assert listed[0]["event"]["data"] == {"tokens": 2**70}
    assert "validationError" not in listed[0]
    for subject, problem in (("huge", "before the decimal point"), ("tiny", "after the decimal")):
        [item] = client.get("/api/v1/events", params={"subject": subject}).json()
        assert problem in item["validationError"]
        assert "at most 24 integer and 18 decimal digits" in item["validationError"]


def test_advanced_group_by_filters_get_and_post(client: TestClient) -> None:
    create_meter(client)
    ingest(
        client,
        ("2024-01-15T10:00:00Z", "acme", {"tokens": 1, "model": "gpt-4"}),
        ("2024-01-15T10:00:00Z", "acme", {"tokens": 2, "model": "gpt-4o-mini"}),
        ("2024-01-15T10:00:00Z", "acme", {"tokens": 4, "model": "GPT-5"}),
        ("2024-01-15T10:00:00Z", "acme", {"tokens": 8, "model": "claude"}),
        ("2024-01-15T10:00:00Z", "acme", {"tokens": 16}),
    )

    def total(filters: dict[str, Any]) -> list[Any]:
        got = query(client, advancedMeterGroupByFilters=json.dumps({"model": filters}))["data"]
        posted = client.post(
            "/api/v1/meters/tokens/query", json={"advancedMeterGroupByFilters": {"model": filters}}
        )
        assert [r["value"] for r in posted.json()["data"]] == [r["value"] for r in got]
        return [r["value"] for r in got]

    assert total({"$like": "gpt%"}) == [3]
    assert total({"$ilike": "gpt%"}) == [7]
    # A missing model is not like anything, so it passes the negative operators.
    assert total({"$nilike": "gpt%"}) == [24]
    assert total({"$in": ["claude", "GPT-5"]}) == [12]
    assert total({"$and": [{"$like": "gpt%"}, {"$ne": "gpt-4"}]}) == [2]
    assert total({"$eq": "o1"}) == []
