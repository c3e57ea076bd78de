"""A healthy webhook receiver for the notification figures: a threaded HTTP server on
127.0.0.1 in the bench process that answers 204 at once, checks each request's Standard Webhooks
signature and keeps its arrival time (`time.perf_counter`, the clock the bench times ingests
with) and parsed body."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

from bench.server import free_port


@dataclass(frozen=True)
class Arrival:
    at: float
    """`time.perf_counter()` when the body had been read."""
    webhook_id: str
    payload: dict[str, Any]


class _Http(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a sender that closed its connection early is not the receiver's problem


class Receiver:
    """Use as a context manager; `arrivals` and `refused` are safe to read while it runs."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.arrivals: list[Arrival] = []
        self.refused: list[str] = []
        self._changed = threading.Condition()
        self._http: _Http | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/allotment-bench"

    def __enter__(self) -> Receiver:
        self._http = _Http(("127.0.0.1", free_port()), self._handler())
        self.port = self._http.server_address[1]
        threading.Thread(
            target=self._http.serve_forever, name="bench-receiver", daemon=True
        ).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def wait_for(self, wanted: Any, timeout: float) -> Arrival | None:
        """The first arrival whose payload `wanted(payload)` accepts, waiting up to `timeout`
        seconds for it; None if none came."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for arrival in self.arrivals[seen:]:
                    if wanted(arrival.payload):
                        return arrival
                seen = len(self.arrivals)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)

    def count(self) -> int:
        with self._changed:
            return len(self.arrivals)

    def _record(self, arrival: Arrival | None, refusal: str | None) -> None:
        with self._changed:
            if arrival is not None:
                self.arrivals.append(arrival)
            if refusal is not None:
                self.refused.append(refusal)
            self._changed.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as the sender's HTTP client expects of a real endpoint.
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                at = time.perf_counter()
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    Webhook(receiver.secret).verify(body, headers)
                    payload = json.loads(body)
                except (WebhookVerificationError, ValueError) as error:
                    receiver._record(None, f"{type(error).__name__}: {error}")
                    self._answer(401)
                    return
                receiver._record(Arrival(at, headers.get("webhook-id", ""), payload), None)
                self._answer(204)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
