"""The one range of instants a client may send, and the longest interval it may ask for.

Every time a client hands Allotment must lie in `[EARLIEST, LATEST)`, the years 1970 to 7999 in
UTC: event times, a meter's `eventFrom`, the bounds of meter queries and of the event listing, an
entitlement's anchor and `measureUsageFrom`, a grant's `effectiveAt` and recurrence anchor, and
the instants of resets, voids, values and history. Why this range:

- Storage is never the limit: instants are BIGINT microseconds since the epoch (`UtcTimestamp`),
  good for about 292,000 years either way.
- The calendar is. Python's dates stop at 9999-12-31, and the engine adds to a client's instant up
  to a thousand years (a grant's longest expiration), a hundred more to show a v1 grant that never
  expires, and a usage period or recurrence (at most a hundred years, `INTERVAL_SECONDS_MAX`) to
  find the next boundary; meter windows add a month and a time zone's offset. Starting before
  8000, every one of those sums stays representable.
- Before 1970 nothing was metered: such a time is a sender's mistake (a placeholder date, a
  zero timestamp), better refused than counted.

So an extreme request is a 400 naming its field instead of an overflow deep inside a computation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from allotment.domain.periods import Interval
from allotment.domain.time import ensure_utc
from allotment.errors import InvalidInput

EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(8000, 1, 1, tzinfo=UTC)
OUT_OF_RANGE: Final = f"must be from the year {EARLIEST.year} to {LATEST.year - 1} (UTC)"
# A hundred years of the longest kind (leap years throughout), so P100Y itself is allowed.
INTERVAL_SECONDS_MAX: Final = 100 * 366 * 86_400


def is_client_instant(value: datetime) -> bool:
    """True when `value` (timezone-aware) lies in `[EARLIEST, LATEST)`."""
    return EARLIEST <= value < LATEST


def checked_instant(value: datetime, field: str) -> datetime:
    """`value` in UTC, or InvalidInput naming `field` when it lies outside the range."""
    instant = ensure_utc(value, field)
    if not is_client_instant(instant):
        raise InvalidInput(OUT_OF_RANGE, field=field)
    return instant


def checked_interval(interval: Interval, field: str) -> Interval:
    """`interval`, or InvalidInput naming `field` when it is longer than a hundred years."""
    if interval.approximate_seconds() > INTERVAL_SECONDS_MAX:
        raise InvalidInput("must be at most a hundred years (P100Y)", field=field)
    return interval
