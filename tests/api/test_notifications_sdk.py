"""Notifications through the official openmeter SDK against a live server whose own workers
evaluate and deliver: the SDK decodes channels, rules and events, and the receiver verifies."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from openmeter import Client
from openmeter.models import (
    CustomerCreate,
    CustomerUsageAttribution,
    EntitlementMeteredV2CreateInputs,
    Event,
    FeatureCreateInputs,
    MeterCreate,
    NotificationChannelWebhookCreateRequest,
    NotificationRuleBalanceThresholdCreateRequest,
    NotificationRuleBalanceThresholdValue,
    RecurringPeriodCreateInput,
)

from tests.api.conftest import LiveServer
from tests.webhook_receiver import Receiver

NOW = datetime(2024, 1, 15, 12, tzinfo=UTC)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def test_the_sdk_manages_notifications_and_the_server_delivers_them(
    sdk: Client, live_server: LiveServer, receiver: Receiver
) -> None:
    live_server.clock.set(NOW)
    sdk.meters.create(
        MeterCreate(
            slug="tokens", event_type="prompt", aggregation="SUM", value_property="$.tokens"
        )
    )
    sdk.features.create(FeatureCreateInputs(key="ai_tokens", name="AI tokens", meter_slug="tokens"))
    sdk.customers.create(
        CustomerCreate(
            key="acme",
            name="ACME",
            usage_attribution=CustomerUsageAttribution(subject_keys=["acme"]),
        )
    )
    sdk.customer_entitlements_v2.post(
        "acme",
        EntitlementMeteredV2CreateInputs(
            type="metered",
            feature_key="ai_tokens",
            usage_period=RecurringPeriodCreateInput(interval="MONTH"),
            issue_after_reset=100,
        ),
    )
    channel = sdk.notification_channels.create(
        NotificationChannelWebhookCreateRequest(type="WEBHOOK", name="hooks", url=receiver.url)
    )
    assert channel["signingSecret"].startswith("whsec_")
    receiver.secret = channel["signingSecret"]
    rule = sdk.notification_rules.create(
        NotificationRuleBalanceThresholdCreateRequest(
            type="entitlements.balance.threshold",
            name="half",
            channels=[channel["id"]],
            features=["ai_tokens"],
            thresholds=[NotificationRuleBalanceThresholdValue(value=50, type="usage_percentage")],
        )
    )
    # Unions (channel and rule types) decode as plain JSON objects in this SDK.
    assert rule["channels"][0]["id"] == channel["id"]
    assert [c["id"] for c in sdk.notification_channels.list()["items"]] == [channel["id"]]
    assert [r["id"] for r in sdk.notification_rules.list()["items"]] == [rule["id"]]

    successes_before = _webhook_attempts(live_server, "success")
    live_server.clock.set(NOW + timedelta(minutes=2))  # the event's minute has passed
    started = time.monotonic()
    sdk.events.ingest_event(
        Event(
            id="e1",
            source="sdk",
            specversion="1.0",
            type="prompt",
            subject="acme",
            time=NOW,
            data={"tokens": 60},
        )
    )
    deadline = time.monotonic() + 10
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.05)
    (delivered,) = receiver.payloads()
    # The first attempt follows the ingest at once (maintenance is woken, then the sender).
    assert time.monotonic() - started < 2
    assert delivered["data"]["threshold"] == {"value": 50, "type": "usage_percentage"}
    assert delivered["data"]["value"]["usage"] == 60

    while time.monotonic() < deadline:
        events = sdk.notification_events.list(rule=[rule["id"]])["items"]
        if events and events[0]["deliveryStatus"][0]["state"] == "SUCCESS":
            break
        time.sleep(0.05)
    (event,) = events
    assert event["id"] == delivered["id"]
    assert event["deliveryStatus"][0]["channel"]["id"] == channel["id"]
    assert event["payload"] == delivered
    assert sdk.notification_events.get(event["id"])["id"] == event["id"]
    assert _webhook_attempts(live_server, "success") == successes_before + 1


def _webhook_attempts(live_server: LiveServer, result: str) -> float:
    text = httpx.get(f"{live_server.url}/metrics").text
    line = f'allotment_webhook_attempts_total{{result="{result}"}} '
    found = [row for row in text.splitlines() if row.startswith(line)]
    return float(found[0].removeprefix(line)) if found else 0.0
