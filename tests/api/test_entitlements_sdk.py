"""The v2 customer-keyed entitlement and grant routes through the official openmeter SDK, which
is the wire oracle: it must decode every response and accept every status, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from corehttp.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from openmeter import Client
from openmeter.models import (
    CustomerCreate,
    CustomerUsageAttribution,
    EntitlementBooleanCreateInputs,
    EntitlementGrantCreateInputV2,
    EntitlementMeteredV2CreateInputs,
    Event,
    ExpirationPeriod,
    FeatureCreateInputs,
    IssueAfterReset,
    MeterCreate,
    RecurringPeriodCreateInput,
    ResetEntitlementUsageInput,
)

from tests.api.conftest import LiveServer

JANUARY = datetime(2024, 1, 1, tzinfo=UTC)
NOW = datetime(2024, 1, 15, 12, tzinfo=UTC)


def _tokens(sdk: Client, event_id: str, tokens: int, at: datetime, subject: str = "acme") -> None:
    sdk.events.ingest_event(
        Event(
            id=event_id,
            source="sdk-test",
            specversion="1.0",
            type="prompt",
            subject=subject,
            time=at,
            data={"tokens": tokens, "model": "gpt-4o"},
        )
    )


@pytest.fixture
def acme(sdk: Client, live_server: LiveServer) -> Client:
    live_server.clock.set(NOW)
    sdk.meters.create(
        MeterCreate(
            slug="tokens",
            event_type="prompt",
            aggregation="SUM",
            value_property="$.tokens",
            group_by={"model": "$.model"},
        )
    )
    sdk.features.create(FeatureCreateInputs(key="ai_tokens", name="AI tokens", meter_slug="tokens"))
    sdk.features.create(FeatureCreateInputs(key="saml_sso", name="SAML SSO"))
    for key in ("acme", "globex"):
        sdk.customers.create(
            CustomerCreate(
                key=key, name=key, usage_attribution=CustomerUsageAttribution(subject_keys=[key])
            )
        )
    return sdk


def _metered(**fields: object) -> EntitlementMeteredV2CreateInputs:
    return EntitlementMeteredV2CreateInputs(
        type="metered",
        feature_key="ai_tokens",
        usage_period=RecurringPeriodCreateInput(interval="MONTH", anchor=JANUARY),
        **fields,
    )


def test_customer_entitlements_crud(acme: Client, live_server: LiveServer) -> None:
    created = acme.customer_entitlements_v2.post(
        "acme", _metered(issue=IssueAfterReset(amount=1000, priority=2))
    )
    customer = acme.customers.get("acme")
    assert created["customerId"] == customer.id
    assert created["customerKey"] == "acme"
    assert created["issue"] == {"amount": 1000, "priority": 2}
    assert (created["issueAfterReset"], created["issueAfterResetPriority"]) == (1000, 2)
    assert "subjectKey" not in created
    with pytest.raises(ResourceExistsError):
        acme.customer_entitlements_v2.post("acme", _metered())

    boolean = acme.customer_entitlements_v2.post(
        "acme", EntitlementBooleanCreateInputs(type="boolean", feature_key="saml_sso")
    )
    listed = acme.customer_entitlements_v2.list("acme")
    assert (listed.total_count, listed.page, listed.page_size) == (2, 1, 100)
    assert {item["type"] for item in listed["items"]} == {"metered", "boolean"}
    assert acme.customer_entitlements_v2.get("acme", "saml_sso")["id"] == boolean["id"]
    assert (
        acme.customer_entitlements_v2.get(customer.id, created["id"])["featureKey"] == "ai_tokens"
    )

    live_server.clock.set(datetime(2024, 1, 16, tzinfo=UTC))
    replaced = acme.customer_entitlements_v2.override(
        "acme", "ai_tokens", _metered(issue_after_reset=5)
    )
    assert replaced["measureUsageFrom"] == "2024-01-16T00:00:00Z"
    acme.customer_entitlements_v2.delete("acme", "saml_sso")
    with pytest.raises(ResourceNotFoundError):
        acme.customer_entitlements_v2.get("acme", "saml_sso")
    everything = acme.customer_entitlements_v2.list("acme", include_deleted=True)
    assert everything.total_count == 3

    assert acme.entitlements_v2.get(replaced["id"])["issueAfterReset"] == 5
    globally = acme.entitlements_v2.list(customer_keys=["acme"], entitlement_type=["metered"])
    assert [item["id"] for item in globally["items"]] == [replaced["id"]]
    by_offset = acme.entitlements_v2.list(limit=10)
    assert (by_offset.page, by_offset.page_size, by_offset.total_count) == (0, 0, 1)
    v1_list = acme.entitlements.list(subject=["acme"])
    assert [item["subjectKey"] for item in v1_list] == ["acme"]


def test_grants_value_history_and_reset(acme: Client, live_server: LiveServer) -> None:
    acme.customer_entitlements_v2.post("acme", _metered(issue_after_reset=1000))
    grant = acme.customer_entitlement_v2.create_customer_entitlement_grant(
        "acme",
        "ai_tokens",
        EntitlementGrantCreateInputV2(
            amount=500, effective_at=NOW, expiration=ExpirationPeriod(duration="DAY", count=30)
        ),
    )
    assert (grant.max_rollover_amount, grant.min_rollover_amount) == (500, 0)
    assert grant.expires_at == datetime(2024, 2, 14, 12, tzinfo=UTC)
    _tokens(acme, "t1", 1200, datetime(2024, 1, 15, 12, 30, tzinfo=UTC))
    live_server.clock.set(datetime(2024, 1, 15, 14, tzinfo=UTC))

    value = acme.customer_entitlement_v2.get_customer_entitlement_value("acme", "ai_tokens")
    assert (value.has_access, value.balance, value.usage, value.overage) == (True, 300, 1200, 0)
    assert value.grant_balances[grant.id] == 0  # it expires first, so it burns first
    assert sorted(value.grant_balances.values()) == [0, 300]
    v1_value = acme.customer_entitlement.get_customer_entitlement_value("acme", "ai_tokens")
    assert (v1_value.balance, v1_value.total_available_grant_amount) == (300, 1500)
    access = acme.customer.get_customer_access("acme")
    assert access.entitlements["ai_tokens"].usage == 1200

    grants = acme.customer_entitlement_v2.get_grants("acme", "ai_tokens")
    assert (grants.total_count, sorted(g.amount for g in grants["items"])) == (2, [500, 1000])
    all_grants = acme.grants_v2.list(customer=["acme"])
    assert all_grants.total_count == 2
    assert acme.grants_v2.list(customer=["globex"]).total_count == 0

    history = acme.customer_entitlement_v2.get_customer_entitlement_history(
        "acme", "ai_tokens", window_size="HOUR", from_parameter=NOW
    )
    assert [(w.usage, w.balance_at_start) for w in history.windowed_history] == [
        (1200, 1500),
        (0, 300),
    ]
    (segment,) = history.burndown_history
    assert (segment.usage, segment.balance_at_start, segment.balance_at_end) == (1200, 1500, 300)
    assert segment.period.from_property == NOW

    acme.customer_entitlement_v2.reset_customer_entitlement(
        "acme", "ai_tokens", ResetEntitlementUsageInput(retain_anchor=True)
    )
    after = acme.customer_entitlement_v2.get_customer_entitlement_value("acme", "ai_tokens")
    # Both roll over: the default grant to 1000, the v2 top-up keeps its 0 (up to its amount).
    assert (after.balance, after.usage, after.overage) == (1000, 0, 0)
    assert acme.customer_entitlements_v2.get("acme", "ai_tokens")["currentUsagePeriod"] == {
        "from": "2024-01-15T14:00:00Z",
        "to": "2024-02-01T00:00:00Z",
    }

    acme.grants.delete(grant.id)
    voided = acme.customer_entitlement_v2.get_grants("acme", "ai_tokens")
    assert [g.voided_at for g in voided["items"] if g.id == grant.id] == [
        datetime(2024, 1, 15, 14, tzinfo=UTC)
    ]
    with pytest.raises(HttpResponseError) as twice:
        acme.grants.delete(grant.id)
    assert twice.value.status_code == 400


def test_a_missing_feature_reads_as_no_access_and_a_missing_customer_as_404(
    acme: Client,
) -> None:
    missing = acme.customer_entitlement_v2.get_customer_entitlement_value("acme", "saml_sso")
    assert (missing.has_access, missing.balance) == (False, None)
    with pytest.raises(ResourceNotFoundError):
        acme.customer.get_customer_access("nobody")
