"""Notification channels and rules over HTTP: OpenMeter's shapes, paging, soft delete, errors."""

from __future__ import annotations

import base64
from typing import Any

from fastapi.testclient import TestClient

from tests.api.helpers import setup_catalogue
from tests.api.problems import problem, problem_fields

CHANNELS = "/api/v1/notification/channels"
RULES = "/api/v1/notification/rules"


def make_channel(client: TestClient, **fields: Any) -> dict[str, Any]:
    body = {"type": "WEBHOOK", "name": "ops", "url": "http://127.0.0.1:18799/hook", **fields}
    response = client.post(CHANNELS, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def make_rule(client: TestClient, channel_id: str, **fields: Any) -> dict[str, Any]:
    body = {
        "type": "entitlements.balance.threshold",
        "name": "80 percent",
        "channels": [channel_id],
        "thresholds": [{"value": 80, "type": "usage_percentage"}],
        **fields,
    }
    response = client.post(RULES, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_channel_round_trip_generates_a_secret_and_keeps_it_on_put(client: TestClient) -> None:
    created = make_channel(client, customHeaders={"X-Team": "billing"}, metadata={"env": "t"})
    secret = created["signingSecret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert created["type"] == "WEBHOOK" and created["disabled"] is False
    assert created["customHeaders"] == {"X-Team": "billing"}
    assert created["metadata"] == {"env": "t"}
    assert "deletedAt" not in created

    fetched = client.get(f"{CHANNELS}/{created['id']}").json()
    assert fetched == created

    put = client.put(
        f"{CHANNELS}/{created['id']}",
        json={"type": "WEBHOOK", "name": "renamed", "url": "https://example.com/h"},
    ).json()
    assert put["name"] == "renamed" and put["url"] == "https://example.com/h"
    assert put["signingSecret"] == secret
    assert put["customHeaders"] == {}
    assert put["createdAt"] == created["createdAt"]

    rotated = "whsec_" + base64.b64encode(b"k" * 32).decode()
    again = client.put(
        f"{CHANNELS}/{created['id']}",
        json={
            "type": "WEBHOOK",
            "name": "r",
            "url": "https://example.com/h",
            "signingSecret": rotated,
        },
    ).json()
    assert again["signingSecret"] == rotated


def test_channel_list_pages_and_hides_disabled_and_deleted(client: TestClient) -> None:
    first = make_channel(client, name="a")
    second = make_channel(client, name="b", disabled=True)
    third = make_channel(client, name="c")
    assert client.delete(f"{CHANNELS}/{third['id']}").status_code == 204

    listed = client.get(CHANNELS).json()
    assert [c["id"] for c in listed["items"]] == [first["id"]]
    assert (listed["page"], listed["pageSize"], listed["totalCount"]) == (1, 100, 1)

    everything = client.get(
        CHANNELS, params={"includeDisabled": "true", "includeDeleted": "true", "pageSize": 2}
    ).json()
    assert everything["totalCount"] == 3
    assert [c["id"] for c in everything["items"]] == [first["id"], second["id"]]
    page_two = client.get(
        CHANNELS,
        params={"includeDisabled": "true", "includeDeleted": "true", "pageSize": 2, "page": 2},
    ).json()
    assert [c["id"] for c in page_two["items"]] == [third["id"]]
    assert page_two["items"][0]["deletedAt"]

    descending = client.get(
        CHANNELS, params={"includeDisabled": "true", "order": "DESC", "orderBy": "createdAt"}
    ).json()
    assert [c["id"] for c in descending["items"]] == [second["id"], first["id"]]


def test_deleted_channel_is_readable_but_not_changeable(client: TestClient) -> None:
    channel = make_channel(client)
    assert client.delete(f"{CHANNELS}/{channel['id']}").status_code == 204
    assert client.get(f"{CHANNELS}/{channel['id']}").json()["deletedAt"]
    problem(client.delete(f"{CHANNELS}/{channel['id']}"), 412)
    body = {"type": "WEBHOOK", "name": "x", "url": "http://example.com"}
    problem(client.put(f"{CHANNELS}/{channel['id']}", json=body), 412)


def test_channel_errors_name_their_fields(client: TestClient) -> None:
    assert problem_fields(client.post(CHANNELS, json={"type": "WEBHOOK", "name": "x"})) == ["url"]
    assert problem_fields(
        client.post(CHANNELS, json={"type": "WEBHOOK", "name": "x", "url": "ftp://host/x"})
    ) == ["url"]
    assert problem_fields(
        client.post(CHANNELS, json={"type": "EMAIL", "name": "x", "url": "http://h/x"})
    ) == ["type"]
    assert problem_fields(
        client.post(
            CHANNELS,
            json={"type": "WEBHOOK", "name": "x", "url": "http://h", "signingSecret": "short"},
        )
    ) == ["signingSecret"]
    assert problem_fields(
        client.post(
            CHANNELS,
            json={
                "type": "WEBHOOK",
                "name": "x",
                "url": "http://h",
                "customHeaders": {"Webhook-Signature": "forged", "Bad Name": "v"},
            },
        )
    ) == ["customHeaders.Webhook-Signature", "customHeaders.Bad Name"]
    unknown = "01J8J2XYZ2N5WBYK09EDZFBSZM"
    assert problem_fields(client.get(f"{CHANNELS}/{unknown}"), 404) == ["channelId"]
    assert problem_fields(client.get(f"{CHANNELS}/not-an-id")) == ["channelId"]


def test_rule_round_trip_shows_channels_and_features_as_references(client: TestClient) -> None:
    setup_catalogue(client)
    feature = client.get("/api/v1/features/ai_tokens").json()
    channel = make_channel(client)
    rule = make_rule(
        client,
        channel["id"],
        features=["ai_tokens"],
        thresholds=[
            {"value": 80, "type": "usage_percentage"},
            {"value": 1000.5, "type": "NUMBER"},
            {"value": 0, "type": "balance_value"},
        ],
        metadata={"team": "growth"},
    )
    assert rule["type"] == "entitlements.balance.threshold"
    assert rule["channels"] == [{"id": channel["id"], "type": "WEBHOOK"}]
    assert rule["features"] == [{"id": feature["id"], "key": "ai_tokens"}]
    assert rule["thresholds"] == [
        {"value": 80, "type": "usage_percentage"},
        {"value": 1000.5, "type": "NUMBER"},
        {"value": 0, "type": "balance_value"},
    ]
    assert rule["disabled"] is False and rule["metadata"] == {"team": "growth"}
    assert client.get(f"{RULES}/{rule['id']}").json() == rule

    reset = client.post(
        RULES, json={"type": "entitlements.reset", "name": "resets", "channels": [channel["id"]]}
    ).json()
    assert reset["type"] == "entitlements.reset"
    assert "thresholds" not in reset and "features" not in reset

    put = client.put(
        f"{RULES}/{rule['id']}",
        json={
            "type": "entitlements.balance.threshold",
            "name": "renamed",
            "channels": [channel["id"]],
            "thresholds": [{"value": 50, "type": "PERCENT"}],
            "disabled": True,
        },
    ).json()
    assert put["name"] == "renamed" and put["disabled"] is True and "features" not in put
    assert put["thresholds"] == [{"value": 50, "type": "PERCENT"}]

    changed_type = client.put(
        f"{RULES}/{rule['id']}",
        json={"type": "entitlements.reset", "name": "x", "channels": [channel["id"]]},
    )
    assert problem_fields(changed_type) == ["type"]


def test_rule_list_filters_by_feature_and_channel(client: TestClient) -> None:
    setup_catalogue(client)
    feature = client.get("/api/v1/features/ai_tokens").json()
    one, two = make_channel(client, name="one"), make_channel(client, name="two")
    for_tokens = make_rule(client, one["id"], features=[feature["id"]])
    for_all = make_rule(client, two["id"])
    for_sso = make_rule(client, two["id"], features=["saml_sso"])
    disabled = make_rule(client, one["id"], disabled=True)

    def ids(**params: Any) -> list[str]:
        return [r["id"] for r in client.get(RULES, params=params).json()["items"]]

    assert ids() == [for_tokens["id"], for_all["id"], for_sso["id"]]
    assert ids(feature="ai_tokens") == [for_tokens["id"], for_all["id"]]
    assert ids(feature=feature["id"]) == [for_tokens["id"], for_all["id"]]
    assert ids(channel=one["id"]) == [for_tokens["id"]]
    assert ids(channel=one["id"], includeDisabled="true") == [for_tokens["id"], disabled["id"]]
    assert client.delete(f"{RULES}/{for_all['id']}").status_code == 204
    assert ids(channel=two["id"]) == [for_sso["id"]]
    assert ids(channel=two["id"], includeDeleted="true") == [for_all["id"], for_sso["id"]]


def test_a_channel_in_use_cannot_be_deleted(client: TestClient) -> None:
    channel = make_channel(client)
    rule = make_rule(client, channel["id"])
    assert problem_fields(client.delete(f"{CHANNELS}/{channel['id']}")) == ["channelId"]
    assert client.delete(f"{RULES}/{rule['id']}").status_code == 204
    assert client.delete(f"{CHANNELS}/{channel['id']}").status_code == 204


def test_rule_errors_name_their_fields(client: TestClient) -> None:
    setup_catalogue(client)
    channel = make_channel(client)
    unknown = "01J8J2XYZ2N5WBYK09EDZFBSZM"

    def fields(**overrides: Any) -> list[str]:
        body = {
            "type": "entitlements.balance.threshold",
            "name": "r",
            "channels": [channel["id"]],
            "thresholds": [{"value": 10, "type": "usage_value"}],
            **overrides,
        }
        return problem_fields(client.post(RULES, json=body))

    assert fields(thresholds=[]) == ["thresholds"]
    assert fields(thresholds=[{"value": 1, "type": "usage_value"}] * 11) == ["thresholds"]
    assert fields(thresholds=[{"value": 1, "type": "weird"}]) == ["thresholds.0.type"]
    assert fields(thresholds=[{"value": 0, "type": "usage_percentage"}]) == ["thresholds[0].value"]
    assert fields(thresholds=[{"value": -1, "type": "balance_value"}]) == ["thresholds[0].value"]
    assert fields(
        thresholds=[{"value": 5, "type": "usage_value"}, {"value": 5, "type": "NUMBER"}]
    ) == ["thresholds[1].value"]
    assert fields(channels=[]) == ["channels"]
    assert fields(channels=[channel["id"]] * 6) == ["channels"]
    assert fields(channels=[unknown]) == ["channels[0]"]
    assert fields(features=["no_such_feature"]) == ["features[0]"]
    assert fields(features=[]) == ["features"]
    assert fields(type="invoice.created") == ["type"]
    assert fields(thresholds=None) == ["thresholds"]
    assert problem_fields(client.get(f"{RULES}/{unknown}"), 404) == ["ruleId"]
    deleted = make_channel(client, name="gone")
    assert client.delete(f"{CHANNELS}/{deleted['id']}").status_code == 204
    assert fields(channels=[deleted["id"]]) == ["channels[0]"]


def test_read_keys_read_and_cannot_write(client: TestClient, context: Any) -> None:
    from allotment.services import api_keys

    _key, secret = api_keys.create_key(context, "read", "reader")
    channel = make_channel(client)
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get(f"{CHANNELS}/{channel['id']}", headers=headers).json()["id"] == channel["id"]
    body = {"type": "WEBHOOK", "name": "x", "url": "http://h"}
    problem(client.post(CHANNELS, json=body, headers=headers), 403)
