"""What writes hand the notification evaluator, in their own transaction.

Ingest queues the subjects it stored usage for; grants, voids, resets, overrides and new metered
entitlements queue the entitlement. That costs a write one small insert (append-only, so
concurrent ingests never wait on each other), and only while an active rule exists. Computing
values there instead would slow ingest down; check access, a read, does nothing at all. The
evaluator (services/notification_evaluation.py) runs in maintenance, which ingest wakes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from allotment.storage import UnitOfWork


def note_change(
    uow: UnitOfWork,
    at: datetime,
    *,
    subject_keys: Iterable[str] = (),
    entitlement_ids: Iterable[str] = (),
) -> bool:
    """Queue entitlements for evaluation in the caller's transaction, if any rule is active.
    True when queued (the caller wakes maintenance after committing)."""
    if not uow.notifications.has_active_rules():
        return False
    uow.outbox.enqueue(at, subject_keys=subject_keys, entitlement_ids=entitlement_ids)
    return True
