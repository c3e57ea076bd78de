"""Raw-HTTP helpers for API tests: CloudEvents in their wire form, and the meter,
features and usage entitlement tests start from."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from allotment.ids import new_id

MONTHLY = {"interval": "MONTH", "anchor": "2024-01-01T00:00:00Z"}


def setup_catalogue(client: TestClient) -> None:
    """Meter `tokens` (SUM of $.tokens over `prompt` events), metered feature `ai_tokens`,
    and two features without a meter: `saml_sso` and `models`."""
    meter = {
        "slug": "tokens",
        "eventType": "prompt",
        "aggregation": "SUM",
        "valueProperty": "$.tokens",
        "groupBy": {"model": "$.model"},
    }
    assert client.post("/api/v1/meters", json=meter).status_code == 201
    for feature in (
        {"key": "ai_tokens", "name": "AI tokens", "meterSlug": "tokens"},
        {"key": "saml_sso", "name": "SAML SSO"},
        {"key": "models", "name": "Models"},
    ):
        assert client.post("/api/v1/features", json=feature).status_code == 201


def cloud_event(event_id: str, /, **fields: Any) -> dict[str, Any]:
    """A valid CloudEvent; `field=...` (Ellipsis) leaves a field out."""
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": "billing-test",
        "type": "prompt",
        "subject": "acme",
        "time": "2024-01-15T10:00:00Z",
        "data": {"tokens": 100, "model": "gpt-4"},
    }
    body.update(fields)
    return {key: value for key, value in body.items() if value is not ...}


def send_usage(client: TestClient, tokens: float, at: str, subject: str = "acme") -> None:
    event = cloud_event(
        new_id(),
        source="tests",
        subject=subject,
        time=at,
        data={"tokens": tokens, "model": "gpt-4o"},
    )
    response = client.post("/api/v1/events", json=event)
    assert response.status_code == 204, response.text
