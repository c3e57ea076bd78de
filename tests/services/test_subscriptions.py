"""Subscriptions as use cases: what carries over a change (usage since the last reset, top-ups
that have not expired), what a cancel takes with it, and that two subscribes never both win."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from allotment.domain.entitlement_requests import EntitlementRequest
from allotment.domain.entitlements import EntitlementType
from allotment.domain.grant_requests import ExpirationRequest, GrantDefaults, GrantRequest
from allotment.domain.plans import (
    EntitlementTemplate,
    PlanPhase,
    PlanTerms,
    RateCard,
    RateCardType,
)
from allotment.domain.subscriptions import SubscriptionStatus, TimingPreset
from allotment.errors import Conflict
from allotment.services import (
    customers,
    entitlement_resets,
    entitlement_values,
    entitlements,
    grants,
    plans,
)
from allotment.services import subscriptions as subs
from allotment.services.context import ServiceContext
from allotment.services.subscriptions import ChangeRequest, PlanChoice, SubscriptionRequest
from tests.conftest import SettableClock
from tests.factories import ACME, make_feature, send_usage

START = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


def _tokens(allowance: int, usage_period: str | None = None) -> RateCard:
    return RateCard(
        type=RateCardType.USAGE_BASED,
        key="ai_tokens",
        name="AI tokens",
        feature_key="ai_tokens",
        billing_cadence="P1M",
        entitlement_template=EntitlementTemplate(
            type=EntitlementType.METERED,
            issue_after_reset=Decimal(allowance),
            usage_period=usage_period,
        ),
    )


SSO = RateCard(
    type=RateCardType.FLAT_FEE,
    key="sso",
    name="SSO",
    feature_key="sso",
    entitlement_template=EntitlementTemplate(type=EntitlementType.BOOLEAN),
)


def _terms(name: str, *cards: RateCard) -> PlanTerms:
    return PlanTerms(
        name=name,
        currency="USD",
        billing_cadence="P1M",
        phases=(PlanPhase(key="default", name="Default", rate_cards=cards),),
    )


@pytest.fixture
def setup(setup: ServiceContext, clock: SettableClock) -> ServiceContext:
    """`free` (1,000 tokens a month) and `pro` (10,000,000 and SSO), published."""
    clock.set(START - timedelta(days=1))
    make_feature(setup, "sso", meter_slug=None)
    for key, terms in (
        ("free", _terms("Free", _tokens(1000))),
        ("pro", _terms("Pro", _tokens(10_000_000), SSO)),
    ):
        plans.publish_plan(setup, plans.create_plan(setup, key, terms).id)
    clock.set(START)
    return setup


def _subscribe(context: ServiceContext, plan: str = "free") -> str:
    request = SubscriptionRequest(plan=PlanChoice(plan_key=plan), customer_key="acme")
    return subs.create_subscription(context, request).subscription.id


def _change(context: ServiceContext, subscription_id: str, plan: str, timing: TimingPreset) -> str:
    result = subs.change_subscription(
        context, subscription_id, ChangeRequest(plan=PlanChoice(plan_key=plan), timing=timing)
    )
    return result.next.subscription.id


def _balance(context: ServiceContext, at: datetime | None = None) -> Decimal | None:
    return entitlement_values.entitlement_value(context, ACME, "ai_tokens", at).balance


def test_an_upgrade_after_a_reset_counts_usage_since_the_reset(
    setup: ServiceContext, clock: SettableClock
) -> None:
    free = _subscribe(setup)
    send_usage(setup, 800, START + timedelta(days=1))
    clock.set(START + timedelta(days=2))
    entitlement_resets.reset_entitlement(setup, ACME, "ai_tokens")
    send_usage(setup, 100, START + timedelta(days=3))
    clock.set(START + timedelta(days=4))
    assert _balance(setup) == 900
    _change(setup, free, "pro", TimingPreset.IMMEDIATE)
    assert _balance(setup) == 10_000_000 - 100


def test_top_ups_carry_over_unless_expired_by_the_change(
    setup: ServiceContext, clock: SettableClock
) -> None:
    free = _subscribe(setup)
    for amount, days in ((300, 1), (40, 30)):
        grants.create_grant(
            setup,
            ACME,
            "ai_tokens",
            GrantRequest(
                amount=Decimal(amount),
                effective_at=START,
                expiration=ExpirationRequest("DAY", days),
            ),
            GrantDefaults.V1,
        )
    clock.set(START + timedelta(days=2))
    assert _balance(setup) == 1040
    pro = _change(setup, free, "pro", TimingPreset.IMMEDIATE)
    assert _balance(setup) == 10_000_040
    view = subs.get_subscription(setup, pro)
    tokens = next(i for i in view.items if i.card.key == "ai_tokens")
    assert tokens.entitlement is not None
    carried = grants.list_entitlement_grants(setup, ACME, tokens.entitlement.entitlement.id).items
    amounts = sorted(g.grant.amount for g in carried)
    assert amounts == [Decimal(40), Decimal(10_000_000)]
    # It expires when it would have: 30 days after START.
    assert _balance(setup, START + timedelta(days=30, minutes=1)) == 10_000_000


def test_cancelling_a_subscription_with_a_scheduled_change_cancels_the_change(
    setup: ServiceContext, clock: SettableClock
) -> None:
    pro = _subscribe(setup, "pro")
    clock.set(START + timedelta(days=3))
    free = _change(setup, pro, "free", TimingPreset.NEXT_BILLING_CYCLE)
    subs.cancel_subscription(setup, pro, TimingPreset.IMMEDIATE)
    later = START + timedelta(days=40)
    clock.set(later)
    assert entitlement_values.customer_access(setup, "acme") == {}
    never = subs.get_subscription(setup, free).subscription
    assert never.active_to == never.active_from == START + timedelta(days=31)
    assert never.status(START + timedelta(days=3)).value == "inactive"
    listed = subs.list_customer_subscriptions(
        setup, "acme", statuses=(SubscriptionStatus.SCHEDULED,)
    )
    assert listed.items == []
    with pytest.raises(Conflict):
        subs.change_subscription(
            setup,
            free,
            ChangeRequest(plan=PlanChoice(plan_key="pro"), timing=TimingPreset.IMMEDIATE),
        )


def test_undoing_a_cancel_is_refused_while_a_change_follows(
    setup: ServiceContext, clock: SettableClock
) -> None:
    pro = _subscribe(setup, "pro")
    _change(setup, pro, "free", TimingPreset.NEXT_BILLING_CYCLE)
    with pytest.raises(Conflict) as refused:
        subs.unschedule_cancelation(setup, pro)
    assert refused.value.field == "subscriptionId"


def test_a_new_plan_version_leaves_running_subscriptions_alone(
    setup: ServiceContext, clock: SettableClock
) -> None:
    _subscribe(setup)
    draft = plans.next_plan(setup, "free")
    plans.update_plan(setup, draft.id, _terms("Free", _tokens(5)))
    clock.set(START + timedelta(minutes=5))
    plans.publish_plan(setup, draft.id)
    assert _balance(setup) == 1000
    assert plans.get_plan(setup, "free").version == 2


def test_a_custom_plan_per_customer_and_a_change_to_another(
    setup: ServiceContext, clock: SettableClock
) -> None:
    deal = _terms("ACME deal", _tokens(250_000, usage_period="P1W"), SSO)
    created = subs.create_subscription(
        setup,
        SubscriptionRequest(
            plan=PlanChoice(custom=deal), customer_id=customers.get_customer(setup, "acme").id
        ),
    )
    assert created.subscription.plan is None
    view = entitlements.get_entitlement(setup, ACME, "ai_tokens")
    assert view.entitlement.usage_period is not None
    assert view.entitlement.usage_period.interval.iso == "P1W"
    send_usage(setup, 1000, START + timedelta(hours=1))
    clock.set(START + timedelta(days=2))
    _change(setup, created.subscription.id, "free", TimingPreset.IMMEDIATE)
    # Free's monthly entitlement measures from the deal's current (weekly) period start.
    assert _balance(setup) == 0


def test_two_subscribes_at_once_never_both_win(setup: ServiceContext) -> None:
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def subscribe(plan: str) -> None:
        barrier.wait()
        try:
            _subscribe(setup, plan)
            outcomes.append("created")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=subscribe, args=(p,)) for p in ("free", "pro")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["conflict", "created"]
    assert len(subs.list_customer_subscriptions(setup, "acme").items) == 1


def test_a_manual_entitlement_and_a_subscription_do_not_overlap(
    setup: ServiceContext, clock: SettableClock
) -> None:
    pro = _subscribe(setup, "pro")
    _change(setup, pro, "free", TimingPreset.NEXT_BILLING_CYCLE)
    # SSO ends with Pro at the next cycle: a manual one may start only then, not now.
    with pytest.raises(Conflict):
        entitlements.create_entitlement(
            setup, ACME, EntitlementRequest(type=EntitlementType.BOOLEAN, feature_key="sso")
        )
    clock.set(START + timedelta(days=31, minutes=1))
    created = entitlements.create_entitlement(
        setup, ACME, EntitlementRequest(type=EntitlementType.BOOLEAN, feature_key="sso")
    )
    assert created.entitlement.active_to is None


def test_a_subscription_may_start_later(setup: ServiceContext, clock: SettableClock) -> None:
    later = START + timedelta(days=5)
    created = subs.create_subscription(
        setup,
        SubscriptionRequest(plan=PlanChoice(plan_key="pro"), customer_key="acme", timing=later),
    )
    assert created.subscription.status(START) is SubscriptionStatus.SCHEDULED
    assert created.subscription.billing_anchor == later
    assert entitlement_values.customer_access(setup, "acme") == {}
    clock.set(later)
    access = entitlement_values.customer_access(setup, "acme")
    assert access["ai_tokens"].balance == 10_000_000
    assert access["sso"].has_access is True


def test_a_scheduled_change_is_replaced_by_a_later_request(
    setup: ServiceContext, clock: SettableClock
) -> None:
    pro = _subscribe(setup, "pro")
    clock.set(START + timedelta(days=3))
    first = _change(setup, pro, "free", TimingPreset.NEXT_BILLING_CYCLE)
    custom = _terms("Half", _tokens(500))
    replaced = subs.change_subscription(
        setup,
        pro,
        ChangeRequest(plan=PlanChoice(custom=custom), timing=TimingPreset.NEXT_BILLING_CYCLE),
    ).next.subscription
    assert replaced.active_from == START + timedelta(days=31)
    assert subs.get_subscription(setup, first).subscription.status(clock()) is (
        SubscriptionStatus.INACTIVE
    )
    clock.set(START + timedelta(days=31, minutes=1))
    assert _balance(setup) == 500
