"""The plans pages and a customer's subscription on the customer page: today's entitlements
only, the plan it came from, and what is scheduled next."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from fastapi.testclient import TestClient

from allotment.domain.entitlements import EntitlementType
from allotment.domain.plans import EntitlementTemplate, PlanPhase, PlanTerms, RateCard, RateCardType
from allotment.domain.subscriptions import TimingPreset
from allotment.services import plans, subscriptions
from allotment.services.context import ServiceContext
from allotment.services.subscriptions import ChangeRequest, PlanChoice, SubscriptionRequest
from tests.conftest import SettableClock
from tests.dashboard.test_crawl import crawl
from tests.factories import make_customer, make_feature, make_meter


def _plan(context: ServiceContext, key: str, allowance: int, *, sso: bool) -> str:
    cards = [
        RateCard(
            type=RateCardType.USAGE_BASED,
            key="ai_tokens",
            name="AI tokens",
            feature_key="ai_tokens",
            billing_cadence="P1M",
            entitlement_template=EntitlementTemplate(
                type=EntitlementType.METERED, issue_after_reset=Decimal(allowance)
            ),
        )
    ]
    if sso:
        cards.append(
            RateCard(
                type=RateCardType.FLAT_FEE,
                key="sso",
                name="SSO",
                feature_key="sso",
                entitlement_template=EntitlementTemplate(type=EntitlementType.BOOLEAN),
            )
        )
    terms = PlanTerms(
        name=key.title(),
        currency="USD",
        billing_cadence="P1M",
        phases=(PlanPhase(key="default", name="Default", rate_cards=tuple(cards)),),
    )
    plan = plans.create_plan(context, key, terms)
    return plans.publish_plan(context, plan.id).id


def test_plans_pages_and_the_customers_subscription(
    admin_ui: TestClient, context: ServiceContext, clock: SettableClock
) -> None:
    make_meter(context)
    make_feature(context)
    make_feature(context, "sso", meter_slug=None)
    customer_id = make_customer(context)
    free_id = _plan(context, "free", 1000, sso=False)
    pro_id = _plan(context, "pro", 10_000_000, sso=True)
    clock.advance(timedelta(minutes=1))
    free = subscriptions.create_subscription(
        context, SubscriptionRequest(plan=PlanChoice(plan_key="free"), customer_key="acme")
    )
    clock.advance(timedelta(days=2))
    subscriptions.change_subscription(
        context,
        free.subscription.id,
        ChangeRequest(plan=PlanChoice(plan_key="pro"), timing=TimingPreset.IMMEDIATE),
    )

    listing = admin_ui.get("/ui/plans")
    assert listing.status_code == 200
    assert f"/ui/plans/{free_id}" in listing.text and f"/ui/plans/{pro_id}" in listing.text
    detail = admin_ui.get(f"/ui/plans/{pro_id}")
    assert detail.status_code == 200
    assert "10,000,000" in detail.text and "<code>sso</code>" in detail.text

    page = admin_ui.get(f"/ui/customers/{customer_id}").text
    assert f'href="/ui/plans/{pro_id}"' in page
    # Free's ended entitlement is not shown beside Pro's: one row per feature.
    assert page.count('data-balance="ai_tokens"') == 1
    assert 'data-balance="ai_tokens">10,000,000<' in page

    pages = crawl(admin_ui)
    assert {f"/ui/plans/{pro_id}", "/ui/plans"} <= set(pages)
    assert {url: s for url, s in pages.items() if s != 200} == {}
    assert admin_ui.get("/ui/plans/nothing").status_code == 404
