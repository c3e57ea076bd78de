"""A real HTTP webhook receiver on localhost that verifies every request with the
`standardwebhooks` library, as a customer's endpoint would. Ports: 18700-18799 (this suite's)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

PORTS = range(18700, 18800)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a sender that gave up (its timeout) closed the connection: expected here


@dataclass
class Received:
    webhook_id: str
    payload: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Receiver:
    secret: str | None = None
    status: int = 200
    """What it answers to a verified request (500: "down but listening")."""
    answer: bytes | None = None
    """The body it answers (default: "ok", or "down" for an error status)."""
    delay: float = 0.0
    """Seconds it waits before answering."""
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """Why requests failed verification."""
    port: int = 0
    _server: _Server | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def payloads(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.payload for r in self.received]

    def unique_payloads(self) -> list[dict[str, Any]]:
        """Deduplicated by `webhook-id`, as receivers are told to."""
        seen: dict[str, dict[str, Any]] = {}
        with self._lock:
            for r in self.received:
                seen.setdefault(r.webhook_id, r.payload)
        return list(seen.values())

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    assert receiver.secret is not None
                    Webhook(receiver.secret).verify(body, headers)
                except (WebhookVerificationError, AssertionError) as error:
                    with receiver._lock:
                        receiver.refused.append(str(error) or type(error).__name__)
                    self._answer(401, b"bad signature")
                    return
                if receiver.delay:
                    time.sleep(receiver.delay)
                if receiver.status < 300:
                    with receiver._lock:
                        receiver.received.append(
                            Received(headers["webhook-id"], json.loads(body), headers)
                        )
                default = b"ok" if receiver.status < 300 else b"down"
                self._answer(receiver.status, receiver.answer or default)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        last: OSError | None = None
        for port in PORTS:
            try:
                self._server = _Server(("127.0.0.1", port), Handler)
            except OSError as error:
                last = error
                continue
            self.port = port
            threading.Thread(target=self._server.serve_forever, daemon=True).start()
            return self
        raise RuntimeError(f"no free port in {PORTS}: {last}")

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
