"""Time helpers for the credit engine: UTC only, one-minute resolution.

The engine never reads a clock: every instant arrives as an argument. Credit state changes only on
minute boundaries, so every instant the engine keys on (grant start, expiry, void, reset, period
boundary, checkpoint) is truncated to the minute, while a read at a sub-minute instant is rounded
*up* so that it includes the usage of the minute it falls in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

MINUTE = timedelta(minutes=1)
"""The engine's time resolution."""


def ensure_utc(t: datetime, name: str = "time") -> datetime:
    """Return `t` expressed in UTC; a naive datetime is a programming error, never guessed at."""
    if t.tzinfo is None or t.tzinfo.utcoffset(t) is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {t.isoformat()}")
    if t.tzinfo is UTC:
        return t
    return t.astimezone(UTC)


def is_minute_aligned(t: datetime) -> bool:
    """True when `t` has no seconds or sub-second part (in UTC)."""
    return t.second == 0 and t.microsecond == 0


def truncate_to_minute(t: datetime) -> datetime:
    """Floor `t` to the start of its minute, in UTC.

    Used for every instant that changes credit state: grant `effectiveAt`, void time, reset time,
    `measureUsageFrom`, anchors, history `from`.
    """
    u = ensure_utc(t)
    return u.replace(second=0, microsecond=0)


def ceil_to_minute(t: datetime) -> datetime:
    """Round `t` up to the next minute boundary unless it already is one, in UTC.

    A read at 10:00:30 is computed at 10:01, so the usage of the partial minute 10:00-10:01 is
    included; a read at exactly 10:00 stays at 10:00.
    """
    u = ensure_utc(t)
    if is_minute_aligned(u):
        return u
    return u.replace(second=0, microsecond=0) + MINUTE


def require_minute(t: datetime, name: str = "time") -> datetime:
    """Return `t` in UTC, raising ValueError unless it is already on a minute boundary.

    The engine's inner functions demand aligned instants instead of silently rounding, so that a
    caller that forgot to truncate finds out at once.
    """
    u = ensure_utc(t, name)
    if not is_minute_aligned(u):
        raise ValueError(f"{name} must be on a minute boundary, got {u.isoformat()}")
    return u


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A UTC datetime; a convenience for callers and tests that build instants by hand."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def rfc3339(t: datetime) -> str:
    """`t` as the API and the CLI write instants: RFC 3339 in UTC with 'Z', and a fraction of a
    second only when there is one (trailing zeros dropped), as OpenMeter prints them."""
    u = ensure_utc(t)
    # Not strftime: its %Y writes year 999 as "999", and RFC 3339 requires four digits.
    text = f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
    if u.microsecond:
        text += f".{u.microsecond:06d}".rstrip("0")
    return text + "Z"
