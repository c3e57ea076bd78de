"""Serving: uvicorn, with the connection limits it lacks.

uvicorn closes an idle keep-alive connection (`keep_alive_timeout_seconds`) but never one that
connected and then sends its request slowly, or not at all: a thousand such connections stay
open indefinitely. `GuardedHttpToolsProtocol` gives every request `header_read_timeout_seconds`
to send its request line and headers and `body_read_timeout_seconds` more for its body (then a
408 and the connection closes), and answers an over-long URL (414) or header block (431) with a
problem instead of a plain-text 400.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from allotment import logs
from allotment.api.problems import problem_body
from allotment.settings import Settings

HEADER_BYTES_MAX = 64 * 1024


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _problem_bytes(status: int, reason: str, detail: str) -> bytes:
    body = problem_body(status, detail, "connection")
    return (
        f"HTTP/1.1 {status} {reason}\r\n"
        "content-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode() + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout = 10.0
    body_timeout = 30.0
    max_url_bytes = 8 * 1024
    # Worker processes (`serve --workers`) get this class by name and read their settings from
    # the environment once; a single process gets a subclass configured from its Settings.
    configured = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not type(self).configured:
            configure_protocol(type(self), Settings())
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._refusal: _Refused | None = None
        self._header_bytes = 0

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._timed_out, what)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self, what: str) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete and what == "body":
            # The app is reading the body: a disconnect tells it, and the client gets a 408.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        if self.cycle is None or self.cycle.response_complete or not self.cycle.response_started:
            self.transport.write(
                _problem_bytes(408, "Request Timeout", f"the request's {what} took too long")
            )
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._timer is None:
            self._arm(self.header_timeout, "headers")

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.max_url_bytes:
            self._refusal = _Refused(414, f"the URL is longer than {self.max_url_bytes} bytes")
            raise self._refusal

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > HEADER_BYTES_MAX:
            self._refusal = _Refused(431, f"the headers are larger than {HEADER_BYTES_MAX} bytes")
            raise self._refusal
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._arm(self.body_timeout, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        refusal, self._refusal = self._refusal, None
        if refusal is not None:
            reason = "URI Too Long" if refusal.status == 414 else "Request Header Fields Too Large"
            self.transport.write(_problem_bytes(refusal.status, reason, refusal.detail))
        else:
            self.transport.write(_problem_bytes(400, "Bad Request", "malformed HTTP request"))
        self.transport.close()


def configure_protocol(protocol: type[GuardedHttpToolsProtocol], settings: Settings) -> None:
    protocol.header_timeout = settings.header_read_timeout_seconds
    protocol.body_timeout = settings.body_read_timeout_seconds
    protocol.max_url_bytes = settings.max_url_bytes
    protocol.configured = True


def protocol_for(settings: Settings) -> type[GuardedHttpToolsProtocol]:
    protocol = type("ConfiguredHttpToolsProtocol", (GuardedHttpToolsProtocol,), {})
    configure_protocol(protocol, settings)
    return protocol


def server_options(settings: Settings, *, workers: int = 1) -> dict[str, Any]:
    """uvicorn's options for `allotment serve` (also usable with uvicorn.Config). With several
    workers uvicorn starts fresh processes, which take the protocol class by name."""
    return {
        "http": protocol_for(settings) if workers == 1 else GuardedHttpToolsProtocol,
        "timeout_keep_alive": max(1, round(settings.keep_alive_timeout_seconds)),
        "access_log": False,
        "server_header": False,
        "log_config": logs.log_config(settings),
        "log_level": settings.log_level,
    }


def serve(app: Any, settings: Settings, *, host: str, port: int) -> None:
    uvicorn.run(app, host=host, port=port, **server_options(settings))
