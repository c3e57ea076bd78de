"""Grants: v1 and v2 defaults, validation, recurrence, voiding and lists, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from allotment.domain.entitlement_requests import EntitlementRequest
from allotment.domain.entitlements import EntitlementType, GrantFilter
from allotment.domain.grant_requests import GrantDefaults
from allotment.errors import InvalidInput, NotFound
from allotment.services import entitlement_values, entitlements, grants
from allotment.services.context import ServiceContext
from allotment.services.entitlement_owners import CustomerOwner
from tests.conftest import SettableClock
from tests.factories import ACME, grant, make_customer, make_feature, metered, send_usage

GLOBEX = CustomerOwner("globex")
NOW = datetime(2024, 1, 15, 12, tzinfo=UTC)


@pytest.fixture
def setup(setup: ServiceContext) -> ServiceContext:
    """The suite's setup, customer `globex`, and a monthly metered entitlement for each."""
    make_customer(setup, "globex", ("globex",))
    entitlements.create_entitlement(setup, ACME, metered())
    entitlements.create_entitlement(setup, GLOBEX, metered())
    return setup


def _balance(context: ServiceContext, owner: CustomerOwner, at: datetime) -> object:
    return entitlement_values.entitlement_value(context, owner, "ai_tokens", at).balance


def test_v1_rolls_nothing_over_by_default_and_v2_up_to_the_amount(setup: ServiceContext) -> None:
    v1 = grants.create_grant(
        setup, ACME, "ai_tokens", grant(500, NOW, expiration=("YEAR", 1)), GrantDefaults.V1
    ).grant
    v2 = grants.create_grant(setup, GLOBEX, "ai_tokens", grant(500, NOW), GrantDefaults.V2).grant
    assert (v1.min_rollover_amount, v1.max_rollover_amount) == (0, 0)
    assert (v2.min_rollover_amount, v2.max_rollover_amount, v2.expires_at) == (0, 500, None)
    assert v1.expires_at == datetime(2025, 1, 15, 12, tzinfo=UTC)
    for subject in ("acme", "globex"):
        send_usage(setup, 200, datetime(2024, 1, 20, tzinfo=UTC), subject=subject)

    february = datetime(2024, 2, 1, tzinfo=UTC)
    assert _balance(setup, ACME, february - timedelta(minutes=1)) == 300
    assert _balance(setup, ACME, february) == 0
    assert _balance(setup, GLOBEX, february) == 300


def test_priority_then_expiry_decides_what_burns_first(setup: ServiceContext) -> None:
    late = grants.create_grant(
        setup, ACME, "ai_tokens", grant(100, NOW, expiration=("MONTH", 2)), GrantDefaults.V1
    )
    soon = grants.create_grant(
        setup, ACME, "ai_tokens", grant(100, NOW, expiration=("DAY", 20)), GrantDefaults.V1
    )
    low = grants.create_grant(
        setup,
        ACME,
        "ai_tokens",
        grant(100, NOW, priority=2, expiration=("DAY", 1)),
        GrantDefaults.V1,
    )
    send_usage(setup, 150, datetime(2024, 1, 15, 12, 30, tzinfo=UTC))
    value = entitlement_values.entitlement_value(
        setup, ACME, "ai_tokens", datetime(2024, 1, 15, 13, tzinfo=UTC)
    )
    assert value.grant_balances == {
        soon.grant.id: 0,
        late.grant.id: 50,
        low.grant.id: 100,
    }


