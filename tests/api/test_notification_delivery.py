"""Thresholds and resets end to end: usage and grants over HTTP, the evaluator, signed webhooks
to a real receiver that verifies them with `standardwebhooks`, and the events API."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from allotment.api.app import create_app
from allotment.api.notification_payloads import render_payload_data
from allotment.services.context import ServiceContext
from allotment.services.maintenance import run_until_idle
from allotment.services.notification_sender import Sender
from allotment.settings import Settings
from tests.api.helpers import send_usage, setup_catalogue
from tests.api.problems import problem_fields
from tests.conftest import SettableClock
from tests.openmeter_schema import problems
from tests.webhook_receiver import Receiver

CHANNELS = "/api/v1/notification/channels"
RULES = "/api/v1/notification/rules"
EVENTS = "/api/v1/notification/events"


@pytest.fixture
def quiet(context: ServiceContext, admin_key: str) -> Iterator[TestClient]:
    """The app without its background workers: tests run maintenance and the sender by hand."""
    settings = Settings(maintenance_interval_seconds=0, webhook_sender_enabled=False)
    app = create_app(settings, context=context)
    with TestClient(app, headers={"Authorization": f"Bearer {admin_key}"}) as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def deliver(context: ServiceContext) -> None:
    """What the server's workers do: evaluate, then send whatever is due."""
    run_until_idle(context, render_payload_data)
    sender = Sender(context, timeout=5)
    try:
        sender.send_until_idle()
    finally:
        sender.close()


def customer_with_monthly_tokens(client: TestClient, allowance: int = 1000) -> dict[str, Any]:
    setup_catalogue(client)
    customer = {"key": "acme", "name": "ACME", "usageAttribution": {"subjectKeys": ["acme"]}}
    assert client.post("/api/v1/customers", json=customer).status_code == 201
    entitlement = {
        "type": "metered",
        "featureKey": "ai_tokens",
        "usagePeriod": {"interval": "MONTH", "anchor": "2024-01-01T00:00:00Z"},
        "measureUsageFrom": "2024-01-01T00:00:00Z",
        "issueAfterReset": allowance,
    }
    response = client.post("/api/v2/customers/acme/entitlements", json=entitlement)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def channel_for(client: TestClient, receiver: Receiver) -> dict[str, Any]:
    body = {
        "type": "WEBHOOK",
        "name": "receiver",
        "url": receiver.url,
        "customHeaders": {"X-Tenant": "acme"},
    }
    channel: dict[str, Any] = client.post(CHANNELS, json=body).json()
    receiver.secret = channel["signingSecret"]
    return channel


def thresholds_of(payloads: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(p["data"]["threshold"]["type"], p["data"]["threshold"]["value"]) for p in payloads]


def at(day: int, hour: int = 0, month: int = 1) -> datetime:
    return datetime(2024, month, day, hour, tzinfo=UTC)


def use(client: TestClient, clock: SettableClock, tokens: int, when: datetime) -> None:
    clock.set(when + timedelta(minutes=1))
    send_usage(client, tokens, when.isoformat().replace("+00:00", "Z"))


