"""A client-side backstop for a PostgreSQL server that stops answering.

`statement_timeout` is enforced by the server, so a server that is frozen (stopped, swapping,
cut off behind a dropped route) cancels nothing, and its kernel may still acknowledge every
packet, so TCP timeouts never fire either. A request would then hold its thread and connection
until the server came back. `Deadlines` watches each transaction and pre-ping: one whose deadline
passes gets its socket shut down, the driver fails at once, and the request answers 503.

One daemon thread per database, started on first use, waking only when a deadline is due.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any


class Deadlines:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._watched: dict[int, tuple[float, Any]] = {}
        self._next_token = 0
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.expired = 0

    def watch(self, dbapi_connection: Any, seconds: float) -> int:
        deadline = time.monotonic() + seconds
        with self._lock:
            self._next_token += 1
            token = self._next_token
            self._watched[token] = (deadline, dbapi_connection)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="allotment-db-deadlines", daemon=True
                )
                self._thread.start()
            self._lock.notify()
        return token

    def unwatch(self, token: int) -> None:
        with self._lock:
            self._watched.pop(token, None)

    @contextlib.contextmanager
    def watching(self, dbapi_connection: Any, seconds: float) -> Iterator[None]:
        token = self.watch(dbapi_connection, seconds)
        try:
            yield
        finally:
            self.unwatch(token)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopped:
                    return
                now = time.monotonic()
                overdue = [t for t, (deadline, _) in self._watched.items() if deadline <= now]
                connections = [self._watched.pop(t)[1] for t in overdue]
                if not connections:
                    upcoming = min((d for d, _ in self._watched.values()), default=now + 60)
                    self._lock.wait(timeout=max(0.05, upcoming - now))
                    continue
            for connection in connections:
                self.expired += 1
                _shut_socket(connection)


def _shut_socket(dbapi_connection: Any) -> None:
    """Ends the connection under the driver's feet: its blocked wait returns with an error."""
    try:
        descriptor = dbapi_connection.pgconn.socket
    except Exception:
        return
    try:
        duplicate = socket.socket(fileno=os.dup(descriptor))
    except OSError:
        return
    try:
        duplicate.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        duplicate.close()
