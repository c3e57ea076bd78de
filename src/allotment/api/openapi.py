"""The server's own OpenAPI document, adjusted to say what the server really answers.

FastAPI documents request-validation failures as 422 with its own error shape; Allotment answers
them (as OpenMeter does) with 400 application/problem+json. Every /api route also answers 401 and
403 problems for a missing or out-of-scope API key, 429 past a rate limit and 503 when the
database cannot serve; routes with a path parameter 404, writes 409, bodies 413, and routes that
take an Idempotency-Key 422 for a key reused with another request.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 7807 problem, as OpenMeter sends it.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "example": "about:blank"},
        "title": {"type": "string", "example": "Bad Request"},
        "status": {"type": "integer", "example": 400},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "extensions": {
            "type": "object",
            "properties": {
                "validationErrors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "field": {"type": "string"},
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    },
                },
                "conflictingEntityId": {"type": "string"},
            },
        },
    },
}

_PROBLEM_RESPONSES = {
    "400": "Invalid input: the problem names each bad field",
    "401": "Missing, unknown or revoked API key",
    "403": "The API key's scope does not allow this operation",
    "429": "Too many requests from this key (writes) or address (failed keys); see Retry-After",
    "503": "The database cannot serve the request now; retry after Retry-After seconds",
}
_NOT_FOUND = "No resource has the id or key the path names"
_CONFLICT = "The request collides with existing state (e.g. a key already in use)"
_TOO_LARGE = "The body, a list or a field is larger than the server's limits"
_REUSED_KEY = "The Idempotency-Key was already used with a different request"
_WRITES = frozenset({"post", "put", "patch", "delete"})


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def _readable_schema_name(name: str) -> str:
    """`Page_Annotated_Union_EntitlementMeteredV2__...` -> `PageEntitlementV2`-style names."""
    if not name.startswith("Page_"):
        return name
    inner = name[len("Page_") :]
    if inner.startswith("Annotated_Union_"):
        version = re.search(r"V(\d)", inner)
        return f"PageEntitlement{'V' + version.group(1) if version else ''}"
    return "Page" + inner.strip("_")


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                "#/components/schemas/"
                + renames.get(value.rsplit("/", 1)[-1], value.rsplit("/", 1)[-1])
                if key == "$ref" and isinstance(value, str)
                else _rename_refs(value, renames)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rename_refs(item, renames) for item in node]
    return node


def build_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if not path.startswith("/api/"):
                continue
            for status, description in _PROBLEM_RESPONSES.items():
                responses.setdefault(status, _problem(description))
            if "{" in path:
                responses.setdefault("404", _problem(_NOT_FOUND))
            if method in _WRITES and not path.endswith(("/query", "/events")):
                responses.setdefault("409", _problem(_CONFLICT))
            if "requestBody" in operation:
                responses.setdefault("413", _problem(_TOO_LARGE))
            parameters = operation.get("parameters", [])
            if any(p.get("name") == "Idempotency-Key" for p in parameters):
                responses.setdefault("422", _problem(_REUSED_KEY))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    renames = {name: _readable_schema_name(name) for name in schemas}
    document["components"]["schemas"] = {renames[n]: s for n, s in schemas.items()}
    document["paths"] = _rename_refs(document["paths"], renames)
    document["components"] = _rename_refs(document["components"], renames)
    app.openapi_schema = document
    return document
