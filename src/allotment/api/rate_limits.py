"""Abuse limits, in memory of this process (no database access per request).

- Authentication failures, per client address: past the limit every request from that address
  is refused with 429 until the window ends, before its key is even looked at, so keys cannot be
  guessed quickly. Checking costs one dictionary look-up; only a failure touches the limiter.
- Writes, per API key: ingest has its own (higher) limit, every other write shares one.

Counting uses the `limits` library's moving windows. Behind a proxy, run uvicorn with
`--proxy-headers` so the client address is the caller's, not the proxy's.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from allotment.errors import RateLimited
from allotment.settings import Settings

_BLOCKED_ENTRIES_MAX = 10_000


def _limit(text: str) -> RateLimitItem | None:
    return parse(text) if text.strip() else None


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._auth_failures = _limit(settings.rate_limit_auth_failures)
        self._writes = _limit(settings.rate_limit_writes)
        self._ingest = _limit(settings.rate_limit_ingest)
        self._blocked_until: dict[str, float] = {}

    def refuse_if_blocked(self, client: str) -> None:
        until = self._blocked_until.get(client)
        if until is None:
            return
        remaining = until - time.time()
        if remaining > 0:
            raise RateLimited(
                "too many failed authentication attempts from this address",
                retry_after=math.ceil(remaining),
                limit="auth-failures",
            )
        del self._blocked_until[client]

    def authentication_failed(self, client: str) -> None:
        limit = self._auth_failures
        if limit is None or self._limiter.hit(limit, "auth-failures", client):
            return
        reset = self._limiter.get_window_stats(limit, "auth-failures", client).reset_time
        if len(self._blocked_until) >= _BLOCKED_ENTRIES_MAX:
            now = time.time()
            self._blocked_until = {c: u for c, u in self._blocked_until.items() if u > now}
        self._blocked_until[client] = reset
        raise RateLimited(
            "too many failed authentication attempts from this address",
            retry_after=math.ceil(reset - time.time()),
            limit="auth-failures",
        )

    def write(self, key_id: str) -> None:
        self._take(self._writes, "writes", key_id)

    def ingest(self, key_id: str) -> None:
        self._take(self._ingest, "ingest", key_id)

    def _take(self, limit: RateLimitItem | None, kind: str, key_id: str) -> None:
        if limit is None or self._limiter.hit(limit, kind, key_id):
            return
        reset = self._limiter.get_window_stats(limit, kind, key_id).reset_time
        raise RateLimited(
            f"this API key exceeded its {kind} limit ({limit})",
            retry_after=math.ceil(reset - time.time()),
            limit=kind,
        )
