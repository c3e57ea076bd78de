"""Checking error responses: an application/problem+json body with its status, and the fields it
names."""

from __future__ import annotations

from typing import Any

from httpx import Response


def problem(response: Response, status: int = 400) -> dict[str, Any]:
    """The problem+json body of an error response, after checking its status and type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank" and body["detail"]
    return body


def fields_of(body: dict[str, Any]) -> list[str]:
    """The fields a problem body names, in order."""
    return [error["field"] for error in body.get("extensions", {}).get("validationErrors", [])]


def problem_fields(response: Response, status: int = 400) -> list[str]:
    """The fields an error response names, after checking it is a problem with that status."""
    return fields_of(problem(response, status))
