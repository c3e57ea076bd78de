"""The check-access hot path, answered before FastAPI routes the request.

`GET …/entitlements/{feature}/value` is called before every expensive request of our users'
products. On a small machine FastAPI's route matching, dependency solving and thread hops cost
more than the read itself, so the common case is answered here, inside the edge middleware (so
request ids, security headers, logs and metrics are the same): a GET of one of the three value
paths or of a customer's v1 access list, no query string, a key that may read, an answer the
service computes without an error. Answers are given again while nothing they depend on
changed (services/answer_cache.py), so a repeated check sends no statement at all. Anything
else (a `time` parameter, a bad key, an error of any kind) falls through to the FastAPI route,
which answers exactly as before and owns every error message; the work done here is then
simply repeated, which a read may afford.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from anyio import to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from allotment import json_exact
from allotment.api import metrics
from allotment.api.rate_limits import RateLimits
from allotment.api.request_info import request_info
from allotment.api.schemas.entitlements import value_document
from allotment.domain.api_keys import Action, ApiKey
from allotment.domain.text import is_storable_text
from allotment.services import answer_cache, api_keys, entitlement_values
from allotment.services.answer_cache import ReadScope
from allotment.services.context import ServiceContext
from allotment.services.entitlement_owners import CustomerOwner, Owner, SubjectOwner

_SEGMENT: Final = r"([^/]+)"

T = TypeVar("T")


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


_ACCESS_ROUTE: Final = _Template("/api/v1/customers/{customerIdOrKey}/access")
_ACCESS_PATH: Final = re.compile(rf"/api/v1/customers/{_SEGMENT}/access")

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
            or not scope["path"].endswith(("/value", "/access"))
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
        access = _ACCESS_PATH.fullmatch(path)
        if access is not None:
            return await self._access(scope, access.group(1))
        for route in _ROUTES:
            match = route.pattern.fullmatch(path)
            if match is not None:
                break
        else:
            return None
        owner_text, feature = match.groups()
        if not (is_storable_text(owner_text) and is_storable_text(feature)):
            return None
        key = await self._authenticated(scope)
        if key is None:
            return None
        owner = route.owner(owner_text)
        with_grant_balances = route.with_grant_balances

        def compute() -> tuple[tuple[bytes, bool], ReadScope | None]:
            value, depends_on = entitlement_values.entitlement_value_now(
                self.context, owner, feature
            )
            document: Any = value_document(value, with_grant_balances=with_grant_balances)
            return (json_exact.dumps(document), value.has_access), depends_on

        found = await self._kept_or_computed((route.route.path, owner_text, feature), compute)
        if found is None:
            return None
        body, has_access = found
        _describe(scope, route.route, key.id)
        metrics.record_access_check(has_access)
        return body

    async def _access(self, scope: Scope, customer: str) -> bytes | None:
        if not is_storable_text(customer):
            return None
        key = await self._authenticated(scope)
        if key is None:
            return None

        def compute() -> tuple[bytes, ReadScope | None]:
            values, depends_on = entitlement_values.customer_access_now(self.context, customer)
            documents = {
                feature: value_document(value, with_grant_balances=False)
                for feature, value in values.items()
            }
            return json_exact.dumps({"entitlements": documents}), depends_on

        body = await self._kept_or_computed((_ACCESS_ROUTE.path, customer), compute)
        if body is not None:
            _describe(scope, _ACCESS_ROUTE, key.id)
        return body

    async def _authenticated(self, scope: Scope) -> ApiKey | None:
        """The request's key if it may read; None leaves the request to FastAPI, which says
        why not. A key this process has not checked lately costs one statement here: falling
        through for it would compute the answer without keeping it, every few seconds."""
        secret = _bearer(scope)
        if secret is None:
            return None
        try:
            self.rate_limits.refuse_if_blocked((scope.get("client") or ("unknown", 0))[0])
            key = api_keys.authenticate_from_cache(self.context, secret, Action.READ)
            if key is not None:
                return key
            if self.inline:
                return api_keys.authenticate(self.context, secret, Action.READ)
            return await to_thread.run_sync(
                api_keys.authenticate, self.context, secret, Action.READ
            )
        except Exception:
            return None

    async def _kept_or_computed(
        self, key: Hashable, compute: Callable[[], tuple[T, ReadScope | None]]
    ) -> T | None:
        """The answer kept for `key` (services/answer_cache.py), else computed; None when
        computing failed (FastAPI's route gives the error its status and message)."""
        kept: T | None = answer_cache.kept(self.context, key)
        if kept is not None:
            return kept
        try:
            if self.inline:
                return answer_cache.answer(self.context, key, compute)
            return await to_thread.run_sync(answer_cache.answer, self.context, key, compute)
        except Exception:
            return None


def _describe(scope: Scope, route: _Template, key_id: str) -> None:
    """What logs and metrics say of a request answered here."""
    scope["route"] = route
    info = request_info(scope)
    if info is not None:
        info.key_id = key_id


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer":
                return None
            return token.strip() or None
    return None
