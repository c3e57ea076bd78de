"""The one place that maps errors to HTTP status codes and application/problem+json bodies.

Body shape follows OpenMeter: `type`, `title`, `status`, `detail`, `instance`, and a nested
`extensions` object whose `validationErrors` name each bad field.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from allotment import logs
from allotment.api import metrics
from allotment.api.request_info import request_info
from allotment.errors import (
    AllotmentError,
    Conflict,
    FieldError,
    Forbidden,
    IdempotencyKeyReused,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    RateLimited,
    TooLarge,
    Unauthenticated,
    Unavailable,
)

PROBLEM_CONTENT_TYPE = "application/problem+json"
logger = logging.getLogger("allotment.api")

_STATUS: list[tuple[type[AllotmentError], int]] = [
    (InvalidInput, 400),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (TooLarge, 413),
    (Conflict, 409),
    (PreconditionFailed, 412),
    (IdempotencyKeyReused, 422),
    (RateLimited, 429),
    (Unavailable, 503),
]


def status_for(error: AllotmentError) -> int:
    for error_type, status in _STATUS:
        if isinstance(error, error_type):
            return status
    return 400


# What may stay as it is in a URN's path (RFC 8141 pchar, plus "/"); anything else, a space or a
# character outside ASCII in a decoded path, is percent-encoded so `instance` stays a valid URI.
_URN_SAFE = "/:@!$&'()*+,;=-._~"


def instance_uri(path: str) -> str:
    return "urn:request:" + quote(path, safe=_URN_SAFE)


def problem_body(
    status: int,
    detail: str,
    path: str,
    *,
    errors: list[FieldError] | None = None,
    extensions: dict[str, Any] | None = None,
) -> bytes:
    """The problem+json bytes; also sent by the edge middleware, which has no Request."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance_uri(path),
    }
    extra = dict(extensions or {})
    if errors:
        extra["validationErrors"] = [
            {"field": e.field, "code": e.code, "message": e.message} for e in errors
        ]
    if extra:
        body["extensions"] = extra
    return orjson.dumps(body)


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    errors: list[FieldError] | None = None,
    extensions: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(
        content=problem_body(
            status, detail, request.url.path, errors=errors, extensions=extensions
        ),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


async def _allotment_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AllotmentError)
    status = status_for(exc)
    extensions: dict[str, Any] = {}
    if isinstance(exc, Conflict) and exc.conflicting_entity_id:
        extensions["conflictingEntityId"] = exc.conflicting_entity_id
    headers: dict[str, str] | None = None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    elif isinstance(exc, RateLimited | Unavailable):
        headers = {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, RateLimited):
        metrics.RATE_LIMITED.labels(limit=exc.limit).inc()
    if isinstance(exc, Unavailable):
        metrics.DATABASE_UNAVAILABLE.labels(reason=exc.reason).inc()
        # One line per refused request, no traceback: an outage must not flood the log.
        logger.warning(
            "database unavailable",
            extra={"reason": exc.reason, "route": _route_of(request), **_ids(request)},
        )
    return problem_response(
        request, status, exc.message, errors=exc.errors, extensions=extensions, headers=headers
    )


def _location(loc: tuple[Any, ...]) -> str:
    """Pydantic location to wire field: (body, usagePeriod, interval) -> usagePeriod.interval."""
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    # Discriminated unions add the tag as a path element (e.g. 'metered'); keep it, it helps.
    return ".".join(parts) or "body"


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        # Our own validators' messages read as they are written, without pydantic's prefix.
        FieldError(
            field=_location(tuple(e["loc"])),
            message=e["msg"].removeprefix("Value error, "),
            code=e["type"],
        )
        for e in exc.errors()
    ]
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors) or "invalid request"
    return problem_response(request, 400, detail, errors=errors)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
        detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
    return problem_response(request, exc.status_code, detail, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in leaf_routes(request.app.router.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def leaf_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route, also those of included routers (FastAPI keeps those as one entry each)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from leaf_routes(included.routes)
        else:
            yield route


def _route_of(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", None) or "unmatched"


def _ids(request: Request) -> dict[str, str | None]:
    info = request_info(request.scope)
    if info is None:
        return {}
    return {"request_id": info.request_id, "key_id": info.key_id}


def log_unexpected(error: Exception, scope: MutableMapping[str, Any]) -> None:
    """One line for an exception nothing handled (the edge middleware answers it with a 500),
    with the exception's type and stack but never its message (see logs.exception_fields)."""
    info = request_info(scope)
    route = scope.get("route")
    logger.error(
        "unhandled error",
        extra={
            **logs.exception_fields(error),
            "route": getattr(route, "path", None) or "unmatched",
            "request_id": info.request_id if info else None,
            "key_id": info.key_id if info else None,
        },
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(AllotmentError, _allotment_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Anything else reaches the edge middleware, which answers 500 via `log_unexpected`.
