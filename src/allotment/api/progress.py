"""Progress of meter queries sent with a `clientId`, for `GET /api/v1/info/progress/{id}`.

OpenMeter reports how far a long query has come. Allotment answers a query in one request, so
a query's progress is complete (or failed) by the time its answer is sent; what a client can
ask is whether the query of that id ran and how it ended. Kept in the memory of each server
process, the newest `_KEPT` ids for `_KEPT_SECONDS`: an id asked of another worker process, or
after a restart, is unknown (404)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

_KEPT = 10_000
_KEPT_SECONDS = 3600


@dataclass(frozen=True)
class Progress:
    success: int
    failed: int
    total: int
    updated_at: datetime


class ProgressTracker:
    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._entries: OrderedDict[str, Progress] = OrderedDict()
        self._lock = threading.Lock()

    def _set(self, client_id: str, success: int, failed: int) -> None:
        now = self._clock()
        with self._lock:
            self._entries.pop(client_id, None)
            self._entries[client_id] = Progress(success, failed, 1, now)
            while len(self._entries) > _KEPT:
                self._entries.popitem(last=False)

    @contextmanager
    def track(self, client_id: str | None) -> Iterator[None]:
        """Around one query: started (0 of 1), then done (1 of 1) or failed."""
        if client_id is None:
            yield
            return
        self._set(client_id, 0, 0)
        try:
            yield
        except Exception:
            self._set(client_id, 0, 1)
            raise
        self._set(client_id, 1, 0)

    def get(self, client_id: str) -> Progress | None:
        with self._lock:
            found = self._entries.get(client_id)
        if found is None or self._clock() - found.updated_at > timedelta(seconds=_KEPT_SECONDS):
            return None
        return found
