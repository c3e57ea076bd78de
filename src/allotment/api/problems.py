"""The one place that maps errors to HTTP status codes and application/problem+json bodies.

Body shape follows OpenMeter: `type`, `title`, `status`, `detail`, `instance`, and a nested
`extensions` object whose `validationErrors` name each bad field.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from allotment.errors import (
    AllotmentError,
    Conflict,
    FieldError,
    Forbidden,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    TooLarge,
    Unauthenticated,
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
]


def status_for(error: AllotmentError) -> int:
    for error_type, status in _STATUS:
        if isinstance(error, error_type):
            return status
    return 400


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    errors: list[FieldError] | None = None,
    extensions: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": f"urn:request:{request.url.path}",
    }
    extra = dict(extensions or {})
    if errors:
        extra["validationErrors"] = [
            {"field": e.field, "code": e.code, "message": e.message} for e in errors
        ]
    if extra:
        body["extensions"] = extra
    return Response(
        content=orjson.dumps(body),
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
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
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
        FieldError(field=_location(tuple(e["loc"])), message=e["msg"], code=e["type"])
        for e in exc.errors()
    ]
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors) or "invalid request"
    return problem_response(request, 400, detail, errors=errors)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return problem_response(request, exc.status_code, detail, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(request, 500, "")


def install(app: FastAPI) -> None:
    app.add_exception_handler(AllotmentError, _allotment_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
