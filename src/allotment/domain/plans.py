"""Plans: named, versioned bundles of features, each with an entitlement template.

Rules (OpenMeter's product catalog, the entitlement-relevant part):

- A plan has a key, a version (1, 2, ... per key) and at least one phase. A phase with no
  duration runs forever, so only the last phase may lack one; phase keys are unique in a plan.
- A rate card (`flat_fee` or `usage_based`) is identified by its key, unique in its phase. A rate
  card with a `featureKey` must be keyed by it (a subscription item is identified by its
  feature); an `entitlementTemplate` needs a `featureKey`. A `usage_based` rate card needs a
  billing cadence. Prices, tax configs and discounts are kept as sent and never charged.
- An entitlement template follows the rules of an entitlement create
  (`entitlement_requests.check_request`): a metered one's usage period defaults to the rate
  card's billing cadence, and one of the two must be set.
- Status comes from the effective dates: no `effectiveFrom` is a draft; `now < effectiveFrom`
  scheduled; `effectiveFrom <= now < effectiveTo` (or no end) active; `effectiveTo <= now`
  archived. Only a draft may be edited; publishing a version ends the key's active one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from allotment.domain.entitlement_requests import EntitlementRequest, check_request
from allotment.domain.entitlements import EntitlementType
from allotment.domain.grant_requests import RecurrenceRequest, with_prefix
from allotment.domain.instants import INTERVAL_SECONDS_MAX, checked_interval
from allotment.domain.periods import Interval
from allotment.domain.text import UNSTORABLE_TEXT, is_storable_document, is_storable_text
from allotment.errors import ErrorList, InvalidInput
from allotment.ids import is_ulid


class RateCardType(StrEnum):
    FLAT_FEE = "flat_fee"
    USAGE_BASED = "usage_based"


class PlanStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    ARCHIVED = "archived"
    SCHEDULED = "scheduled"


class PlanOrderBy(StrEnum):
    ID = "id"
    KEY = "key"
    VERSION = "version"
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"


@dataclass(frozen=True)
class EntitlementTemplate:
    """A rate card's entitlement, without its feature (the rate card names it)."""

    type: EntitlementType
    metadata: Mapping[str, str] | None = None
    is_soft_limit: bool | None = None
    issue_after_reset: Decimal | None = None
    issue_after_reset_priority: int | None = None
    preserve_overage_at_reset: bool | None = None
    usage_period: str | None = None  # ISO 8601 duration
    config: str | None = None


@dataclass(frozen=True)
class RateCard:
    type: RateCardType
    key: str
    name: str
    description: str | None = None
    metadata: Mapping[str, str] | None = None
    feature_key: str | None = None
    entitlement_template: EntitlementTemplate | None = None
    billing_cadence: str | None = None
    # Billing fields, kept as sent (JSON documents) and never charged.
    price: Mapping[str, Any] | None = None
    tax_config: Mapping[str, Any] | None = None
    discounts: Mapping[str, Any] | None = None

    def usage_period(self) -> str | None:
        """The template's usage period, defaulting to the rate card's billing cadence."""
        template = self.entitlement_template
        if template is None:
            return None
        return template.usage_period or self.billing_cadence


@dataclass(frozen=True)
class PlanPhase:
    key: str
    name: str
    rate_cards: tuple[RateCard, ...]
    duration: str | None = None  # ISO 8601; None runs forever
    description: str | None = None
    metadata: Mapping[str, str] | None = None


@dataclass(frozen=True)
class PlanTerms:
    """What a plan's author writes: the body of a plan create, replace or custom plan."""

    name: str
    currency: str
    billing_cadence: str
    phases: tuple[PlanPhase, ...]
    description: str | None = None
    metadata: Mapping[str, str] | None = None
    alignment: Mapping[str, Any] | None = None
    pro_rating_config: Mapping[str, Any] | None = None
    settlement_mode: str | None = None


@dataclass(frozen=True)
class Plan:
    id: str
    key: str
    version: int
    terms: PlanTerms
    created_at: datetime
    updated_at: datetime
    effective_from: datetime | None = None
    effective_to: datetime | None = None
    deleted_at: datetime | None = None

    def status(self, now: datetime) -> PlanStatus:
        if self.effective_from is None:
            return PlanStatus.DRAFT
        if self.effective_to is not None and self.effective_to <= now:
            return PlanStatus.ARCHIVED
        if now < self.effective_from:
            return PlanStatus.SCHEDULED
        return PlanStatus.ACTIVE


@dataclass(frozen=True)
class PlanFilter:
    ids: Sequence[str] = ()
    keys: Sequence[str] = ()
    statuses: Sequence[PlanStatus] = ()
    currencies: Sequence[str] = ()
    include_deleted: bool = False
    key_versions: Mapping[str, Sequence[int]] = field(default_factory=dict)


def check_key(key: str, field: str = "key") -> None:
    """A plan key names a plan in paths that take an id or a key: it may not look like an id."""
    if not is_storable_text(key) or is_ulid(key):
        raise InvalidInput("a plan key must not be shaped like a ULID", field=field)


def rate_card_field(phase_index: int, card_index: int) -> str:
    return f"phases.{phase_index}.rateCards.{card_index}"


