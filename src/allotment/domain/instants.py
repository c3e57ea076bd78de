"""The range of instants and intervals a client may hand the credit engine.

Calendar arithmetic stops at the year 9999, and the engine adds up to 1000 years to an instant (a
grant's longest expiration), a hundred more to show a v1 grant that never expires, and a usage
period or recurrence to find the next boundary. Keeping client instants inside [1970, 8000) and
intervals at most a hundred years keeps every one of those sums representable, so an extreme
request is a 400 naming its field instead of an overflow deep inside a computation.
"""

from __future__ import annotations

from datetime import UTC, datetime

from allotment.domain.periods import Interval
from allotment.domain.time import ensure_utc
from allotment.errors import InvalidInput

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(8000, 1, 1, tzinfo=UTC)
# A hundred years of the longest kind (leap years throughout), so P100Y itself is allowed.
INTERVAL_SECONDS_MAX = 100 * 366 * 86_400


def checked_instant(value: datetime, field: str) -> datetime:
    """`value` in UTC, or InvalidInput naming `field` when it lies outside [1970, 8000)."""
    instant = ensure_utc(value, field)
    if not EARLIEST <= instant < LATEST:
        raise InvalidInput(
            f"must be from {EARLIEST.year} up to (not including) the year {LATEST.year}",
            field=field,
        )
    return instant


def checked_interval(interval: Interval, field: str) -> Interval:
    """`interval`, or InvalidInput naming `field` when it is longer than a hundred years."""
    if interval.approximate_seconds() > INTERVAL_SECONDS_MAX:
        raise InvalidInput("must be at most a hundred years (P100Y)", field=field)
    return interval