def test_a_month_of_usage_fires_each_threshold_once_in_order_with_exact_values(
    quiet: TestClient, context: ServiceContext, clock: SettableClock, receiver: Receiver
) -> None:
    clock.set(at(1))
    customer_with_monthly_tokens(quiet)
    channel = channel_for(quiet, receiver)
    rule = quiet.post(
        RULES,
        json={
            "type": "entitlements.balance.threshold",
            "name": "limits",
            "channels": [channel["id"]],
            "features": ["ai_tokens"],
            "thresholds": [
                {"value": 50, "type": "usage_percentage"},
                {"value": 90, "type": "PERCENT"},
                {"value": 0, "type": "balance_value"},
                {"value": 1000, "type": "usage_value"},
            ],
        },
    ).json()

    use(quiet, clock, 300, at(2))
    deliver(context)
    assert receiver.payloads() == []

    use(quiet, clock, 300, at(5))  # 600: past 50 %
    deliver(context)
    use(quiet, clock, 100, at(8))  # 700: nothing new
    deliver(context)
    use(quiet, clock, 250, at(12))  # 950: past 90 %
    deliver(context)
    use(quiet, clock, 50, at(15))  # 1000: balance 0 (usage is not > 1000)
    deliver(context)
    use(quiet, clock, 100, at(16))  # 1100: usage > 1000
    deliver(context)
    assert thresholds_of(receiver.payloads()) == [
        ("usage_percentage", 50),
        ("PERCENT", 90),
        ("balance_value", 0),
        ("usage_value", 1000),
    ]

    # A top-up drops usage under 90 % (1100 of 1500 = 73 %), usage climbs back over it: the
    # thresholds of this period fired already and do not fire again.
    clock.set(at(17))
    grant = {"amount": 500, "effectiveAt": "2024-01-17T00:00:00Z"}
    assert (
        quiet.post("/api/v2/customers/acme/entitlements/ai_tokens/grants", json=grant).status_code
        == 201
    )
    deliver(context)
    use(quiet, clock, 350, at(20))  # 1450 of 1500: 96.7 %
    deliver(context)
    assert len(receiver.payloads()) == 4

    last = receiver.payloads()[-1]
    assert last["type"] == "entitlements.balance.threshold"
    assert last["data"]["value"] == {
        "hasAccess": False,
        "balance": 0,
        "usage": 1100,
        "overage": 100,
        "totalAvailableGrantAmount": 1000,
    }
    assert last["data"]["entitlement"]["featureKey"] == "ai_tokens"
    assert last["data"]["entitlement"]["subjectKey"] == "acme"
    assert last["data"]["entitlement"]["currentUsagePeriod"] == {
        "from": "2024-01-01T00:00:00Z",
        "to": "2024-02-01T00:00:00Z",
    }
    assert last["data"]["feature"]["key"] == "ai_tokens"
    assert last["data"]["customer"]["key"] == "acme"
    assert last["data"]["subject"]["key"] == "acme"
    headers = receiver.received[-1].headers
    assert headers["x-tenant"] == "acme"
    assert headers["webhook-id"].startswith("msg_")

    # A new period starts fresh: 50 % fires again.
    use(quiet, clock, 600, at(3, month=2))
    deliver(context)
    assert thresholds_of(receiver.payloads())[-1] == ("usage_percentage", 50)
    assert len(receiver.payloads()) == 5
    assert receiver.refused == []

    # The events API shows the same events, each delivered once, newest last, in OpenMeter's
    # shapes.
    listed = quiet.get(EVENTS, params={"rule": rule["id"]}).json()
    assert problems(listed, "NotificationEventPaginatedResponse") == []
    assert problems(quiet.get(RULES).json(), "NotificationRulePaginatedResponse") == []
    assert problems(quiet.get(CHANNELS).json(), "NotificationChannelPaginatedResponse") == []
    assert listed["totalCount"] == 5
    assert [e["payload"] for e in listed["items"]] == receiver.payloads()
    first = listed["items"][0]
    assert first["rule"]["id"] == rule["id"]
    (status,) = first["deliveryStatus"]
    assert status["state"] == "SUCCESS"
    assert status["channel"] == {"id": channel["id"], "type": "WEBHOOK"}
    (attempt,) = status["attempts"]
    assert attempt["state"] == "SUCCESS"
    assert attempt["response"]["statusCode"] == 200
    assert attempt["response"]["body"] == "ok"
    assert attempt["response"]["url"] == receiver.url
    assert quiet.get(f"{EVENTS}/{first['id']}").json() == first


