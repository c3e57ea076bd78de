"""Checkpoints: saved engine states that make reads cheap and never change their results.

A checkpoint is an `EngineState`: every active grant's balance, the overage, the period usage
and grant usage and the period start, at a minute boundary, *after* everything that happens at
that minute. Running the engine from a checkpoint gives exactly what a run from measurement
start gives, provided the checkpoint is still valid:

- it is saved only at a minute that is not later than `now - grace` (recent minutes stay open
  for late events; nothing is ever saved in the future);
- for LATEST meters only at a reset instant, where the segment boundary is part of the
  timeline anyway (elsewhere, resuming would split a segment and change the latest value);
- any write that affects the time it covers invalidates it, and every later one
  (`invalid_from`): a grant effective at E, a void at V, a late event at t, a manual reset at R.

Maintenance saves them (services/maintenance.py, for entitlements whose reads asked for one),
storage keeps them (storage/repositories/checkpoints.py) and a read resumes from the newest one
that is still valid (services/metered_inputs.py `checkpoint_start`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from allotment.domain.burn import EngineState, MeteredTerms, UsageMode
from allotment.domain.time import MINUTE, ensure_utc, truncate_to_minute

DEFAULT_GRACE = timedelta(minutes=5)
"""Recent history kept un-checkpointed, so that late events stay cheap to absorb."""


def latest_saveable_instant(now: datetime, grace: timedelta = DEFAULT_GRACE) -> datetime:
    """The latest minute a checkpoint may be saved at: `now - grace`, floored."""
    if grace < timedelta(0):
        raise ValueError("grace must not be negative")
    return truncate_to_minute(ensure_utc(now, "now") - grace)


def may_save(
    terms: MeteredTerms,
    state: EngineState,
    now: datetime,
    grace: timedelta = DEFAULT_GRACE,
) -> bool:
    """Whether `state` may be persisted as a checkpoint at `now`."""
    if state.at > latest_saveable_instant(now, grace):
        return False
    if terms.usage_mode is UsageMode.LATEST:
        return terms.timeline.is_reset(state.at)
    return True


def checkpoint_instant(
    terms: MeteredTerms,
    *,
    start_at: datetime,
    until: datetime,
    now: datetime,
    grace: timedelta = DEFAULT_GRACE,
) -> datetime | None:
    """Where a run from `start_at` to `until` should record a state worth saving, or None.

    Pass the instant as an `observe` point and save `run.observed[instant]`. It is the latest
    saveable minute inside the run (for LATEST, the latest reset inside it); None when that
    would not move past the checkpoint the run started from.
    """
    limit = min(ensure_utc(until), latest_saveable_instant(now, grace))
    start = ensure_utc(start_at)
    if limit <= start:
        return None
    if terms.usage_mode is UsageMode.LATEST:
        resets = terms.timeline.resets_between(start, limit)
        return resets[-1].at if resets else None
    return limit


class Change(StrEnum):
    """A write that can make saved checkpoints wrong."""

    GRANT_CREATED = "grant_created"
    """At the grant's effectiveAt E: a checkpoint at E is kept (the grant joins at its amount
    on resume); later ones missed it."""
    GRANT_VOIDED = "grant_voided"
    """At voidedAt V: a checkpoint at V is kept (the voided grant is dropped on resume)."""
    MANUAL_RESET = "manual_reset"
    """At the reset instant R: a checkpoint at R itself is invalid too, because a state at R
    includes what happens at R."""
    USAGE = "usage"
    """At an event's time t: usage in the minute of t counts after floor(t)."""


def invalid_from(change: Change, at: datetime) -> datetime:
    """Checkpoints with `state.at >= invalid_from(change, at)` must be discarded."""
    minute = truncate_to_minute(at)
    if change is Change.MANUAL_RESET:
        return minute
    return minute + MINUTE
