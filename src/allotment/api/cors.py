"""CORS: closed unless `cors_allow_origins` names origins (a dashboard served elsewhere).

Starlette's CORSMiddleware does the work; this only makes a refused preflight a 403
problem+json like every other refusal (Starlette answers it with plain text), and answers
preflights when CORS is closed too, rather than letting them fall through to a 405.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from allotment.api.problems import PROBLEM_CONTENT_TYPE, problem_body
from allotment.settings import Settings

ALLOWED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
ALLOWED_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id")
EXPOSED_HEADERS = ("X-Request-Id", "Retry-After", "Idempotent-Replayed", "Location")


def _refused(headers: dict[str, str], reason: str) -> Response:
    headers = {
        name: value
        for name, value in headers.items()
        if not name.lower().startswith(("access-control", "content-"))
    }
    return Response(
        problem_body(403, f"cross-origin request refused: {reason}", "preflight"),
        status_code=403,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


class Cors(CORSMiddleware):
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        super().__init__(
            app,
            allow_origins=settings.cors_allow_origins,
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
            max_age=settings.cors_max_age_seconds,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        reason = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        return _refused(dict(response.headers), f"{reason} not allowed")


class ClosedCors:
    """No origin is allowed: requests pass untouched, preflights get a 403 problem."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                response = _refused(
                    {"Vary": "Origin"},
                    "this server allows no other origin (see ALLOTMENT_CORS_ALLOW_ORIGINS)",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
