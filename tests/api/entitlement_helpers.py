"""Raw-HTTP helpers for entitlement tests: a meter, features and usage, through the API."""

from __future__ import annotations

from datetime import datetime

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


def send_usage(client: TestClient, tokens: float, at: str, subject: str = "acme") -> None:
    event = {
        "specversion": "1.0",
        "id": new_id(),
        "source": "tests",
        "type": "prompt",
        "subject": subject,
        "time": at,
        "data": {"tokens": tokens, "model": "gpt-4o"},
    }
    response = client.post("/api/v1/events", json=event)
    assert response.status_code == 204, response.text


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")
