"""`allotment plans ...` and `allotment subscriptions ...`: a plan file in, the API's shapes out,
and the Free -> Pro change with usage kept, checked with `allotment access`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from allotment.services.context import ServiceContext
from tests.api.plan_bodies import free_plan, pro_plan
from tests.cli.conftest import Cli
from tests.conftest import SettableClock
from tests.factories import make_customer, make_feature, make_meter, send_usage


def _catalogue(context: ServiceContext) -> None:
    make_meter(context, "tokens")
    make_feature(context, "ai_tokens")
    make_feature(context, "saml_sso", meter_slug=None)
    make_feature(context, "models", meter_slug=None)
    make_customer(context)


def test_plans_from_a_file_then_subscribe_use_and_upgrade(
    cli: Cli, context: ServiceContext, clock: SettableClock, tmp_path: Path
) -> None:
    start = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    clock.set(start)
    _catalogue(context)
    for body in (free_plan(), pro_plan()):
        path = tmp_path / f"{body['key']}.json"
        path.write_text(json.dumps(body))
        created = cli("plans", "create", "--file", str(path), "--publish", "--json")
        assert created.exit_code == 0, created.output
        document = json.loads(created.stdout)
        assert (document["key"], document["version"], document["status"]) == (
            body["key"],
            1,
            "active",
        )
        template = document["phases"][0]["rateCards"][0]["entitlementTemplate"]
        sent = body["phases"][0]["rateCards"][0]["entitlementTemplate"]
        assert template["issueAfterReset"] == sent["issueAfterReset"]
    listed = cli("plans", "list")
    assert listed.exit_code == 0, listed.output
    assert "free" in listed.stdout and "pro" in listed.stdout and "active" in listed.stdout

    subscribed = cli("subscriptions", "create", "--customer", "acme", "--plan", "free", "--json")
    assert subscribed.exit_code == 0, subscribed.output
    subscription = json.loads(subscribed.stdout)
    assert subscription["plan"]["key"] == "free"
    assert subscription["status"] == "active"

    send_usage(context, 800, start + timedelta(days=1))
    clock.set(start + timedelta(days=3))
    changed = cli("subscriptions", "change", subscription["id"], "--plan", "pro", "--json")
    assert changed.exit_code == 0, changed.output
    pro = json.loads(changed.stdout)
    access = cli("access", "acme", "--json")
    assert access.exit_code == 0, access.output
    entitlements = json.loads(access.stdout)["entitlements"]
    assert entitlements["ai_tokens"]["balance"] == 9_999_200
    assert entitlements["saml_sso"]["hasAccess"] is True

    shown = cli("subscriptions", "get", pro["id"])
    assert shown.exit_code == 0, shown.output
    assert "ai_tokens" in shown.stdout and "saml_sso" in shown.stdout
    history = cli("subscriptions", "list", "acme", "--json")
    assert [s["status"] for s in json.loads(history.stdout)] == ["inactive", "active"]

    canceled = cli("subscriptions", "cancel", pro["id"], "--timing", "next_billing_cycle", "--json")
    assert canceled.exit_code == 0, canceled.output
    assert json.loads(canceled.stdout)["activeTo"] == "2024-06-01T09:00:00Z"
    restored = cli("subscriptions", "unschedule-cancelation", pro["id"], "--json")
    assert "activeTo" not in json.loads(restored.stdout)


def test_errors_are_plain_words(cli: Cli, context: ServiceContext, tmp_path: Path) -> None:
    _catalogue(context)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"key": "x", "name": "X", "billingCadence": "P1M"}))
    result = cli("plans", "create", "--file", str(broken))
    assert result.exit_code == 1
    assert "the plan has no phases" in result.stderr
    not_json = tmp_path / "not.json"
    not_json.write_text("{")
    assert "not JSON" in cli("plans", "create", "--file", str(not_json)).stderr
    missing = cli("subscriptions", "create", "--customer", "acme", "--plan", "nothing")
    assert missing.exit_code == 1
    assert "plan not found: nothing" in missing.stderr
    bad_time = cli("subscriptions", "cancel", "01J00000000000000000000000", "--timing", "soon")
    assert bad_time.exit_code == 1
    assert "--timing" in bad_time.stderr
