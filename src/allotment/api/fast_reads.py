"""The check-access hot path, answered before FastAPI routes the request.

`GET …/entitlements/{feature}/value` is called before every expensive request of our users'
products. On a small machine FastAPI's route matching, dependency solving and thread hops cost
more than the read itself, so the common case is answered here, inside the edge middleware (so
request ids, security headers, logs and metrics are the same): a GET of one of the three value
paths, no query string, a key this process checked recently that may read, a value the service
computes without an error. Anything else (a `time` parameter, an unknown key, an error of any
kind) falls through to the FastAPI route, which answers exactly as before and owns every error
message; the work done here is then simply repeated, which a read may afford.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from anyio import to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from allotment import json_exact
from allotment.api import metrics
from allotment.api.rate_limits import RateLimits
from allotment.api.request_info import request_info
from allotment.api.schemas.entitlements import value_document
from allotment.domain.api_keys import Action
from allotment.domain.text import is_storable_text
from allotment.services import api_keys, entitlement_values
from allotment.services.context import ServiceContext
from allotment.services.entitlement_owners import CustomerOwner, Owner, SubjectOwner

_SEGMENT: Final = r"([^/]+)"


@dataclass(frozen=True)
class _Template:
    """Stands in for the FastAPI route in `scope["route"]`: logs and metrics read its path."""

    path: str


@dataclass(frozen=True)
class _ValueRoute:
    pattern: re.Pattern[str]
    route: _Template
    owner: Callable[[str], Owner]
    with_grant_balances: bool


_ROUTES: Final = (
    _ValueRoute(
        re.compile(rf"/api/v1/customers/{_SEGMENT}/entitlements/{_SEGMENT}/value"),
        _Template("/api/v1/customers/{customerIdOrKey}/entitlements/{featureKey}/value"),
        CustomerOwner,
        False,
    ),
    _ValueRoute(
        re.compile(rf"/api/v2/customers/{_SEGMENT}/entitlements/{_SEGMENT}/value"),
        _Template(
            "/api/v2/customers/{customerIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/value"
        ),
        CustomerOwner,
        True,
    ),
    _ValueRoute(
        re.compile(rf"/api/v1/subjects/{_SEGMENT}/entitlements/{_SEGMENT}/value"),
        _Template(
            "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/value"
        ),
        SubjectOwner,
        False,
    ),
)


class FastValueReads:
    def __init__(self, app: ASGIApp, context: ServiceContext, rate_limits: RateLimits) -> None:
        self.app = app
        self.context = context
        self.rate_limits = rate_limits
        # SQLite answers from this process's own file in well under a millisecond: a worker
        # thread would cost more than it spares. A PostgreSQL read waits on the network.
        self.inline = context.database.dialect == "sqlite"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or scope["query_string"]
            or not scope["path"].endswith("/value")
        ):
            await self.app(scope, receive, send)
            return
        body = await self._answer(scope)
        if body is None:
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope) -> bytes | None:
        """The response body, or None to leave the request to FastAPI."""
        path: str = scope["path"]
        for route in _ROUTES:
            match = route.pattern.fullmatch(path)
            if match is not None:
                break
        else:
            return None
        owner_text, feature = match.groups()
        if not (is_storable_text(owner_text) and is_storable_text(feature)):
            return None
        secret = _bearer(scope)
        if secret is None:
            return None
        try:
            self.rate_limits.refuse_if_blocked((scope.get("client") or ("unknown", 0))[0])
            key = api_keys.authenticate_from_cache(self.context, secret, Action.READ)
        except Exception:
            return None
        if key is None:
            return None
        owner = route.owner(owner_text)
        try:
            if self.inline:
                value = entitlement_values.entitlement_value(self.context, owner, feature)
            else:
                value = await to_thread.run_sync(
                    entitlement_values.entitlement_value, self.context, owner, feature
                )
        except Exception:
            return None  # FastAPI's route gives the error its status and message
        scope["route"] = route.route
        info = request_info(scope)
        if info is not None:
            info.key_id = key.id
        metrics.record_access_check(value.has_access)
        document: Any = value_document(value, with_grant_balances=route.with_grant_balances)
        return json_exact.dumps(document)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer":
                return None
            return token.strip() or None
    return None
