"""Plan terms as JSON documents in the API's field names: what `plans.phases` and
`subscriptions.terms` hold, and what the CLI reads from a plan file.

Amounts are written as strings: a JSON column would otherwise keep them as binary floats; they
are read back from strings or exact numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from allotment.domain.entitlements import EntitlementType
from allotment.domain.plans import (
    EntitlementTemplate,
    PlanPhase,
    PlanTerms,
    RateCard,
    RateCardType,
)
from allotment.errors import InvalidInput


def _template_document(template: EntitlementTemplate) -> dict[str, Any]:
    amount = template.issue_after_reset
    return {
        "type": template.type.value,
        "metadata": None if template.metadata is None else dict(template.metadata),
        "isSoftLimit": template.is_soft_limit,
        "issueAfterReset": None if amount is None else str(amount),
        "issueAfterResetPriority": template.issue_after_reset_priority,
        "preserveOverageAtReset": template.preserve_overage_at_reset,
        "usagePeriod": template.usage_period,
        "config": template.config,
    }


def _template(document: Mapping[str, Any]) -> EntitlementTemplate:
    amount = document.get("issueAfterReset")
    return EntitlementTemplate(
        type=EntitlementType(document["type"]),
        metadata=document.get("metadata"),
        is_soft_limit=document.get("isSoftLimit"),
        issue_after_reset=None if amount is None else Decimal(amount),
        issue_after_reset_priority=document.get("issueAfterResetPriority"),
        preserve_overage_at_reset=document.get("preserveOverageAtReset"),
        usage_period=document.get("usagePeriod"),
        config=document.get("config"),
    )


def _card_document(card: RateCard) -> dict[str, Any]:
    template = card.entitlement_template
    return {
        "type": card.type.value,
        "key": card.key,
        "name": card.name,
        "description": card.description,
        "metadata": None if card.metadata is None else dict(card.metadata),
        "featureKey": card.feature_key,
        "entitlementTemplate": None if template is None else _template_document(template),
        "billingCadence": card.billing_cadence,
        "price": None if card.price is None else dict(card.price),
        "taxConfig": None if card.tax_config is None else dict(card.tax_config),
        "discounts": None if card.discounts is None else dict(card.discounts),
    }


def _card(document: Mapping[str, Any]) -> RateCard:
    template = document.get("entitlementTemplate")
    return RateCard(
        type=RateCardType(document["type"]),
        key=document["key"],
        name=document["name"],
        description=document.get("description"),
        metadata=document.get("metadata"),
        feature_key=document.get("featureKey"),
        entitlement_template=None if template is None else _template(template),
        billing_cadence=document.get("billingCadence"),
        price=document.get("price"),
        tax_config=document.get("taxConfig"),
        discounts=document.get("discounts"),
    )


def phases_document(phases: tuple[PlanPhase, ...]) -> list[dict[str, Any]]:
    return [
        {
            "key": phase.key,
            "name": phase.name,
            "description": phase.description,
            "metadata": None if phase.metadata is None else dict(phase.metadata),
            "duration": phase.duration,
            "rateCards": [_card_document(card) for card in phase.rate_cards],
        }
        for phase in phases
    ]


def phases_of(document: list[Mapping[str, Any]]) -> tuple[PlanPhase, ...]:
    return tuple(
        PlanPhase(
            key=phase["key"],
            name=phase["name"],
            description=phase.get("description"),
            metadata=phase.get("metadata"),
            duration=phase.get("duration"),
            rate_cards=tuple(_card(card) for card in phase["rateCards"]),
        )
        for phase in document
    )


def terms_document(terms: PlanTerms) -> dict[str, Any]:
    """The whole terms, for a subscription's copy."""
    return {
        "name": terms.name,
        "description": terms.description,
        "metadata": None if terms.metadata is None else dict(terms.metadata),
        "currency": terms.currency,
        "billingCadence": terms.billing_cadence,
        "alignment": None if terms.alignment is None else dict(terms.alignment),
        "proRatingConfig": (
            None if terms.pro_rating_config is None else dict(terms.pro_rating_config)
        ),
        "settlementMode": terms.settlement_mode,
        "phases": phases_document(terms.phases),
    }


def terms_of(document: Mapping[str, Any]) -> PlanTerms:
    return PlanTerms(
        name=document["name"],
        description=document.get("description"),
        metadata=document.get("metadata"),
        currency=document["currency"],
        billing_cadence=document["billingCadence"],
        alignment=document.get("alignment"),
        pro_rating_config=document.get("proRatingConfig"),
        settlement_mode=document.get("settlementMode"),
        phases=phases_of(document["phases"]),
    )


def terms_from_file(document: Mapping[str, Any]) -> tuple[str | None, PlanTerms]:
    """A plan file (a `PlanCreate` body): its key and terms, or InvalidInput naming what is
    missing or malformed. The terms still need `plans.check_terms`."""
    try:
        phases = [
            {
                **phase,
                "rateCards": [
                    {**card, "entitlementTemplate": _file_template(card)}
                    for card in phase.get("rateCards", [])
                ],
            }
            for phase in document["phases"]
        ]
        terms = terms_of({"currency": "USD", **document, "phases": phases})
    except KeyError as missing:
        name = str(missing.args[0])
        raise InvalidInput(f"the plan has no {name}", field=name) from None
    except (TypeError, ValueError, ArithmeticError) as error:
        raise InvalidInput(f"not a plan: {error}", field="phases") from error
    key = document.get("key")
    return (None if key is None else str(key)), terms


def _file_template(card: Mapping[str, Any]) -> Mapping[str, Any] | None:
    template = card.get("entitlementTemplate")
    if template is None or template.get("issueAfterReset") is None:
        return template
    return {**template, "issueAfterReset": str(template["issueAfterReset"])}
