"""Wire models of plans (OpenMeter `Plan`, `PlanCreate`, `PlanReplaceUpdate`, `PlanPhase`,
`RateCard`, `RateCardEntitlement`, `CustomPlanInput`).

The same phase and rate card models read requests and write responses. Responses leave out
fields that are not set, except those OpenMeter's schema requires while allowing null
(`duration`, `price`, a flat fee's `billingCadence`, `validationErrors`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, cast

from pydantic import (
    Field,
    GetJsonSchemaHandler,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from allotment.api.schemas.common import AmountValue, UtcDateTime, WireModel
from allotment.domain import features as feature_rules
from allotment.domain.entitlements import EntitlementType
from allotment.domain.plans import (
    EntitlementTemplate,
    Plan,
    PlanPhase,
    PlanStatus,
    PlanTerms,
    RateCard,
    RateCardType,
)

Key = Annotated[
    str,
    Field(
        min_length=1,
        max_length=feature_rules.KEY_MAX_LENGTH,
        pattern=feature_rules.KEY_PATTERN,
    ),
]
Name = Annotated[str, Field(min_length=1, max_length=256)]
Description = Annotated[str, Field(max_length=1024)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Duration = Annotated[str, Field(min_length=1, max_length=64)]


class SparseModel(WireModel):
    """Leaves out None, except the wire names in `KEEP_NULL`."""

    KEEP_NULL: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _sparse(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None or k in self.KEEP_NULL}

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # Document the fields (what the serializer keeps), not the serializer's bare dict.
        fields_only = {k: v for k, v in core_schema.items() if k != "serialization"}
        return handler(cast(CoreSchema, fields_only))


# -- entitlement templates ----------------------------------------------------------------------


class MeteredTemplate(SparseModel):
    type: Literal["metered"]
    metadata: dict[str, str] | None = None
    is_soft_limit: bool | None = None
    issue_after_reset: AmountValue | None = None
    issue_after_reset_priority: int | None = None
    preserve_overage_at_reset: bool | None = None
    usage_period: Duration | None = None


class StaticTemplate(SparseModel):
    type: Literal["static"]
    metadata: dict[str, str] | None = None
    config: str


class BooleanTemplate(SparseModel):
    type: Literal["boolean"]
    metadata: dict[str, str] | None = None


TemplateBody = Annotated[
    MeteredTemplate | StaticTemplate | BooleanTemplate, Field(discriminator="type")
]


def _template(body: TemplateBody) -> EntitlementTemplate:
    if isinstance(body, MeteredTemplate):
        return EntitlementTemplate(
            type=EntitlementType.METERED,
            metadata=body.metadata,
            is_soft_limit=body.is_soft_limit,
            issue_after_reset=body.issue_after_reset,
            issue_after_reset_priority=body.issue_after_reset_priority,
            preserve_overage_at_reset=body.preserve_overage_at_reset,
            usage_period=body.usage_period,
        )
    if isinstance(body, StaticTemplate):
        return EntitlementTemplate(
            type=EntitlementType.STATIC, metadata=body.metadata, config=body.config
        )
    return EntitlementTemplate(type=EntitlementType.BOOLEAN, metadata=body.metadata)


def _template_body(template: EntitlementTemplate) -> TemplateBody:
    metadata = None if template.metadata is None else dict(template.metadata)
    if template.type is EntitlementType.METERED:
        return MeteredTemplate(
            type="metered",
            metadata=metadata,
            is_soft_limit=bool(template.is_soft_limit),
            issue_after_reset=template.issue_after_reset,
            issue_after_reset_priority=template.issue_after_reset_priority,
            preserve_overage_at_reset=bool(template.preserve_overage_at_reset),
            usage_period=template.usage_period,
        )
    if template.type is EntitlementType.STATIC:
        return StaticTemplate(type="static", metadata=metadata, config=template.config or "")
    return BooleanTemplate(type="boolean", metadata=metadata)


# -- rate cards -----------------------------------------------------------------------------------


class _RateCardFields(SparseModel):
    KEEP_NULL = frozenset({"price", "billingCadence"})

    key: Key
    name: Name
    description: Description | None = None
    metadata: dict[str, str] | None = None
    feature_key: Key | None = None
    entitlement_template: TemplateBody | None = None
    tax_config: dict[str, Any] | None = None
    price: dict[str, Any] | None = Field(default=None, description="Stored, never charged")
    discounts: dict[str, Any] | None = None


class FlatFeeRateCard(_RateCardFields):
    type: Literal["flat_fee"]
    billing_cadence: Duration | None = Field(default=None, description="Null: a one-time fee")


class UsageBasedRateCard(_RateCardFields):
    type: Literal["usage_based"]
    billing_cadence: Duration | None = None


RateCardBody = Annotated[FlatFeeRateCard | UsageBasedRateCard, Field(discriminator="type")]


def _rate_card(body: RateCardBody) -> RateCard:
    template = body.entitlement_template
    return RateCard(
        type=RateCardType(body.type),
        key=body.key,
        name=body.name,
        description=body.description,
        metadata=body.metadata,
        feature_key=body.feature_key,
        entitlement_template=None if template is None else _template(template),
        billing_cadence=body.billing_cadence,
        price=body.price,
        tax_config=body.tax_config,
        discounts=body.discounts,
    )


def rate_card_body(card: RateCard) -> RateCardBody:
    template = card.entitlement_template
    fields: dict[str, Any] = {
        "key": card.key,
        "name": card.name,
        "description": card.description,
        "metadata": None if card.metadata is None else dict(card.metadata),
        "feature_key": card.feature_key,
        "entitlement_template": None if template is None else _template_body(template),
        "tax_config": None if card.tax_config is None else dict(card.tax_config),
        "price": None if card.price is None else dict(card.price),
        "discounts": None if card.discounts is None else dict(card.discounts),
        "billing_cadence": card.billing_cadence,
    }
    if card.type is RateCardType.FLAT_FEE:
        return FlatFeeRateCard(type="flat_fee", **fields)
    return UsageBasedRateCard(type="usage_based", **fields)


# -- phases and plans -----------------------------------------------------------------------------


class PlanPhaseBody(SparseModel):
    KEEP_NULL = frozenset({"duration"})

    key: Key
    name: Name
    description: Description | None = None
    metadata: dict[str, str] | None = None
    duration: Duration | None = Field(description="ISO 8601; null runs forever")
    rate_cards: list[RateCardBody]

    def to_phase(self) -> PlanPhase:
        return PlanPhase(
            key=self.key,
            name=self.name,
            description=self.description,
            metadata=self.metadata,
            duration=self.duration,
            rate_cards=tuple(_rate_card(card) for card in self.rate_cards),
        )

    @classmethod
    def of(cls, phase: PlanPhase) -> PlanPhaseBody:
        return cls(
            key=phase.key,
            name=phase.name,
            description=phase.description,
            metadata=None if phase.metadata is None else dict(phase.metadata),
            duration=phase.duration,
            rate_cards=[rate_card_body(card) for card in phase.rate_cards],
        )


class Alignment(WireModel):
    billables_must_align: bool | None = None


class ProRatingConfig(WireModel):
    enabled: bool = True
    mode: Literal["prorate_prices"] = "prorate_prices"


class PlanTermsBody(WireModel):
    """`PlanReplaceUpdate`; `PlanCreate` and `CustomPlanInput` add to it."""

    name: Name
    description: Description | None = None
    metadata: dict[str, str] | None = None
    alignment: Alignment | None = None
    billing_cadence: Duration
    pro_rating_config: ProRatingConfig | None = None
    settlement_mode: Literal["credit_then_invoice", "credit_only"] | None = None
    phases: list[PlanPhaseBody] = Field(min_length=1)

    def to_terms(self, currency: str) -> PlanTerms:
        return PlanTerms(
            name=self.name,
            description=self.description,
            metadata=self.metadata,
            currency=currency,
            billing_cadence=self.billing_cadence,
            alignment=None if self.alignment is None else self.alignment.model_dump(),
            pro_rating_config=(
                None if self.pro_rating_config is None else self.pro_rating_config.model_dump()
            ),
            settlement_mode=self.settlement_mode,
            phases=tuple(phase.to_phase() for phase in self.phases),
        )


class PlanUpdateBody(PlanTermsBody):
    pass


class CustomPlanBody(PlanTermsBody):
    currency: Currency = "USD"

    def terms(self) -> PlanTerms:
        return self.to_terms(self.currency)


class PlanCreateBody(CustomPlanBody):
    key: Key


class ValidationErrorOut(WireModel):
    message: str
    field: str
    code: str


class PlanOut(SparseModel):
    KEEP_NULL = frozenset({"validationErrors"})

    id: str
    key: str
    version: int
    name: str
    description: str | None = None
    metadata: dict[str, str] | None = None
    alignment: Alignment | None = None
    currency: str
    billing_cadence: str
    pro_rating_config: ProRatingConfig
    settlement_mode: str
    effective_from: UtcDateTime | None = None
    effective_to: UtcDateTime | None = None
    status: PlanStatus
    phases: list[PlanPhaseBody]
    validation_errors: list[ValidationErrorOut] | None = None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    deleted_at: UtcDateTime | None = None

    @classmethod
    def of(cls, plan: Plan, now: datetime) -> PlanOut:
        terms = plan.terms
        return cls(
            id=plan.id,
            key=plan.key,
            version=plan.version,
            name=terms.name,
            description=terms.description,
            metadata=None if terms.metadata is None else dict(terms.metadata),
            alignment=None
            if terms.alignment is None
            else Alignment.model_validate(terms.alignment),
            currency=terms.currency,
            billing_cadence=terms.billing_cadence,
            pro_rating_config=ProRatingConfig.model_validate(terms.pro_rating_config or {}),
            settlement_mode=terms.settlement_mode or "credit_then_invoice",
            effective_from=plan.effective_from,
            effective_to=plan.effective_to,
            status=plan.status(now),
            phases=[PlanPhaseBody.of(phase) for phase in terms.phases],
            validation_errors=[],
            created_at=plan.created_at,
            updated_at=plan.updated_at,
            deleted_at=plan.deleted_at,
        )
