"""Idempotency keys, as Stripe defines them: a request sent again with the same key and the same
content gets the first answer again, and changes nothing; the same key with different content is
refused. The first answer is stored in the transaction that made the change, so "changed but not
yet remembered" cannot happen: a retry after a timeout or a crash never grants twice.

A request that fails (a 4xx) changes nothing and stores nothing, so its retry runs afresh.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StoredAnswer:
    fingerprint: str
    status_code: int
    media_type: str | None
    body: bytes
