"""Plan bodies the plan and subscription tests share: Free and Pro, OpenMeter's wire shapes."""

from __future__ import annotations

from typing import Any


def tokens_card(allowance: int, **template: Any) -> dict[str, Any]:
    return {
        "type": "usage_based",
        "key": "ai_tokens",
        "name": "AI tokens",
        "featureKey": "ai_tokens",
        "billingCadence": "P1M",
        "price": None,
        "entitlementTemplate": {"type": "metered", "issueAfterReset": allowance, **template},
    }


SSO_CARD: dict[str, Any] = {
    "type": "flat_fee",
    "key": "saml_sso",
    "name": "SAML SSO",
    "featureKey": "saml_sso",
    "billingCadence": None,
    "price": None,
    "entitlementTemplate": {"type": "boolean"},
}

MODELS_CARD: dict[str, Any] = {
    "type": "flat_fee",
    "key": "models",
    "name": "Models",
    "featureKey": "models",
    "billingCadence": "P1M",
    "price": {"type": "flat", "amount": "49", "paymentTerm": "in_advance"},
    "entitlementTemplate": {"type": "static", "config": '{"allowed": ["gpt-4o", "o1"]}'},
}


def plan_body(key: str, *cards: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": key,
        "name": key.title(),
        "currency": "USD",
        "billingCadence": "P1M",
        "phases": [
            {"key": "default", "name": "Default", "duration": None, "rateCards": list(cards)}
        ],
    }
    body.update(fields)
    return body


def free_plan() -> dict[str, Any]:
    return plan_body("free", tokens_card(1000))


def pro_plan() -> dict[str, Any]:
    return plan_body("pro", tokens_card(10_000_000), SSO_CARD, MODELS_CARD)
