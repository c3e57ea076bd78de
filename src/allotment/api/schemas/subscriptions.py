"""Wire models of subscriptions (OpenMeter `PlanSubscriptionCreate`, `CustomSubscriptionCreate`,
`PlanSubscriptionChange`, `CustomSubscriptionChange`, `Subscription`, `SubscriptionExpanded`,
`SubscriptionPhaseExpanded`, `SubscriptionItem`, `SubscriptionChangeResponseBody`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from allotment.api.schemas.common import UtcDateTime, WireModel
from allotment.api.schemas.entitlements import entitlement_v1
from allotment.api.schemas.features import FeatureResponse
from allotment.api.schemas.plans import (
    Alignment,
    CustomPlanBody,
    Key,
    ProRatingConfig,
    SparseModel,
)
from allotment.domain.subscriptions import (
    Subscription,
    SubscriptionStatus,
    Timing,
    TimingPreset,
)
from allotment.errors import InvalidInput
from allotment.services.subscriptions import (
    ChangeRequest,
    ChangeResult,
    ItemView,
    PlanChoice,
    SubscriptionRequest,
    SubscriptionView,
)

TimingBody = TimingPreset | UtcDateTime


class PlanReferenceInput(WireModel):
    key: Key
    version: int | None = Field(default=None, ge=1)


def _choice(plan: PlanReferenceInput | None, custom: CustomPlanBody | None) -> PlanChoice:
    if (plan is None) == (custom is None):
        message = "send either plan (a published plan's key) or customPlan"
        raise InvalidInput(message, field="plan")
    if custom is not None:
        return PlanChoice(custom=custom.terms())
    assert plan is not None
    return PlanChoice(plan_key=plan.key, plan_version=plan.version)


class _SubscriptionFields(WireModel):
    plan: PlanReferenceInput | None = None
    custom_plan: CustomPlanBody | None = None
    billing_anchor: UtcDateTime | None = None
    name: str | None = Field(default=None, min_length=1, max_length=256)
    description: str | None = Field(default=None, max_length=1024)
    metadata: dict[str, str] | None = None
    starting_phase: str | None = Field(default=None, min_length=1, max_length=64)
    alignment: Alignment | None = None


class SubscriptionCreateBody(_SubscriptionFields):
    """Either a plan by key (and version) or a custom plan; customerId wins over customerKey."""

    timing: TimingBody = TimingPreset.IMMEDIATE
    customer_id: str | None = Field(default=None, min_length=1, max_length=26)
    customer_key: str | None = Field(default=None, min_length=1, max_length=256)

    def to_request(self) -> SubscriptionRequest:
        return SubscriptionRequest(
            plan=_choice(self.plan, self.custom_plan),
            customer_id=self.customer_id,
            customer_key=self.customer_key,
            timing=self.timing,
            billing_anchor=self.billing_anchor,
            name=self.name,
            description=self.description,
            metadata=self.metadata,
            starting_phase=self.starting_phase,
        )


class SubscriptionChangeBody(_SubscriptionFields):
    timing: TimingBody

    def to_request(self) -> ChangeRequest:
        return ChangeRequest(
            plan=_choice(self.plan, self.custom_plan),
            timing=self.timing,
            billing_anchor=self.billing_anchor,
            name=self.name,
            description=self.description,
            metadata=self.metadata,
            starting_phase=self.starting_phase,
        )


class CancelBody(WireModel):
    timing: TimingBody | None = None

    def to_timing(self) -> Timing:
        return self.timing or TimingPreset.IMMEDIATE


class PlanReferenceOut(WireModel):
    id: str
    key: str
    version: int


class SubscriptionOut(SparseModel):
    id: str
    name: str
    description: str | None = None
    metadata: dict[str, str] | None = None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    deleted_at: UtcDateTime | None = None
    active_from: UtcDateTime
    active_to: UtcDateTime | None = None
    status: SubscriptionStatus
    customer_id: str
    plan: PlanReferenceOut | None = None
    currency: str
    cost_basis_mode: Literal["dynamic"] = "dynamic"
    cost_basis_pins: list[Any] = Field(default_factory=list)
    billing_cadence: str
    pro_rating_config: ProRatingConfig
    billing_anchor: UtcDateTime
    settlement_mode: str
    alignment: dict[str, Any] | None = None

    @classmethod
    def fields_of(cls, subscription: Subscription, now: datetime) -> dict[str, Any]:
        terms = subscription.terms
        plan = subscription.plan
        return {
            "id": subscription.id,
            "name": subscription.name,
            "description": subscription.description,
            "metadata": None if subscription.metadata is None else dict(subscription.metadata),
            "created_at": subscription.created_at,
            "updated_at": subscription.updated_at,
            "deleted_at": subscription.deleted_at,
            "active_from": subscription.active_from,
            "active_to": subscription.active_to,
            "status": subscription.status(now),
            "customer_id": subscription.customer_id,
            "plan": None if plan is None else PlanReferenceOut(**plan.__dict__),
            "currency": terms.currency,
            "billing_cadence": terms.billing_cadence,
            "pro_rating_config": ProRatingConfig.model_validate(terms.pro_rating_config or {}),
            "billing_anchor": subscription.billing_anchor,
            "settlement_mode": terms.settlement_mode or "credit_then_invoice",
            "alignment": None if terms.alignment is None else dict(terms.alignment),
        }

    @classmethod
    def of(cls, subscription: Subscription, now: datetime) -> SubscriptionOut:
        return cls(**cls.fields_of(subscription, now))


class SubscriptionItemOut(SparseModel):
    KEEP_NULL = frozenset({"billingCadence", "price"})

    id: str
    name: str
    description: str | None = None
    metadata: dict[str, str] | None = None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    active_from: UtcDateTime
    active_to: UtcDateTime | None = None
    key: str
    feature_key: str | None = None
    billing_cadence: str | None = None
    price: dict[str, Any] | None = None
    discounts: dict[str, Any] | None = None
    tax_config: dict[str, Any] | None = None
    included: dict[str, Any] | None = Field(
        default=None, description="The feature, and the entitlement the item created"
    )

    @classmethod
    def of(cls, view: ItemView) -> SubscriptionItemOut:
        card, item = view.card, view.item
        included: dict[str, Any] | None = None
        if view.feature is not None:
            included = {
                "feature": FeatureResponse.of(view.feature).model_dump(
                    mode="json", exclude_none=True
                )
            }
            if view.entitlement is not None:
                included["entitlement"] = entitlement_v1(view.entitlement).model_dump(
                    mode="json", exclude_none=True
                )
        return cls(
            id=item.id,
            name=card.name,
            description=card.description,
            metadata=None if card.metadata is None else dict(card.metadata),
            created_at=item.created_at,
            updated_at=item.updated_at,
            active_from=item.active_from,
            active_to=item.active_to,
            key=card.key,
            feature_key=card.feature_key,
            billing_cadence=card.billing_cadence,
            price=None if card.price is None else dict(card.price),
            discounts=None if card.discounts is None else dict(card.discounts),
            tax_config=None if card.tax_config is None else dict(card.tax_config),
            included=included,
        )


class SubscriptionPhaseOut(SparseModel):
    id: str
    key: str
    name: str
    description: str | None = None
    metadata: dict[str, str] | None = None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    active_from: UtcDateTime
    active_to: UtcDateTime | None = None
    items: list[SubscriptionItemOut]
    item_timelines: dict[str, list[SubscriptionItemOut]]


class SubscriptionExpandedOut(SubscriptionOut):
    phases: list[SubscriptionPhaseOut]

    @classmethod
    def of_view(cls, view: SubscriptionView, now: datetime) -> SubscriptionExpandedOut:
        subscription = view.subscription
        fields = cls.fields_of(subscription, now)
        windows = subscription.phase_windows()
        period = subscription.billing.period_containing(now)
        alignment = dict(subscription.terms.alignment or {})
        if subscription.active_at(now):
            alignment["currentAlignedBillingPeriod"] = {
                "from": period.start.isoformat().replace("+00:00", "Z"),
                "to": period.end.isoformat().replace("+00:00", "Z"),
            }
        fields["alignment"] = alignment or None
        phases = []
        for window in windows:
            if window.is_empty and window.index != 0:
                continue
            phase = subscription.terms.phases[window.index]
            items = [
                SubscriptionItemOut.of(i) for i in view.items if i.item.phase_index == window.index
            ]
            phases.append(
                SubscriptionPhaseOut(
                    id=subscription.phase_ids[window.index]
                    if window.index < len(subscription.phase_ids)
                    else subscription.id,
                    key=phase.key,
                    name=phase.name,
                    description=phase.description,
                    metadata=None if phase.metadata is None else dict(phase.metadata),
                    created_at=subscription.created_at,
                    updated_at=subscription.updated_at,
                    active_from=window.start,
                    active_to=window.end,
                    items=items,
                    item_timelines={item.key: [item] for item in items},
                )
            )
        return cls(**fields, phases=phases)


class SubscriptionChangeOut(WireModel):
    current: SubscriptionOut
    next: SubscriptionExpandedOut

    @classmethod
    def of(cls, result: ChangeResult, now: datetime) -> SubscriptionChangeOut:
        return cls(
            current=SubscriptionOut.of(result.current, now),
            next=SubscriptionExpandedOut.of_view(result.next, now),
        )
