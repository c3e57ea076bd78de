"""Corrections: an admin keeps a stored event out of every usage read, or lets it count again.

Usage that should not count (a test event sent with a production key, a runaway client's burst,
a bug that double-sent under new ids) cannot be fixed with a "negative" correcting event: MIN,
MAX, LATEST and UNIQUE_COUNT have no inverse. So an event is *excluded*: it stays stored, so its
`(source, id)` still deduplicates retries of it, and the event listing still shows it, but no
meter query, entitlement value, roll-up or backfill counts it. Restoring it makes it count again,
exactly as if it had never been excluded. Every exclusion and restoration is recorded with its
reason and the key that made it, and rows of that trail are never changed or removed.

An excluded event changes earlier time, so like a late event it invalidates the balance
checkpoints from its minute on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

REASON_LENGTH_MAX: Final = 1024


class CorrectionAction(StrEnum):
    EXCLUDE = "exclude"
    RESTORE = "restore"


@dataclass(frozen=True)
class EventRef:
    """An event as clients name it: CloudEvents' `(source, id)`, its unique key."""

    source: str
    id: str


@dataclass(frozen=True)
class EventCorrection:
    """One entry of the audit trail."""

    id: str
    event: EventRef
    event_type: str
    event_subject: str
    event_time: datetime
    action: CorrectionAction
    reason: str
    api_key_id: str | None
    """The admin key that made it; None when made with the CLI on the server's machine."""
    created_at: datetime


def reason_problem(reason: str) -> str | None:
    """Why `reason` cannot be recorded, or None: a correction must say why it was made."""
    if not reason.strip():
        return "must say why the event is corrected"
    if len(reason) > REASON_LENGTH_MAX:
        return f"must be at most {REASON_LENGTH_MAX} characters"
    return None


def already_problem(action: CorrectionAction, excluded: bool) -> str | None:
    """Why `action` would change nothing for an event that is (or is not) excluded now."""
    if action is CorrectionAction.EXCLUDE and excluded:
        return "the event is already excluded"
    if action is CorrectionAction.RESTORE and not excluded:
        return "the event is not excluded"
    return None
