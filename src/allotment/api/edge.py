"""The outermost layer of every request, as one pure ASGI middleware (a few microseconds):

- a request id: the client's `X-Request-Id` when it is a plain token, else a new one; returned
  in `X-Request-Id` and written in every log line of the request;
- limits that need no routing: a URL longer than `max_url_bytes` is a 414, a body declared (or
  streamed) longer than `max_body_bytes` a 413, both before the body is read;
- security headers on every response;
- an unexpected exception becomes a 500 problem and one log line with its type and stack (never
  its message, which may hold what the client sent), instead of a traceback per request;
- one access log line and the request metrics, by route template.
"""

from __future__ import annotations

import logging
import re
import time
from os import urandom
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from allotment.api import metrics, problems
from allotment.api.request_info import REQUEST_INFO, RequestInfo
from allotment.settings import Settings

access_logger = logging.getLogger("allotment.access")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
_PROBLEM = b"application/problem+json"


def security_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    if settings.hsts_seconds:
        headers.append((b"strict-transport-security", f"max-age={settings.hsts_seconds}".encode()))
    return headers


# JSON and text answers embed nothing; an HTML page that sets no policy of its own may load
# what it needs from this origin only.
_API_POLICY = b"default-src 'none'; frame-ancestors 'none'"
_PAGE_POLICY = b"default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"


class Edge:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_url_bytes = settings.max_url_bytes
        self.max_body_bytes = settings.max_body_bytes
        self.headers = security_headers(settings)
        self._children: dict[tuple[str, str, int], Any] = {}
        self._durations: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id: str | None = None
        declared_length: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if _REQUEST_ID.match(value):
                    request_id = value.decode()
            elif name == b"content-length":
                declared_length = value
        # 18 hex characters of randomness: unique enough, and a tenth of a ULID's cost.
        info = RequestInfo(request_id or urandom(9).hex())
        scope[REQUEST_INFO] = info
        request_id_header = (b"x-request-id", info.request_id.encode())
        status = 500
        response_started = False
        is_api = scope["path"].startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", ()))
                has_policy = has_cache_control = False
                content_type = b""
                for name, value in headers:
                    if name == b"content-security-policy":
                        has_policy = True
                    elif name == b"cache-control":
                        has_cache_control = True
                    elif name == b"content-type":
                        content_type = value
                headers.extend(self.headers)
                headers.append(request_id_header)
                if not has_policy:
                    page = content_type.startswith(b"text/html")
                    headers.append(
                        (b"content-security-policy", _PAGE_POLICY if page else _API_POLICY)
                    )
                if is_api and not has_cache_control:
                    # Balances and keys' answers must not sit in shared caches.
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            refusal = self._refusal(scope, declared_length)
            if refusal is not None:
                await self._send_problem(scope, send_with_headers, *refusal)
            else:
                await self.app(scope, self._limited(receive), send_with_headers)
        except Exception as error:
            problems.log_unexpected(error, scope)
            if not response_started:
                await self._send_problem(
                    scope, send_with_headers, 500, "internal error; the server log has details"
                )
        finally:
            self._record(scope, info, status, time.perf_counter() - started)

    def _refusal(self, scope: Scope, declared_length: bytes | None) -> tuple[int, str] | None:
        url_bytes = len(scope.get("raw_path") or b"") + len(scope["query_string"])
        if url_bytes > self.max_url_bytes:
            return 414, f"the URL is longer than {self.max_url_bytes} bytes"
        if declared_length is not None:
            try:
                length = int(declared_length)
            except ValueError:
                return 400, "Content-Length is not a number"
            if length > self.max_body_bytes:
                return 413, f"the body is larger than {self.max_body_bytes} bytes"
        return None

    def _limited(self, receive: Receive) -> Receive:
        """Counts a body sent without Content-Length (chunked) as it arrives."""
        limit = self.max_body_bytes
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"the body is larger than {limit} bytes")
            return message

        return receive_limited

    async def _send_problem(self, scope: Scope, send: Send, status: int, detail: str) -> None:
        body = problems.problem_body(status, detail, scope["path"])
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", _PROBLEM),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _record(self, scope: Scope, info: RequestInfo, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        key = (method, template, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metrics.REQUESTS.labels(method, template, str(status))
        child.inc()
        duration = self._durations.get((method, template))
        if duration is None:
            duration = self._durations[(method, template)] = metrics.REQUEST_DURATION.labels(
                method, template
            )
        duration.observe(seconds)
        if access_logger.isEnabledFor(logging.INFO):
            access_logger.info(
                "request",
                extra={
                    "request_id": info.request_id,
                    "method": method,
                    "route": template,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "key_id": info.key_id,
                    "client": (scope.get("client") or ("", 0))[0],
                },
            )