def test_a_reset_rule_fires_at_the_period_boundary_and_on_a_manual_reset(
    quiet: TestClient, context: ServiceContext, clock: SettableClock, receiver: Receiver
) -> None:
    clock.set(at(1))
    customer_with_monthly_tokens(quiet)
    channel = channel_for(quiet, receiver)
    quiet.post(
        RULES, json={"type": "entitlements.reset", "name": "resets", "channels": [channel["id"]]}
    )
    use(quiet, clock, 100, at(10))
    deliver(context)
    assert receiver.payloads() == []  # the first period is no reset

    clock.set(at(1, 0, month=2) + timedelta(minutes=5))  # nobody wrote anything
    deliver(context)
    deliver(context)
    (boundary,) = receiver.payloads()
    assert boundary["type"] == "entitlements.reset"
    assert problems(boundary, "NotificationEventResetPayload") == []
    assert boundary["data"]["value"]["usage"] == 0
    assert boundary["data"]["entitlement"]["currentUsagePeriod"]["from"] == "2024-02-01T00:00:00Z"
    assert "threshold" not in boundary["data"]

    clock.set(at(10, 12, month=2))
    assert (
        quiet.post("/api/v2/customers/acme/entitlements/ai_tokens/reset", json={}).status_code
        == 204
    )
    deliver(context)
    assert [p["type"] for p in receiver.payloads()] == ["entitlements.reset"] * 2
    manual = receiver.payloads()[-1]
    assert manual["data"]["entitlement"]["currentUsagePeriod"]["from"] == "2024-02-10T12:00:00Z"


def test_a_receiver_that_is_down_gets_every_event_once_it_is_back(
    quiet: TestClient, context: ServiceContext, clock: SettableClock, receiver: Receiver
) -> None:
    clock.set(at(1))
    customer_with_monthly_tokens(quiet)
    channel = channel_for(quiet, receiver)
    quiet.post(
        RULES,
        json={
            "type": "entitlements.balance.threshold",
            "name": "limits",
            "channels": [channel["id"]],
            "thresholds": [
                {"value": 100, "type": "usage_value"},
                {"value": 500, "type": "usage_value"},
            ],
        },
    )
    receiver.status = 500
    use(quiet, clock, 200, at(2))
    deliver(context)
    (event,) = quiet.get(EVENTS).json()["items"]
    status = event["deliveryStatus"][0]
    assert status["state"] == "PENDING"
    assert status["attempts"][0]["response"]["statusCode"] == 500
    assert status["attempts"][0]["response"]["body"] == "down"
    assert status["reason"] == "the receiver answered 500"
    # The second attempt is due 5 s after the first failed.
    assert status["nextAttempt"] == "2024-01-02T00:01:05Z"
    use(quiet, clock, 400, at(3))
    deliver(context)
    events = quiet.get(EVENTS).json()["items"]
    assert [len(e["deliveryStatus"][0]["attempts"]) for e in events] == [2, 1]
    assert events[0]["deliveryStatus"][0]["nextAttempt"] == "2024-01-03T00:06:00Z"

    receiver.status = 200
    clock.advance(timedelta(hours=1))
    deliver(context)
    # Retries of the first event fall due after the second's first attempt: order is not kept.
    assert sorted(thresholds_of(receiver.unique_payloads())) == [
        ("usage_value", 100),
        ("usage_value", 500),
    ]
    events = quiet.get(EVENTS).json()["items"]
    assert [e["deliveryStatus"][0]["state"] for e in events] == ["SUCCESS", "SUCCESS"]


