"""Check access: every entitlement type at any time, with real usage, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from allotment.domain.entitlement_requests import EntitlementRequest, MeasureUsageFromPreset
from allotment.domain.entitlements import EntitlementType
from allotment.domain.grant_requests import GrantDefaults
from allotment.domain.meters import Aggregation
from allotment.errors import NotFound, PreconditionFailed
from allotment.services import customers, entitlement_values, entitlements, grants, maintenance
from allotment.services.context import ServiceContext
from allotment.services.entitlement_owners import SubjectOwner
from tests.conftest import SettableClock
from tests.factories import (
    ACME,
    grant,
    make_customer,
    make_feature,
    make_meter,
    metered,
    send_usage,
)


def _value(context: ServiceContext, at: datetime | None = None, feature: str = "ai_tokens"):  # type: ignore[no-untyped-def]
    value = entitlement_values.entitlement_value(context, ACME, feature, at)
    return (value.balance, value.usage, value.overage, value.has_access)


def test_monthly_allowance_top_up_and_month_boundary(
    setup: ServiceContext, clock: SettableClock
) -> None:
    entitlements.create_entitlement(setup, ACME, metered(issue_after_reset=10_000_000))
    assert _value(setup) == (10_000_000, 0, 0, True)

    send_usage(setup, 9_999_000, datetime(2024, 1, 3, 9, tzinfo=UTC))
    assert _value(setup) == (1_000, 9_999_000, 0, True)
    send_usage(setup, 2_000, datetime(2024, 1, 14, 9, tzinfo=UTC))
    assert _value(setup) == (0, 10_001_000, 1_000, False)

    clock.set(datetime(2024, 1, 15, 13, tzinfo=UTC))
    grants.create_grant(
        setup, ACME, "ai_tokens", grant(500_000, clock(), expiration=("MONTH", 1)), GrantDefaults.V2
    )
    assert _value(setup) == (499_000, 10_001_000, 0, True)
    top_up = entitlement_values.entitlement_value(setup, ACME, "ai_tokens")
    assert top_up.total_available_grant_amount == 10_500_000

    # A time in the past sees the state then: before the top-up was effective.
    before_top_up = _value(setup, datetime(2024, 1, 15, 12, 59, tzinfo=UTC))
    assert before_top_up == (0, 10_001_000, 1_000, False)
    # Next month: the allowance is back, the top-up keeps its 499,000 until Feb 15 13:00.
    assert _value(setup, datetime(2024, 2, 1, tzinfo=UTC)) == (10_499_000, 0, 0, True)
    assert _value(setup, datetime(2024, 2, 15, 12, 59, tzinfo=UTC)) == (10_499_000, 0, 0, True)
    assert _value(setup, datetime(2024, 2, 15, 13, tzinfo=UTC)) == (10_000_000, 0, 0, True)
    # Usage stamped exactly at the boundary belongs to the new month.
    send_usage(setup, 7, datetime(2024, 2, 1, tzinfo=UTC))
    assert _value(setup, datetime(2024, 1, 31, 23, 59, 59, tzinfo=UTC)) == (
        499_000,
        10_001_000,
        0,
        True,
    )
    # A read at exactly 00:00 covers nothing of the minute starting then; 00:00:30 covers it.
    assert _value(setup, datetime(2024, 2, 1, tzinfo=UTC)) == (10_499_000, 0, 0, True)
    assert _value(setup, datetime(2024, 2, 1, 0, 0, 30, tzinfo=UTC)) == (10_498_993, 7, 0, True)


def test_usage_counts_only_the_customers_subjects_the_feature_filters_and_after_measurement(
    context: ServiceContext,
) -> None:
    make_meter(context)
    make_feature(context, "mini_tokens", filters={"model": "gpt-4o-mini"})
    make_customer(context, "acme", ("acme", "acme-eu"))
    entitlements.create_entitlement(
        context,
        ACME,
        metered(
            feature_key="mini_tokens",
            issue_after_reset=1_000,
            measure_usage_from=datetime(2024, 1, 5, tzinfo=UTC),
        ),
    )
    send_usage(context, 10, datetime(2024, 1, 6, tzinfo=UTC), model="gpt-4o-mini")
    send_usage(
        context, 20, datetime(2024, 1, 6, tzinfo=UTC), subject="acme-eu", model="gpt-4o-mini"
    )
    send_usage(context, 40, datetime(2024, 1, 6, tzinfo=UTC), model="gpt-4o")  # filtered out
    send_usage(context, 80, datetime(2024, 1, 6, tzinfo=UTC), subject="other", model="gpt-4o-mini")
    send_usage(context, 160, datetime(2024, 1, 4, 23, 59, tzinfo=UTC), model="gpt-4o-mini")
    send_usage(context, 320, datetime(2024, 1, 6, tzinfo=UTC), model="gpt-4o-mini", event_type="x")

    assert _value(context, feature="mini_tokens") == (970, 30, 0, True)


def test_exact_decimals(setup: ServiceContext, clock: SettableClock) -> None:
    entitlements.create_entitlement(setup, ACME, metered())
    grants.create_grant(setup, ACME, "ai_tokens", grant("0.3", clock()), GrantDefaults.V2)
    send_usage(setup, 0.1, datetime(2024, 1, 15, 12, 1, tzinfo=UTC))
    send_usage(setup, 0.2, datetime(2024, 1, 15, 12, 2, tzinfo=UTC))
    value = entitlement_values.entitlement_value(
        setup, ACME, "ai_tokens", datetime(2024, 1, 15, 13, tzinfo=UTC)
    )
    assert (value.balance, value.usage, value.overage) == (Decimal(0), Decimal("0.3"), 0)
    assert str(value.balance) in ("0", "0.0")
    assert value.has_access is False


def test_a_soft_limit_keeps_access_past_the_balance(setup: ServiceContext) -> None:
    entitlements.create_entitlement(setup, ACME, metered(issue_after_reset=100, is_soft_limit=True))
    send_usage(setup, 150, datetime(2024, 1, 10, tzinfo=UTC))
    assert _value(setup) == (0, 150, 50, True)


def test_boolean_static_and_the_access_map(setup: ServiceContext, clock: SettableClock) -> None:
    make_feature(setup, "saml_sso", meter_slug=None)
    make_feature(setup, "models", meter_slug=None)
    entitlements.create_entitlement(setup, ACME, metered(issue_after_reset=1_000))
    entitlements.create_entitlement(
        setup, ACME, EntitlementRequest(EntitlementType.BOOLEAN, "saml_sso")
    )
    config = '{"allowed": ["gpt-4o-mini"]}'
    entitlements.create_entitlement(
        setup, ACME, EntitlementRequest(EntitlementType.STATIC, "models", config=config)
    )
    send_usage(setup, 250, datetime(2024, 1, 2, tzinfo=UTC))

    access = entitlement_values.customer_access(setup, "acme")
    assert sorted(access) == ["ai_tokens", "models", "saml_sso"]
    assert (access["saml_sso"].has_access, access["saml_sso"].balance) == (True, None)
    assert (access["models"].has_access, access["models"].config) == (True, config)
    assert (access["ai_tokens"].balance, access["ai_tokens"].usage) == (750, 250)
    # Before the entitlements were created the customer had none of them.
    assert (
        entitlement_values.customer_access(setup, "acme", datetime(2024, 1, 15, tzinfo=UTC)) == {}
    )
    before = entitlement_values.entitlement_value(
        setup, ACME, "saml_sso", datetime(2024, 1, 15, tzinfo=UTC)
    )
    assert before.has_access is False


def test_a_feature_without_entitlement_is_no_access_but_unknown_owners_are_not_found(
    setup: ServiceContext,
) -> None:
    value = entitlement_values.entitlement_value(setup, ACME, "gpu_hours")
    assert (value.has_access, value.balance) == (False, None)
    with pytest.raises(NotFound) as unknown_id:
        entitlement_values.entitlement_value(setup, ACME, "01HZZZZZZZZZZZZZZZZZZZZZZZ")
    assert unknown_id.value.field == "entitlementIdOrFeatureKey"
    with pytest.raises(NotFound) as unknown_customer:
        entitlement_values.customer_access(setup, "nobody")
    assert unknown_customer.value.field == "customerIdOrKey"


def test_a_deleted_customer_named_by_id_is_a_failed_precondition(setup: ServiceContext) -> None:
    customer_id = make_customer(setup, "gone", ("gone",))
    customers.delete_customer(setup, customer_id)
    with pytest.raises(PreconditionFailed):
        entitlement_values.customer_access(setup, customer_id)


def test_v1_subject_paths_read_the_same_value(setup: ServiceContext) -> None:
    view = entitlements.create_entitlement(
        setup, SubjectOwner("acme"), metered(issue_after_reset=5)
    )
    send_usage(setup, 2, datetime(2024, 1, 2, tzinfo=UTC))
    by_subject = entitlement_values.entitlement_value(
        setup, SubjectOwner("acme"), view.entitlement.id
    )
    assert (by_subject.balance, by_subject.usage) == (3, 2)


def test_unique_count_counts_a_value_once_per_period(
    context: ServiceContext, clock: SettableClock
) -> None:
    make_meter(context, "users", Aggregation.UNIQUE_COUNT, value_property="$.tokens")
    make_feature(context, "seats", meter_slug="users")
    make_customer(context)
    entitlements.create_entitlement(
        context,
        ACME,
        metered(
            feature_key="seats", issue_after_reset=10, measure_usage_from=MeasureUsageFromPreset.NOW
        ),
    )
    # A grant starting mid-way cuts the timeline into two segments: "ann" is seen in both.
    grants.create_grant(
        context,
        ACME,
        "seats",
        grant(5, datetime(2024, 1, 15, 14, tzinfo=UTC), expiration=("DAY", 1)),
        GrantDefaults.V1,
    )
    for user, minute in (("ann", 1), ("bob", 2), ("ann", 130), ("cy", 131)):
        send_usage(context, user, clock() + timedelta(minutes=minute))
    value = entitlement_values.entitlement_value(
        context, ACME, "seats", datetime(2024, 1, 15, 16, tzinfo=UTC)
    )
    assert (value.usage, value.balance) == (3, 12)


def test_a_background_read_of_many_customers_agrees_and_asks_for_no_checkpoint(
    setup: ServiceContext, clock: SettableClock
) -> None:
    entitlements.create_entitlement(setup, ACME, metered(issue_after_reset=1_000))
    send_usage(setup, 10, datetime(2024, 1, 3, 9, tzinfo=UTC))
    clock.set(datetime(2024, 1, 20, tzinfo=UTC))  # far past measurement start
    setup.caches.take_checkpoint_requests()
    with setup.database.unit_of_work() as uow:
        customer = uow.customers.get_live_by_key("acme")
        assert customer is not None
        held = uow.entitlements.of_customer(customer.id)
        quiet = entitlement_values.values_of_customers(uow, [(customer, held)], clock())
    assert quiet[customer.id][held[0].id].usage == 10
    assert setup.caches.take_checkpoint_requests() == []
    client = entitlement_values.customer_access(setup, "acme")  # the same read, a client's
    assert client["ai_tokens"] == quiet[customer.id][held[0].id]
    assert len(setup.caches.take_checkpoint_requests()) == 1


def test_a_read_inside_a_unit_skips_a_checkpoint_that_late_usage_predates(
    setup: ServiceContext, clock: SettableClock
) -> None:
    # values_at / values_of_customers (the overview, the evaluator) load in their own unit and
    # must refuse a checkpoint that usage still waiting in the deltas predates, as check
    # access does.
    view = entitlements.create_entitlement(setup, ACME, metered(issue_after_reset=1_000))
    entitlement = view.entitlement
    send_usage(setup, 10, datetime(2024, 1, 3, 9, tzinfo=UTC))
    clock.set(datetime(2024, 1, 20, tzinfo=UTC))
    assert maintenance.save_checkpoints(setup, [entitlement.id]) == 1
    send_usage(setup, 5, datetime(2024, 1, 10, 9, tzinfo=UTC))  # late: before the checkpoint
    with setup.database.unit_of_work() as uow:
        customer = uow.customers.get_live_by_key("acme")
        assert customer is not None
        value = entitlement_values.values_at(uow, customer, [entitlement], clock())
    assert (value[entitlement.id].usage, value[entitlement.id].balance) == (15, 985)
