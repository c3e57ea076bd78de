"""Raw-HTTP helpers for entitlement tests: a meter, features and usage, through the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response

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


def problem(response: Response, status: int) -> dict[str, Any]:
    """The problem+json body of an error response, after checking its status and type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank" and body["detail"]
    return body


def fields_of(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body.get("extensions", {}).get("validationErrors", [])]


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")