def test_delivery_gives_up_after_the_schedule_and_resend_keeps_the_webhook_id(
    quiet: TestClient, context: ServiceContext, clock: SettableClock, receiver: Receiver
) -> None:
    clock.set(at(1))
    customer_with_monthly_tokens(quiet)
    channel = channel_for(quiet, receiver)
    quiet.post(
        RULES,
        json={
            "type": "entitlements.balance.threshold",
            "name": "limits",
            "channels": [channel["id"]],
            "thresholds": [{"value": 10, "type": "usage_value"}],
        },
    )
    receiver.status = 503
    use(quiet, clock, 20, at(2))
    for _ in range(12):
        deliver(context)
        clock.advance(timedelta(hours=11))
    (event,) = quiet.get(EVENTS).json()["items"]
    status = event["deliveryStatus"][0]
    assert status["state"] == "FAILED"
    # Immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h later: 8 attempts.
    assert len(status["attempts"]) == 8
    assert "nextAttempt" not in status

    receiver.status = 200
    assert problem_fields(
        quiet.post(
            f"{EVENTS}/{event['id']}/resend", json={"channels": ["01J8J2XYZ2N5WBYK09EDZFBSZM"]}
        )
    ) == ["channels[0]"]
    assert quiet.post(f"{EVENTS}/{event['id']}/resend", json={}).status_code == 202
    assert quiet.get(f"{EVENTS}/{event['id']}").json()["deliveryStatus"][0]["state"] == "RESENDING"
    deliver(context)
    assert len(receiver.received) == 1
    assert quiet.post(f"{EVENTS}/{event['id']}/resend", json={}).status_code == 202
    deliver(context)
    first, second = receiver.received
    assert first.webhook_id == second.webhook_id
    assert len(receiver.unique_payloads()) == 1
    assert quiet.get(f"{EVENTS}/{event['id']}").json()["deliveryStatus"][0]["state"] == "SUCCESS"


def test_a_rotated_secret_fails_verification_with_the_old_one(
    quiet: TestClient, context: ServiceContext, clock: SettableClock, receiver: Receiver
) -> None:
    clock.set(at(1))
    customer_with_monthly_tokens(quiet)
    channel = channel_for(quiet, receiver)
    rule = quiet.post(
        RULES,
        json={
            "type": "entitlements.balance.threshold",
            "name": "limits",
            "channels": [channel["id"]],
            "thresholds": [{"value": 10, "type": "usage_value"}],
        },
    ).json()
    old = receiver.secret
    rotated = quiet.put(
        f"{CHANNELS}/{channel['id']}",
        json={
            "type": "WEBHOOK",
            "name": "receiver",
            "url": receiver.url,
            "signingSecret": "whsec_" + "A" * 43 + "=",
        },
    ).json()
    assert rotated["signingSecret"] != old
    clock.set(at(2))
    test_event = quiet.post(f"{RULES}/{rule['id']}/test")
    assert test_event.status_code == 201, test_event.text
    assert test_event.json()["annotations"] == {"notification.test": True}
    deliver(context)
    assert receiver.received == [] and receiver.refused == ["No matching signature found"]

    receiver.secret = rotated["signingSecret"]
    assert quiet.post(f"{EVENTS}/{test_event.json()['id']}/resend", json={}).status_code == 202
    deliver(context)
    (received,) = receiver.payloads()
    assert received["id"] == test_event.json()["id"]
    assert received["data"]["threshold"] == {"value": 10, "type": "usage_value"}


def test_event_list_filters_and_errors(
    quiet: TestClient, context: ServiceContext, clock: SettableClock, receiver: Receiver
) -> None:
    clock.set(at(1))
    customer_with_monthly_tokens(quiet)
    channel = channel_for(quiet, receiver)
    rule = quiet.post(
        RULES,
        json={
            "type": "entitlements.balance.threshold",
            "name": "limits",
            "channels": [channel["id"]],
            "thresholds": [{"value": 10, "type": "usage_value"}],
        },
    ).json()
    use(quiet, clock, 20, at(2))
    deliver(context)

    def count(**params: Any) -> int:
        response = quiet.get(EVENTS, params=params)
        assert response.status_code == 200, response.text
        total: int = response.json()["totalCount"]
        return total

    assert count() == 1
    assert count(feature="ai_tokens") == 1 and count(feature="saml_sso") == 0
    assert count(subject="acme") == 1 and count(subject="other") == 0
    assert count(channel=channel["id"]) == 1 and count(channel="01J8J2XYZ2N5WBYK09EDZFBSZM") == 0
    assert count(rule=rule["id"]) == 1
    assert count(**{"from": "2024-01-03T00:00:00Z"}) == 0
    assert count(to="2024-01-03T00:00:00Z") == 1
    assert problem_fields(quiet.get(EVENTS, params={"rule": "nope"})) == ["rule.0"]
    assert problem_fields(
        quiet.get(EVENTS, params={"from": "2024-01-03T00:00:00Z", "to": "2024-01-02T00:00:00Z"})
    ) == ["to"]
    assert problem_fields(quiet.get(f"{EVENTS}/01J8J2XYZ2N5WBYK09EDZFBSZM"), 404) == ["eventId"]


