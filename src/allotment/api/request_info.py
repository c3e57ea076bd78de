"""What the edge middleware and the routes share about one request, kept in its ASGI scope."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import Scope

REQUEST_INFO = "allotment.request"
API_KEY = "allotment.api_key"
JSON_DOCUMENT = "allotment.json"


@dataclass(slots=True)
class RequestInfo:
    """`request_id` is ours or the client's (checked); `key_id` is set once the key is known."""

    request_id: str
    key_id: str | None = None


def request_info(scope: Scope) -> RequestInfo | None:
    info: RequestInfo | None = scope.get(REQUEST_INFO)
    return info
