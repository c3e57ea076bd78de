"""Every /api route declares the scope it needs, and is authenticated before its body is read.

A route says what its key must allow with one of `READ`, `INGEST` or `MANAGE` in its decorator's
`dependencies` (the dependency also hands the endpoint the caller's key). `ApiRoute` refuses to
build a route that declares none, so no route can be left open by accident.

FastAPI reads and parses a body before it solves any dependency, so an authentication dependency
would let an anonymous client make the server parse any amount of JSON. `ApiRoute` therefore
checks the key (and the client's abuse limits) first, then parses a JSON body with the strict
parser of `json_body` (duplicate keys, non-finite numbers, depth and sizes), and only then hands
the request to FastAPI.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Depends, Request, Response
from fastapi.params import Depends as DependsParam
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive, Scope

from allotment import logs
from allotment.api import json_body
from allotment.api.rate_limits import RateLimits
from allotment.api.request_info import API_KEY, JSON_DOCUMENT, request_info
from allotment.domain.api_keys import Action, ApiKey
from allotment.domain.portal import PortalToken
from allotment.errors import Unauthenticated
from allotment.services import api_keys, portal
from allotment.services.context import ServiceContext

_ACTION_ATTRIBUTE = "__allotment_action__"
# Parsing a body this large would hold up the event loop noticeably: do it on a worker thread.
_PARSE_OFF_LOOP_BYTES = 64 * 1024


@dataclass(frozen=True)
class Guard:
    """What checking a request needs; one per app, at `app.state.guard`."""

    context: ServiceContext
    rate_limits: RateLimits
    json_limits: json_body.JsonLimits


def _requires(action: Action) -> Any:
    async def api_key(request: Request) -> ApiKey:
        key: ApiKey = request.scope[API_KEY]
        return key

    setattr(api_key, _ACTION_ATTRIBUTE, action)
    api_key.__name__ = f"requires_{action.value}"
    return Depends(api_key)


READ = _requires(Action.READ)
INGEST = _requires(Action.INGEST)
MANAGE = _requires(Action.MANAGE)


def declared_action(dependencies: Sequence[Any] | None) -> Action | None:
    actions = {
        getattr(dependency.dependency, _ACTION_ATTRIBUTE)
        for dependency in dependencies or ()
        if isinstance(dependency, DependsParam)
        and hasattr(dependency.dependency, _ACTION_ATTRIBUTE)
    }
    if len(actions) > 1:
        raise TypeError(f"a route declares several scopes: {sorted(actions)}")
    return actions.pop() if actions else None


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class _ParsedJsonRequest(Request):
    """The request FastAPI sees once the body is parsed: the same bytes, the strict parse."""

    def __init__(self, scope: Scope, receive: Receive, document: Any) -> None:
        super().__init__(scope, receive)
        self._document = document

    async def json(self) -> Any:
        return self._document


def _replay(body: bytes) -> Receive:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def authenticate(request: Request, action: Action) -> ApiKey:
    """The caller's key if it may perform `action`; 401/403/429 problems otherwise."""
    guard: Guard = request.app.state.guard
    client = request.client.host if request.client else "unknown"
    guard.rate_limits.refuse_if_blocked(client)
    secret = bearer_token(request)
    try:
        if secret is None:
            raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
        # A key this process checked recently needs no database, so no worker thread either.
        cached = api_keys.authenticate_from_cache(guard.context, secret, action)
        if cached is not None:
            key = cached
        else:
            key = await run_in_threadpool(api_keys.authenticate, guard.context, secret, action)
    except Unauthenticated:
        guard.rate_limits.authentication_failed(client)
        raise
    request.scope[API_KEY] = key
    info = request_info(request.scope)
    if info is not None:
        info.key_id = key.id
    if action is Action.INGEST:
        guard.rate_limits.ingest(key.id)
    elif action is not Action.READ:
        guard.rate_limits.write(key.id)
    return key


class ApiRoute(APIRoute):
    """An /api route: authenticated, rate-limited and strictly parsed before FastAPI runs it."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        action = declared_action(kwargs.get("dependencies"))
        if action is None:
            raise TypeError(
                f"{path}: every /api route declares its scope with dependencies=[READ], "
                "[INGEST] or [MANAGE] (allotment.api.routing)"
            )
        self.action = action
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        action = self.action
        takes_json = self.body_field is not None
        operation = self.name

        async def guarded(request: Request) -> Response:
            key = await authenticate(request, action)
            if takes_json and _is_json(request.headers.get("content-type")):
                request = await _parse_body(request)
            response = await handler(request)
            if action is Action.MANAGE and response.status_code < 400:
                _audit(request, response, operation, key)
            return response

        return guarded


PORTAL_TOKEN = "allotment.portal_token"


async def authenticate_portal(request: Request) -> PortalToken:
    """The caller's live portal token; 401 otherwise. API keys are no portal tokens, nor the
    other way round: each is looked up only among its own kind."""
    guard: Guard = request.app.state.guard
    client = request.client.host if request.client else "unknown"
    guard.rate_limits.refuse_if_blocked(client)
    try:
        token = await run_in_threadpool(portal.authenticate, guard.context, bearer_token(request))
    except Unauthenticated:
        guard.rate_limits.authentication_failed(client)
        raise
    request.scope[PORTAL_TOKEN] = token
    return token


async def portal_token(request: Request) -> PortalToken:
    """The dependency handing a portal route's endpoint its (already checked) token."""
    token: PortalToken = request.scope[PORTAL_TOKEN]
    return token


class PortalRoute(APIRoute):
    """A customer portal route: authenticated by a portal token, never by an API key."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            await authenticate_portal(request)
            return await handler(request)

        return guarded


def _audit(request: Request, response: Response, operation: str, key: ApiKey) -> None:
    """The audit line of an admin change: what, by which key, on which ids (the path's, which
    named existing entities since the change succeeded, and the created one's)."""
    created: str | None = None
    body = getattr(response, "body", b"")
    if body[:1] == b"{" and b'"id"' in body:
        try:
            created = orjson.loads(body).get("id")
        except orjson.JSONDecodeError:
            created = None
    info = request_info(request.scope)
    route = request.scope.get("route")
    logs.audit(
        operation,
        method=request.method,
        route=getattr(route, "path", None),
        status=response.status_code,
        key_id=key.id,
        request_id=info.request_id if info else None,
        target=dict(request.path_params),
        id=created,
        replayed=response.headers.get("idempotent-replayed") == "true",
    )


async def _parse_body(request: Request) -> Request:
    body = await request.body()
    if not body:
        return request
    limits: json_body.JsonLimits = request.app.state.guard.json_limits
    if len(body) > _PARSE_OFF_LOOP_BYTES:
        document = await run_in_threadpool(json_body.loads, body, limits)
    else:
        document = json_body.loads(body, limits)
    request.scope[JSON_DOCUMENT] = document
    return _ParsedJsonRequest(request.scope, _replay(body), document)