def test_two_senders_at_once_make_each_attempt_once(
    quiet: TestClient, context: ServiceContext, clock: SettableClock, receiver: Receiver
) -> None:
    clock.set(at(1))
    customer_with_monthly_tokens(quiet)
    channel = channel_for(quiet, receiver)
    rule = quiet.post(
        RULES,
        json={
            "type": "entitlements.balance.threshold",
            "name": "limits",
            "channels": [channel["id"]],
            "thresholds": [{"value": 10, "type": "usage_value"}],
        },
    ).json()
    for _ in range(30):
        assert quiet.post(f"{RULES}/{rule['id']}/test").status_code == 201
    senders = [Sender(context, timeout=5), Sender(context, timeout=5)]
    threads = [threading.Thread(target=s.send_until_idle) for s in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for sender in senders:
        sender.close()
    assert len(receiver.received) == 30
    assert len({r.webhook_id for r in receiver.received}) == 30
    states = {
        e["deliveryStatus"][0]["state"]
        for e in quiet.get(EVENTS, params={"pageSize": 100}).json()["items"]
    }
    assert states == {"SUCCESS"}


def test_slow_and_chatty_receivers_fail_attempts_without_holding_the_sender(
    quiet: TestClient, context: ServiceContext, clock: SettableClock, receiver: Receiver
) -> None:
    clock.set(at(1))
    customer_with_monthly_tokens(quiet)
    channel = channel_for(quiet, receiver)
    rule = quiet.post(
        RULES,
        json={
            "type": "entitlements.balance.threshold",
            "name": "limits",
            "channels": [channel["id"]],
            "thresholds": [{"value": 10, "type": "usage_value"}],
        },
    ).json()
    event = quiet.post(f"{RULES}/{rule['id']}/test").json()
    receiver.delay = 2.0
    sender = Sender(context, timeout=0.5)
    try:
        sender.send_until_idle()
        status = quiet.get(f"{EVENTS}/{event['id']}").json()["deliveryStatus"][0]
        assert status["state"] == "PENDING"
        assert status["reason"] == "request failed: ReadTimeout"
        assert "statusCode" not in status["attempts"][0]["response"]

        receiver.delay = 0
        receiver.status = 500
        receiver.answer = b"x" * 100_000
        clock.advance(timedelta(seconds=5))
        sender.send_until_idle()
    finally:
        sender.close()
    status = quiet.get(f"{EVENTS}/{event['id']}").json()["deliveryStatus"][0]
    attempt = status["attempts"][1]["response"]
    assert (attempt["statusCode"], attempt["body"]) == (500, "x" * 1024)


def test_a_rule_test_without_entitlements_sends_made_up_data(
    quiet: TestClient, context: ServiceContext, clock: SettableClock, receiver: Receiver
) -> None:
    clock.set(at(1))
    channel = channel_for(quiet, receiver)
    rule = quiet.post(
        RULES,
        json={"type": "entitlements.reset", "name": "resets", "channels": [channel["id"]]},
    ).json()
    event = quiet.post(f"{RULES}/{rule['id']}/test")
    assert event.status_code == 201, event.text
    assert problems(event.json(), "NotificationEvent") == []
    deliver(context)
    (payload,) = receiver.payloads()
    assert payload["type"] == "entitlements.reset"
    assert payload["data"]["customer"]["key"] == "example_customer"
    assert payload["data"]["value"]["usage"] == 75
    assert problems(payload, "NotificationEventResetPayload") == []
    deleted = quiet.delete(f"{RULES}/{rule['id']}")
    assert deleted.status_code == 204
    assert problem_fields(quiet.post(f"{RULES}/{rule['id']}/test"), 412) == ["ruleId"]