@pytest.mark.parametrize(
    ("request_", "defaults", "field"),
    [
        (grant(100, NOW), GrantDefaults.V1, "expiration"),
        (grant(0, NOW), GrantDefaults.V2, "amount"),
        (grant("1e30", NOW), GrantDefaults.V2, "amount"),
        (grant(100, datetime(2023, 12, 31, 23, 59, tzinfo=UTC)), GrantDefaults.V2, "effectiveAt"),
        (grant(100, NOW, expiration=("FORTNIGHT", 1)), GrantDefaults.V2, "expiration.duration"),
        (grant(100, NOW, expiration=("DAY", 1001)), GrantDefaults.V2, "expiration.count"),
        (grant(100, NOW, priority=0), GrantDefaults.V2, "priority"),
        (grant(100, NOW, recurrence="PT10M"), GrantDefaults.V2, "recurrence.interval"),
        (grant(100, NOW, max_rollover="1e19"), GrantDefaults.V2, "maxRolloverAmount"),
    ],
)
def test_invalid_grants_name_the_field(
    setup: ServiceContext, request_: object, defaults: GrantDefaults, field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        grants.create_grant(setup, ACME, "ai_tokens", request_, defaults)  # type: ignore[arg-type]
    assert field in [e.field for e in refused.value.errors]


def test_only_live_metered_entitlements_take_grants(
    setup: ServiceContext, clock: SettableClock
) -> None:
    make_feature(setup, "saml_sso", meter_slug=None)
    entitlements.create_entitlement(
        setup, ACME, EntitlementRequest(EntitlementType.BOOLEAN, "saml_sso")
    )
    with pytest.raises(InvalidInput) as boolean:
        grants.create_grant(setup, ACME, "saml_sso", grant(1, NOW), GrantDefaults.V2)
    assert boolean.value.field == "entitlementIdOrFeatureKey"
    assert "only metered" in boolean.value.message

    view = entitlements.get_entitlement(setup, GLOBEX, "ai_tokens")
    clock.advance(timedelta(minutes=1))
    entitlements.delete_entitlement(setup, GLOBEX, "ai_tokens")
    with pytest.raises(InvalidInput) as deleted:
        grants.create_grant(setup, GLOBEX, view.entitlement.id, grant(1, NOW), GrantDefaults.V2)
    assert "deleted" in deleted.value.message
    with pytest.raises(NotFound):
        grants.create_grant(setup, GLOBEX, "ai_tokens", grant(1, NOW), GrantDefaults.V2)


def test_a_recurring_grant_refills_and_shows_its_next_refill(
    setup: ServiceContext, clock: SettableClock
) -> None:
    view = grants.create_grant(
        setup, ACME, "ai_tokens", grant(100, NOW, recurrence="DAY"), GrantDefaults.V2
    )
    assert view.next_recurrence == datetime(2024, 1, 16, 12, tzinfo=UTC)
    send_usage(setup, 80, datetime(2024, 1, 15, 13, tzinfo=UTC))
    assert _balance(setup, ACME, datetime(2024, 1, 16, 11, 59, tzinfo=UTC)) == 20
    assert _balance(setup, ACME, datetime(2024, 1, 16, 12, tzinfo=UTC)) == 100
    clock.set(datetime(2024, 1, 17, 8, tzinfo=UTC))
    (listed,) = grants.list_entitlement_grants(setup, ACME, "ai_tokens").items
    assert listed.next_recurrence == datetime(2024, 1, 17, 12, tzinfo=UTC)


def test_void_drops_the_remaining_balance_and_keeps_what_was_burnt(
    setup: ServiceContext, clock: SettableClock
) -> None:
    created = grants.create_grant(setup, ACME, "ai_tokens", grant(100, NOW), GrantDefaults.V2)
    grant_id = created.grant.id
    send_usage(setup, 60, datetime(2024, 1, 15, 12, 30, tzinfo=UTC))
    clock.set(datetime(2024, 1, 15, 14, 0, 20, tzinfo=UTC))

    with pytest.raises(InvalidInput) as future:
        grants.void_grant(setup, grant_id, datetime(2024, 1, 15, 14, 1, tzinfo=UTC))
    assert future.value.field == "at"
    grants.void_grant(setup, grant_id)

    value = entitlement_values.entitlement_value(setup, ACME, "ai_tokens")
    assert (value.balance, value.usage, value.total_available_grant_amount) == (0, 60, 60)
    assert _balance(setup, ACME, datetime(2024, 1, 15, 13, 59, tzinfo=UTC)) == 40
    (voided,) = grants.list_entitlement_grants(setup, ACME, "ai_tokens").items
    assert voided.grant.voided_at == datetime(2024, 1, 15, 14, tzinfo=UTC)
    with pytest.raises(InvalidInput) as twice:
        grants.void_grant(setup, grant_id)
    assert twice.value.field == "grantId"
    with pytest.raises(NotFound) as unknown:
        grants.void_grant(setup, "01HZZZZZZZZZZZZZZZZZZZZZZZ")
    assert unknown.value.field == "grantId"


def test_no_void_before_the_current_period(setup: ServiceContext, clock: SettableClock) -> None:
    created = grants.create_grant(setup, ACME, "ai_tokens", grant(100, NOW), GrantDefaults.V2)
    clock.set(datetime(2024, 2, 3, tzinfo=UTC))
    with pytest.raises(InvalidInput) as closed:
        grants.void_grant(setup, created.grant.id, datetime(2024, 1, 31, tzinfo=UTC))
    assert (closed.value.field, "before the current usage period" in closed.value.message) == (
        "at",
        True,
    )


def test_lists_of_grants(setup: ServiceContext, clock: SettableClock) -> None:
    a = grants.create_grant(setup, ACME, "ai_tokens", grant(1, NOW), GrantDefaults.V2)
    clock.advance(timedelta(minutes=1))
    b = grants.create_grant(setup, GLOBEX, "ai_tokens", grant(2, NOW), GrantDefaults.V2)
    clock.advance(timedelta(minutes=1))
    entitlements.delete_entitlement(setup, GLOBEX, "ai_tokens")

    def ids(result: object) -> list[str]:
        return [v.grant.id for v in result.items]  # type: ignore[attr-defined]

    assert ids(grants.list_grants(setup, GrantFilter())) == [a.grant.id]
    assert ids(grants.list_grants(setup, GrantFilter(include_deleted=True))) == [
        a.grant.id,
        b.grant.id,
    ]
    by_customer = GrantFilter(customers=["globex"], include_deleted=True)
    assert ids(grants.list_grants(setup, by_customer)) == [b.grant.id]
    assert ids(grants.list_grants(setup, GrantFilter(features=["saml_sso"]))) == []
    assert ids(grants.list_grants(setup, GrantFilter(subject_keys=["acme"]))) == [a.grant.id]
