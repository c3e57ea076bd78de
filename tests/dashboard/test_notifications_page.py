"""The notifications page: rules with their thresholds, features and channels, and the delivery
log with each delivery's state and attempts."""

from __future__ import annotations

from decimal import Decimal

from fastapi.testclient import TestClient

from allotment.api.notification_payloads import render_payload_data
from allotment.domain.notifications import (
    ChannelDefinition,
    RuleDefinition,
    RuleType,
    Threshold,
    ThresholdType,
)
from allotment.services import notification_definitions as definitions
from allotment.services import notification_events as events
from allotment.services.context import ServiceContext
from tests.dashboard.conftest import Catalogue


def test_rules_and_the_delivery_log(
    read_ui: TestClient, context: ServiceContext, catalogue: Catalogue
) -> None:
    empty = read_ui.get("/ui/notifications")
    assert empty.status_code == 200
    assert "No notification rules yet." in empty.text
    assert "No notification events yet." in empty.text

    channel = definitions.create_channel(
        context,
        ChannelDefinition(
            name="Billing hooks",
            url="http://127.0.0.1:18799/hooks",
            custom_headers={},
            signing_secret=None,
            disabled=False,
            metadata=None,
        ),
    )
    rule = definitions.create_rule(
        context,
        RuleDefinition(
            type=RuleType.BALANCE_THRESHOLD,
            name="Running out",
            disabled=False,
            metadata=None,
            channel_ids=(channel.id,),
            features=("ai_tokens",),
            thresholds=(Threshold(value=Decimal(2_500_000), type=ThresholdType.USAGE_VALUE),),
        ),
    )
    events.send_test_event(context, rule.id, render_payload_data)

    page = read_ui.get("/ui/notifications")
    assert page.status_code == 200
    assert "Running out" in page.text
    assert "2,500,000 <code>usage_value</code>" in page.text
    assert "<code>ai_tokens</code>" in page.text
    assert "Billing hooks" in page.text
    assert (
        '<code>entitlements.balance.threshold</code> <span class="badge">test</span>' in page.text
    )
    assert "PENDING</span>\n        Billing hooks · 0 attempts" in page.text
    assert 'href="/ui/notifications" aria-current="page"' in page.text
    assert channel.signing_secret not in page.text
