"""The announcement scenario (spec README steps 1-9) through the official OpenMeter Python SDK.

Every number is asserted at every step, on SQLite and PostgreSQL. Time moves with the server's
settable clock and events carry past timestamps: nothing sleeps.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from openmeter import Client
from openmeter.models import (
    CustomerCreate,
    CustomerUsageAttribution,
    EntitlementBooleanCreateInputs,
    EntitlementGrantCreateInputV2,
    EntitlementMeteredV2CreateInputs,
    EntitlementStaticCreateInputs,
    Event,
    ExpirationPeriod,
    FeatureCreateInputs,
    MeterCreate,
    RecurringPeriodCreateInput,
)

from tests.api.conftest import LiveServer

JANUARY = datetime(2024, 1, 1, tzinfo=UTC)


def _prompt(event_id: str, tokens: int, at: datetime, model: str = "gpt-4o") -> Event:
    return Event(
        id=event_id,
        source="chat-service",
        specversion="1.0",
        type="prompt",
        subject="acme",
        time=at,
        data={"tokens": tokens, "model": model},
    )


def _value(sdk: Client, at: datetime | None = None):  # type: ignore[no-untyped-def]
    return sdk.customer_entitlement_v2.get_customer_entitlement_value("acme", "ai_tokens", time=at)


def test_ten_million_tokens_a_month_with_top_up_and_month_boundary(
    sdk: Client, live_server: LiveServer
) -> None:
    clock = live_server.clock
    clock.set(datetime(2024, 1, 15, 12, 0, tzinfo=UTC))

    # 2. A meter summing tokens of prompt events, grouped by model.
    meter = sdk.meters.create(
        MeterCreate(
            slug="tokens",
            event_type="prompt",
            aggregation="SUM",
            value_property="$.tokens",
            group_by={"model": "$.model"},
        )
    )
    assert meter.slug == "tokens"

    # 3. A feature on that meter.
    feature = sdk.features.create(
        FeatureCreateInputs(key="ai_tokens", name="AI tokens", meter_slug="tokens")
    )
    assert feature.meter_slug == "tokens"

    # 4. Customer acme (subject acme) gets 10 million tokens a month.
    sdk.customers.create(
        CustomerCreate(
            key="acme",
            name="ACME Inc.",
            usage_attribution=CustomerUsageAttribution(subject_keys=["acme"]),
        )
    )
    entitlement = sdk.customer_entitlements_v2.post(
        "acme",
        EntitlementMeteredV2CreateInputs(
            type="metered",
            feature_key="ai_tokens",
            usage_period=RecurringPeriodCreateInput(interval="MONTH", anchor=JANUARY),
            issue_after_reset=10_000_000,
        ),
    )
    assert entitlement["type"] == "metered"
    assert entitlement["currentUsagePeriod"] == {
        "from": "2024-01-01T00:00:00Z",
        "to": "2024-02-01T00:00:00Z",
    }

    # 5. Access before any usage.
    value = _value(sdk)
    assert value.has_access is True
    assert value.balance == 10_000_000
    assert value.usage == 0
    assert value.overage == 0

    # 6. 9,999,000 tokens in three events, then 2,000 more: over the limit by 1,000.
    sdk.events.ingest_events(
        [
            _prompt("e1", 4_000_000, datetime(2024, 1, 3, 9, 0, tzinfo=UTC)),
            _prompt("e2", 5_000_000, datetime(2024, 1, 8, 9, 0, tzinfo=UTC), model="gpt-4o-mini"),
            _prompt("e3", 999_000, datetime(2024, 1, 10, 9, 0, tzinfo=UTC)),
        ]
    )
    value = _value(sdk)
    assert (value.balance, value.usage, value.overage, value.has_access) == (
        1_000,
        9_999_000,
        0,
        True,
    )

    sdk.events.ingest_event(_prompt("e4", 2_000, datetime(2024, 1, 14, 9, 0, tzinfo=UTC)))
    # The same event again (a client retry) counts once.
    sdk.events.ingest_event(_prompt("e4", 2_000, datetime(2024, 1, 14, 9, 0, tzinfo=UTC)))
    value = _value(sdk)
    assert (value.balance, value.usage, value.overage, value.has_access) == (
        0,
        10_001_000,
        1_000,
        False,
    )

    # 7. A top-up of 500,000 that expires in a month first pays off the 1,000 overage.
    grant = sdk.customer_entitlement_v2.create_customer_entitlement_grant(
        "acme",
        "ai_tokens",
        EntitlementGrantCreateInputV2(
            amount=500_000,
            effective_at=clock(),
            expiration=ExpirationPeriod(duration="MONTH", count=1),
        ),
    )
    assert grant.amount == 500_000
    value = _value(sdk)
    assert (value.balance, value.usage, value.overage, value.has_access) == (
        499_000,
        10_001_000,
        0,
        True,
    )
    assert value.total_available_grant_amount == 10_500_000

    # 8. At the month boundary the allowance is back at 10,000,000; the top-up (v2 grant: rolls
    #    over up to its amount) keeps its 499,000 until it expires on Feb 15 12:00.
    clock.set(datetime(2024, 2, 1, 0, 0, tzinfo=UTC))
    value = _value(sdk)
    assert (value.balance, value.usage, value.overage, value.has_access) == (10_499_000, 0, 0, True)
    clock.set(datetime(2024, 2, 20, tzinfo=UTC))
    value = _value(sdk)
    assert (value.balance, value.usage, value.overage) == (10_000_000, 0, 0)
    # The January numbers are still there when asked for a January time.
    value = _value(sdk, datetime(2024, 1, 20, tzinfo=UTC))
    assert (value.balance, value.usage, value.overage) == (499_000, 10_001_000, 0)

    # 9. SAML SSO for acme, and a static list of allowed models: both show in the access map.
    sdk.features.create(FeatureCreateInputs(key="saml_sso", name="SAML SSO"))
    sdk.features.create(FeatureCreateInputs(key="models", name="Models"))
    sdk.customer_entitlements_v2.post(
        "acme", EntitlementBooleanCreateInputs(type="boolean", feature_key="saml_sso")
    )
    config = json.dumps({"allowed": ["gpt-4o-mini"]})
    sdk.customer_entitlements_v2.post(
        "acme", EntitlementStaticCreateInputs(type="static", feature_key="models", config=config)
    )
    access = sdk.customer.get_customer_access("acme")
    assert set(access.entitlements) == {"ai_tokens", "saml_sso", "models"}
    assert access.entitlements["saml_sso"].has_access is True
    assert access.entitlements["models"].has_access is True
    assert json.loads(access.entitlements["models"].config) == {"allowed": ["gpt-4o-mini"]}
    assert access.entitlements["ai_tokens"].balance == 10_000_000

    # A feature acme has no entitlement for answers hasAccess false, not 404.
    sdk.features.create(FeatureCreateInputs(key="gpu_hours", name="GPU hours"))
    missing = sdk.customer_entitlement.get_customer_entitlement_value("acme", "gpu_hours")
    assert missing.has_access is False

    # The future: after the next boundary the allowance is back again.
    clock.advance(timedelta(days=15))
    assert _value(sdk).balance == 10_000_000
