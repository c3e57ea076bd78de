"""The official OpenMeter Python SDK against a running Allotment: events and meters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from corehttp.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from openmeter import Client
from openmeter.models import Event, MeterCreate, MeterQueryRequest, MeterUpdate


def at(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2024, 3, day, hour, minute, tzinfo=UTC)


def prompt(event_id: str, time: datetime, subject: str, tokens: Any, model: str) -> Event:
    # Built as SDK users build them: no specversion.
    return Event(
        id=event_id,
        source="sdk-test",
        type="prompt",
        subject=subject,
        time=time,
        data={"tokens": tokens, "model": model},
    )


@pytest.fixture
def metered(sdk: Client) -> Client:
    sdk.meters.create(
        MeterCreate(
            slug="tokens",
            name="Tokens",
            aggregation="SUM",
            event_type="prompt",
            value_property="$.tokens",
            group_by={"model": "$.model"},
        )
    )
    sdk.events.ingest_event(prompt("e1", at(9, 12), "acme", 100, "gpt-4"))
    sdk.events.ingest_events(
        [
            prompt("e2", at(10, 7, 59), "acme", 50, "mini"),  # Mar 9 23:59 in Los Angeles
            prompt("e3", at(10, 8), "beta", "25.5", "gpt-4"),  # Mar 10 00:00 in Los Angeles
            prompt("e4", at(11, 6, 30), "acme", 10, "gpt-4"),  # Mar 10 23:30 PDT
        ]
    )
    sdk.events.ingest_events_json(prompt("e5", at(11, 7), "acme", 1, "gpt-4"))
    sdk.events.ingest_events_json([prompt("e6", at(11, 8), "beta", "n/a", "gpt-4")])
    sdk.events.ingest_events([prompt("e1", at(9, 12), "acme", 100, "gpt-4")])  # a retry
    return sdk


def test_meter_lifecycle(sdk: Client) -> None:
    created = sdk.meters.create(
        MeterCreate(slug="prompts", aggregation="COUNT", event_type="prompt")
    )
    assert (created.slug, created.name, created.aggregation) == ("prompts", "prompts", "COUNT")
    assert sdk.meters.get("prompts").id == created.id
    assert sdk.meters.get(created.id).slug == "prompts"
    with pytest.raises(ResourceExistsError):
        sdk.meters.create(MeterCreate(slug="prompts", aggregation="COUNT", event_type="prompt"))
    updated = sdk.meters.update(
        "prompts", MeterUpdate(name="Prompts", group_by={"model": "$.model"})
    )
    assert (updated.name, updated.group_by) == ("Prompts", {"model": "$.model"})
    assert [m.slug for m in sdk.meters.list()] == ["prompts"]
    sdk.meters.delete("prompts")
    assert sdk.meters.list() == []
    assert [m.slug for m in sdk.meters.list(include_deleted=True)] == ["prompts"]
    assert sdk.meters.get(created.id).deleted_at is not None
    with pytest.raises(ResourceNotFoundError):
        sdk.meters.get("nothing")
    with pytest.raises(HttpResponseError) as raised:
        sdk.meters.create(MeterCreate(slug="bad", aggregation="SUM", event_type="prompt"))
    assert raised.value.status_code == 400


def test_query_json_windows_zones_subjects_and_groups(metered: Client) -> None:
    total = metered.meters.query_json("tokens")
    assert [(row.value, row.subject, row.group_by) for row in total.data] == [(186.5, None, {})]
    daily = metered.meters.query_json(
        "tokens",
        from_parameter=at(9),
        to=at(12),
        window_size="DAY",
        window_time_zone="America/Los_Angeles",
    )
    assert daily.window_size == "DAY"
    assert [(r.window_start, r.window_end, r.value) for r in daily.data] == [
        (at(9, 8), at(10, 8), 150.0),
        # March 10 in Los Angeles lasts 23 hours.
        (at(10, 8), at(11, 7), 35.5),
        (at(11, 7), at(12, 7), 1.0),
    ]
    per_subject = metered.meters.query_json("tokens", subject=["acme", "beta"])
    assert sorted((r.subject, r.value) for r in per_subject.data) == [
        ("acme", 161.0),
        ("beta", 25.5),
    ]
    per_model = metered.meters.query_json("tokens", group_by=["model"])
    assert sorted((r.group_by["model"], r.value) for r in per_model.data) == [
        ("gpt-4", 136.5),
        ("mini", 50.0),
    ]
    gpt = metered.meters.query_json("tokens", filter_group_by={"model": "gpt-4"})
    assert [r.value for r in gpt.data] == [136.5]
    # The SDK sends these as JSON (plain dicts; its FilterString models do not serialise).
    not_gpt = metered.meters.query_json(
        "tokens", advanced_meter_group_by_filters={"model": {"$nlike": "gpt%"}}
    )
    assert [r.value for r in not_gpt.data] == [50.0]


def test_query_post_and_csv(metered: Client) -> None:
    result = metered.meters.query(
        "tokens",
        MeterQueryRequest(
            from_property=at(9),
            to=at(11),
            window_size="HOUR",
            group_by=["subject"],
            filter_group_by={"model": ["gpt-4"]},
        ),
    )
    assert [(r.window_start, r.subject, r.value) for r in result.data] == [
        (at(9, 12), "acme", 100.0),
        (at(10, 8), "beta", 25.5),
    ]
    csv = metered.meters.query_csv("tokens", window_size="DAY", group_by=["model"])
    assert csv.splitlines() == [
        "window_start,window_end,model,value",
        "2024-03-09T00:00:00Z,2024-03-10T00:00:00Z,gpt-4,100.000000",
        "2024-03-10T00:00:00Z,2024-03-11T00:00:00Z,gpt-4,25.500000",
        "2024-03-10T00:00:00Z,2024-03-11T00:00:00Z,mini,50.000000",
        # UTC days this time: e4 (Mar 11 06:30) and e5 (Mar 11 07:00) share March 11.
        "2024-03-11T00:00:00Z,2024-03-12T00:00:00Z,gpt-4,11.000000",
    ]
    assert metered.meters.query_csv_post("tokens").splitlines()[1].endswith(",186.500000")


def test_subjects_group_values_and_events(metered: Client) -> None:
    assert metered.meters.list_subjects("tokens") == ["acme", "beta"]
    values = metered.meters.list_group_by_values("tokens", "model", from_parameter=at(1))
    assert values == ["gpt-4", "mini"]
    events = metered.events.list(limit=10)
    assert [e.event.id for e in events] == ["e6", "e5", "e4", "e3", "e2", "e1"]
    invalid = events[0]
    assert invalid.validation_error == (
        "meter tokens: value property '$.tokens' is the string 'n/a', not a number"
    )
    assert invalid.event.specversion == "1.0"
    assert invalid.event.time == at(11, 8)
    assert all(e.validation_error is None for e in events[1:])
    assert [e.event.id for e in metered.events.list(subject="bet", from_parameter=at(10))] == [
        "e6",
        "e3",
    ]


def test_a_bad_batch_is_refused_whole(sdk: Client) -> None:
    with pytest.raises(HttpResponseError) as raised:
        sdk.events.ingest_events(
            [
                prompt("ok", at(9), "acme", 1, "gpt-4"),
                Event(id="bad", source="sdk-test", type="prompt", subject=""),
            ]
        )
    assert raised.value.status_code == 400
    assert sdk.events.list() == []
