"""`allotment notifications ...` and `allotment worker`: the API's shapes with --json, plain
errors, and the worker delivering what a server left undelivered."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from allotment.api.app import create_app
from allotment.services import api_keys
from allotment.services.context import ServiceContext
from allotment.settings import Settings
from tests.api.helpers import send_usage, setup_catalogue
from tests.cli.conftest import Cli, as_json, error, ok, row
from tests.conftest import SettableClock
from tests.webhook_receiver import Receiver


@pytest.fixture
def api(context: ServiceContext) -> Iterator[TestClient]:
    """The API without its background workers: here the CLI's worker is the one delivering."""
    _key, secret = api_keys.create_key(context, "admin", "cli tests")
    settings = Settings(maintenance_interval_seconds=0, webhook_sender_enabled=False)
    app = create_app(settings, context=context)
    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def test_channels_and_rules_match_the_api(cli: Cli, api: TestClient) -> None:
    setup_catalogue(api)
    channel = as_json(
        cli(
            "notifications",
            "channels",
            "create",
            "--name",
            "ops",
            "--url",
            "https://example.com/hooks",
            "--header",
            "X-Team=billing",
            "--json",
        )
    )
    assert channel == api.get(f"/api/v1/notification/channels/{channel['id']}").json()
    rotated = "whsec_" + "B" * 43 + "="
    updated = as_json(
        cli(
            "notifications",
            "channels",
            "update",
            channel["id"],
            "--name",
            "ops",
            "--url",
            "https://example.com/v2",
            "--signing-secret",
            rotated,
            "--json",
        )
    )
    assert (updated["url"], updated["signingSecret"]) == ("https://example.com/v2", rotated)
    assert updated["customHeaders"] == {}  # a PUT: headers left out are removed
    assert updated == api.get(f"/api/v1/notification/channels/{channel['id']}").json()
    rule = as_json(
        cli(
            "notifications",
            "rules",
            "create",
            "--name",
            "eighty",
            "--channel",
            channel["id"],
            "--threshold",
            "80:usage_percentage",
            "--threshold",
            "0:balance_value",
            "--feature",
            "ai_tokens",
            "--json",
        )
    )
    (listed,) = as_json(cli("notifications", "rules", "list", "--json"))
    assert listed == rule
    assert rule == api.get(f"/api/v1/notification/rules/{rule['id']}").json()
    table = ok(cli("notifications", "rules", "list")).stdout
    assert row(table, "eighty")[1:4] == [
        "entitlements.balance.threshold",
        "80 usage_percentage, 0 balance_value",
        "ai_tokens",
    ]
    error(cli("notifications", "channels", "delete", channel["id"]), "invalid input", rule["id"])
    error(
        cli(
            "notifications",
            "rules",
            "create",
            "--name",
            "x",
            "--channel",
            channel["id"],
            "--threshold",
            "5:weird",
        ),
        "invalid input",
        "--threshold",
    )


def test_worker_delivers_what_was_left_undelivered(
    cli: Cli, api: TestClient, context: ServiceContext, clock: SettableClock, receiver: Receiver
) -> None:
    clock.set(datetime(2024, 1, 1, tzinfo=UTC))
    setup_catalogue(api)
    customer = {"key": "acme", "name": "ACME", "usageAttribution": {"subjectKeys": ["acme"]}}
    api.post("/api/v1/customers", json=customer)
    api.post(
        "/api/v2/customers/acme/entitlements",
        json={
            "type": "metered",
            "featureKey": "ai_tokens",
            "usagePeriod": {"interval": "MONTH", "anchor": "2024-01-01T00:00:00Z"},
            "issueAfterReset": 100,
        },
    )
    channel = as_json(
        cli("notifications", "channels", "create", "--name", "r", "--url", receiver.url, "--json")
    )
    receiver.secret = channel["signingSecret"]
    ok(
        cli(
            "notifications",
            "rules",
            "create",
            "--name",
            "r",
            "--channel",
            channel["id"],
            "--threshold",
            "50",
        )
    )
    clock.set(datetime(2024, 1, 2, 0, 1, tzinfo=UTC))
    send_usage(api, 60, "2024-01-02T00:00:00Z")
    assert receiver.received == []
    ok(cli("worker", "--once"))
    (payload,) = receiver.unique_payloads()
    assert payload["data"]["threshold"] == {"value": 50, "type": "usage_value"}
    (event,) = as_json(cli("notifications", "events", "list", "--json"))
    assert event["deliveryStatus"][0]["state"] == "SUCCESS"
    assert event == api.get(f"/api/v1/notification/events/{event['id']}").json()