def template_request(card: RateCard, anchor: datetime | None = None) -> EntitlementRequest:
    """The entitlement create a rate card's template stands for (call only with a template)."""
    template = card.entitlement_template
    assert template is not None
    period = card.usage_period() if template.type is EntitlementType.METERED else None
    return EntitlementRequest(
        type=template.type,
        feature_key=card.feature_key,
        metadata=template.metadata,
        usage_period=None if period is None else RecurrenceRequest(period, anchor),
        is_soft_limit=template.is_soft_limit,
        issue_after_reset=template.issue_after_reset,
        issue_after_reset_priority=template.issue_after_reset_priority,
        preserve_overage_at_reset=template.preserve_overage_at_reset,
        config=template.config,
    )


def check_terms(terms: PlanTerms) -> None:
    """Every rule that needs no stored state; one InvalidInput naming each bad field."""
    errors = ErrorList()
    for name, value in (
        ("name", terms.name),
        ("description", terms.description),
        ("metadata", terms.metadata),
        ("alignment", terms.alignment),
        ("proRatingConfig", terms.pro_rating_config),
    ):
        if value is not None and not is_storable_document(value):
            errors.add(name, UNSTORABLE_TEXT)
    _check_duration(errors, terms.billing_cadence, "billingCadence")
    if not terms.phases:
        errors.add("phases", "a plan needs at least one phase", code="required")
    seen_phases: set[str] = set()
    last = len(terms.phases) - 1
    for index, phase in enumerate(terms.phases):
        where = f"phases.{index}"
        if phase.key in seen_phases:
            errors.add(f"{where}.key", f"phase key '{phase.key}' is used twice", code="duplicate")
        seen_phases.add(phase.key)
        if phase.duration is None:
            if index != last:
                errors.add(
                    f"{where}.duration",
                    "only the last phase may run forever (null duration)",
                    code="required",
                )
        else:
            _check_duration(errors, phase.duration, f"{where}.duration")
        for name, value in (
            ("key", phase.key),
            ("name", phase.name),
            ("description", phase.description),
            ("metadata", phase.metadata),
        ):
            if value is not None and not is_storable_document(value):
                errors.add(f"{where}.{name}", UNSTORABLE_TEXT)
        _check_rate_cards(errors, index, phase.rate_cards)
    if not errors.errors and _span_seconds(terms.phases) > INTERVAL_SECONDS_MAX:
        errors.add("phases", "the phases together may span at most a hundred years")
    errors.raise_if_any("invalid plan")


def _span_seconds(phases: Sequence[PlanPhase]) -> float:
    return sum(
        Interval.parse(p.duration, field="duration").approximate_seconds()
        for p in phases
        if p.duration is not None
    )


def _check_rate_cards(errors: ErrorList, phase_index: int, cards: Sequence[RateCard]) -> None:
    seen: set[str] = set()
    features: set[str] = set()
    for index, card in enumerate(cards):
        where = rate_card_field(phase_index, index)
        if card.key in seen:
            errors.add(f"{where}.key", f"rate card key '{card.key}' is used twice", "duplicate")
        seen.add(card.key)
        for name, document in (
            ("key", card.key),
            ("name", card.name),
            ("description", card.description),
            ("featureKey", card.feature_key),
            ("metadata", card.metadata),
            ("price", card.price),
            ("taxConfig", card.tax_config),
            ("discounts", card.discounts),
        ):
            if document is not None and not is_storable_document(document):
                errors.add(f"{where}.{name}", UNSTORABLE_TEXT)
        if card.billing_cadence is not None:
            _check_duration(errors, card.billing_cadence, f"{where}.billingCadence")
        elif card.type is RateCardType.USAGE_BASED:
            errors.add(
                f"{where}.billingCadence",
                "a usage_based rate card needs a billing cadence",
                code="required",
            )
        if card.feature_key is not None:
            if card.key != card.feature_key:
                errors.add(
                    f"{where}.key",
                    f"a rate card with a feature is keyed by it: expected '{card.feature_key}'",
                    code="feature_key_mismatch",
                )
            if card.feature_key in features:
                errors.add(
                    f"{where}.featureKey",
                    f"feature '{card.feature_key}' has two rate cards in this phase",
                    code="duplicate",
                )
            features.add(card.feature_key)
        if card.entitlement_template is None:
            continue
        if card.feature_key is None:
            errors.add(
                f"{where}.featureKey",
                "an entitlement template needs the rate card's featureKey",
                code="required",
            )
            continue
        _check_template(errors, where, card)


def _check_template(errors: ErrorList, where: str, card: RateCard) -> None:
    prefix = f"{where}.entitlementTemplate."
    try:
        check_request(template_request(card))
    except InvalidInput as error:
        nested = with_prefix(error, prefix)
        for item in nested.errors:
            # The template's usagePeriod is a bare duration, not {interval, anchor}.
            name = item.field.replace("usagePeriod.interval", "usagePeriod")
            message = item.message
            if name == prefix + "usagePeriod" and item.code == "required":
                message = "a metered template needs a usagePeriod or the rate card's billingCadence"
            errors.add(name, message, item.code)


def _check_duration(errors: ErrorList, value: str, field_name: str) -> None:
    with errors.collecting():
        checked_interval(Interval.parse(value, field=field_name), field_name)


def phase_starts(phases: Sequence[PlanPhase], start: datetime) -> list[datetime]:
    """When each phase begins for a subscription starting at `start` (durations in order)."""
    starts = [start]
    for phase in phases[:-1]:
        assert phase.duration is not None  # check_terms: only the last phase runs forever
        starts.append(Interval.parse(phase.duration, field="duration").add(starts[-1]))
    return starts
