"""Intervals, recurrences and periods: the calendar arithmetic under usage periods and grants.

Rules that must hold (see README.md, "Periods"):

- An interval is a whole number of months plus a whole number of days plus a whole number of
  minutes. Months are calendar months; days are UTC days (always 24 h, UTC has no DST).
- `t + n·interval` is computed from `t` directly, never by stepping, and month arithmetic clamps to
  the end of the month: an anchor on Jan 31 gives Feb 28 (29), Mar 31, Apr 30, ... and returns to
  the 31st whenever the month has one.
- A recurrence's boundaries are `anchor + k·interval` for every integer k, negative too, so the
  period containing any instant exists, also before the anchor.
- Periods are half-open `[start, end)`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from dateutil.relativedelta import relativedelta

from allotment.domain.time import ensure_utc, truncate_to_minute
from allotment.errors import InvalidInput

_SECONDS_PER_DAY = 86_400
_SECONDS_PER_HOUR = 3_600
# The mean Gregorian month; only used to *estimate* an index before exact correction.
_MEAN_MONTH_SECONDS = 30.436875 * _SECONDS_PER_DAY

_ENUM_INTERVALS: dict[str, tuple[int, int, int]] = {
    "DAY": (0, 1, 0),
    "WEEK": (0, 7, 0),
    "MONTH": (1, 0, 0),
    "YEAR": (12, 0, 0),
}

_NUMBER = r"(\d+(?:[.,]\d+)?)"
_ISO_DURATION = re.compile(
    rf"^P(?:{_NUMBER}Y)?(?:{_NUMBER}M)?(?:{_NUMBER}W)?(?:{_NUMBER}D)?"
    rf"(?:T(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?$"
)


def _number(text: str | None) -> Decimal:
    if text is None:
        return Decimal(0)
    return Decimal(text.replace(",", "."))


@dataclass(frozen=True, order=False)
class Interval:
    """A positive calendar interval: `months` calendar months + `days` days + `seconds` seconds.

    `seconds` is always a multiple of 60 (the engine's resolution is one minute). Two intervals
    are equal when they have the same components: P1Y == P12M and P1W == P7D, but PT24H != P1D
    (they add the same in UTC, yet the API echoes them differently).
    """

    months: int = 0
    days: int = 0
    seconds: int = 0

    def __post_init__(self) -> None:
        if self.months < 0 or self.days < 0 or self.seconds < 0:
            raise ValueError("interval components must not be negative")
        if self.months == 0 and self.days == 0 and self.seconds == 0:
            raise ValueError("interval must be positive")
        if self.seconds % 60 != 0:
            raise ValueError("interval must be a whole number of minutes")

    # -- parsing and presentation ------------------------------------------------------------

    @classmethod
    def parse(cls, text: str, *, field: str = "usagePeriod.interval") -> Interval:
        """Parse the API form: DAY, WEEK, MONTH, YEAR (any case) or an ISO 8601 duration.

        Fractions are accepted where they come out whole (P1.5Y = 18 months, PT1.5H = 90
        minutes, P0.5D = 12 hours); a fraction of a month, or anything finer than a minute, is
        rejected because it has no exact meaning here. Raises InvalidInput naming `field`.
        """
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput("interval must be a non-empty string", field=field)
        upper = text.strip().upper()
        if upper in _ENUM_INTERVALS:
            months, days, seconds = _ENUM_INTERVALS[upper]
            return cls(months=months, days=days, seconds=seconds)
        match = _ISO_DURATION.match(upper)
        if match is None or upper in ("P", "PT") or upper.endswith("T"):
            raise InvalidInput(
                f"invalid interval {text!r}: expected DAY, WEEK, MONTH, YEAR or an ISO 8601 "
                "duration such as P1M or PT6H",
                field=field,
            )
        try:
            years, months_, weeks, days_, hours, minutes, seconds_ = (
                _number(g) for g in match.groups()
            )
        except InvalidOperation as exc:  # pragma: no cover - the regex admits only digits
            raise InvalidInput(f"invalid interval {text!r}", field=field) from exc
        total_months = years * 12 + months_
        if total_months != total_months.to_integral_value():
            raise InvalidInput(
                f"invalid interval {text!r}: a fraction of a month has no exact length",
                field=field,
            )
        total_days = weeks * 7 + days_
        whole_days = int(total_days)  # floor: components are non-negative
        total_seconds = (
            (total_days - whole_days) * _SECONDS_PER_DAY
            + hours * _SECONDS_PER_HOUR
            + minutes * 60
            + seconds_
        )
        if total_seconds != total_seconds.to_integral_value() or int(total_seconds) % 60 != 0:
            raise InvalidInput(
                f"invalid interval {text!r}: must be a whole number of minutes", field=field
            )
        if total_months == 0 and whole_days == 0 and total_seconds == 0:
            raise InvalidInput(f"invalid interval {text!r}: must be positive", field=field)
        return cls(months=int(total_months), days=whole_days, seconds=int(total_seconds))

    @property
    def iso(self) -> str:
        """The normalised ISO 8601 form: years and months, weeks when the interval is only
        whole weeks, days, then hours/minutes. P12M -> P1Y, P14D -> P2W, PT90M -> PT1H30M."""
        parts = ["P"]
        years, months = divmod(self.months, 12)
        if years:
            parts.append(f"{years}Y")
        if months:
            parts.append(f"{months}M")
        if self.days:
            if self.months == 0 and self.seconds == 0 and self.days % 7 == 0:
                parts.append(f"{self.days // 7}W")
            else:
                parts.append(f"{self.days}D")
        if self.seconds:
            hours, rest = divmod(self.seconds, _SECONDS_PER_HOUR)
            minutes = rest // 60
            parts.append("T")
            if hours:
                parts.append(f"{hours}H")
            if minutes:
                parts.append(f"{minutes}M")
        return "".join(parts)

    @property
    def api_name(self) -> str:
        """DAY/WEEK/MONTH/YEAR when the interval is exactly P1D/P1W/P1M/P1Y, else `iso`."""
        for name, components in _ENUM_INTERVALS.items():
            if (self.months, self.days, self.seconds) == components:
                return name
        return self.iso

    def __str__(self) -> str:
        return self.iso

    # -- arithmetic ---------------------------------------------------------------------------

    def is_at_least_one_hour(self) -> bool:
        """True when even the shortest realisation of the interval lasts at least one hour.

        A month is never shorter than 28 days and a UTC day is always 24 h, so any interval
        with a month or day component qualifies; otherwise the minutes decide.
        """
        return self.months > 0 or self.days > 0 or self.seconds >= _SECONDS_PER_HOUR

    def approximate_seconds(self) -> float:
        """Mean length in seconds; only good for estimates (month lengths vary)."""
        return (
            self.months * _MEAN_MONTH_SECONDS + self.days * _SECONDS_PER_DAY + float(self.seconds)
        )

    def add(self, t: datetime, n: int = 1) -> datetime:
        """`t + n·interval`, computed from `t` in one step (months clamp to the month end).

        Months are applied first, then days, then minutes, so Jan 31 + P1M1D = Mar 1 (Feb 28
        + 1 day) in a common year. Negative `n` subtracts with the same clamping.
        """
        u = ensure_utc(t)
        if self.months:
            u = u + relativedelta(months=self.months * n)
        if self.days or self.seconds:
            u = u + timedelta(days=self.days * n, seconds=self.seconds * n)
        return u


@dataclass(frozen=True)
class Period:
    """A half-open interval of time `[start, end)`; `start == end` is an empty instant."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", ensure_utc(self.start, "period start"))
        object.__setattr__(self, "end", ensure_utc(self.end, "period end"))
        if self.end < self.start:
            raise ValueError(f"period ends before it starts: {self.start} > {self.end}")

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


_BOUNDARIES_KEPT = 1024


@dataclass(frozen=True)
class Recurrence:
    """Boundaries `anchor + k·interval` for every integer k; the anchor is floored to the minute.

    The anchor may lie anywhere, before or after the instants asked about. Every boundary is
    computed from the anchor directly (never by stepping from a neighbour), so month-end anchors
    do not drift, and lookups far from the anchor cost a handful of steps, not one per period.
    """

    interval: Interval
    anchor: datetime
    # Boundaries computed so far: a recurrence is asked for the same few again and again (every
    # read of a cached entitlement), and calendar arithmetic is not cheap.
    _boundaries: dict[int, datetime] = field(
        default_factory=dict, init=False, compare=False, hash=False, repr=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "anchor", truncate_to_minute(self.anchor))

    def boundary(self, k: int) -> datetime:
        """The k-th boundary, `anchor + k·interval` (k may be negative)."""
        found = self._boundaries.get(k)
        if found is None:
            found = self.interval.add(self.anchor, k)
            if len(self._boundaries) >= _BOUNDARIES_KEPT:
                self._boundaries.clear()
            self._boundaries[k] = found
        return found

    def index_at_or_before(self, t: datetime) -> int:
        """The largest k with `boundary(k) <= t`.

        Estimates k from the mean interval length, then corrects exactly; boundaries strictly
        increase with k, so the corrections terminate after a few steps.
        """
        u = ensure_utc(t)
        estimate = (u - self.anchor).total_seconds() / self.interval.approximate_seconds()
        k = math.floor(estimate)
        while self.boundary(k) > u:
            k -= 1
        while self.boundary(k + 1) <= u:
            k += 1
        return k

    def period_containing(self, t: datetime) -> Period:
        """`[largest boundary <= t, next boundary)`; a boundary itself starts a period."""
        k = self.index_at_or_before(t)
        return Period(self.boundary(k), self.boundary(k + 1))

    def next_boundary_after(self, t: datetime) -> datetime:
        """The smallest boundary strictly after `t`."""
        return self.boundary(self.index_at_or_before(t) + 1)

    def boundaries_between(self, start: datetime, end: datetime) -> list[datetime]:
        """Every boundary b with `start < b <= end`, in order (empty when end <= start).

        Half-open on the left because the engine asks "what happens after the state I already
        have, up to and including the instant I stop at".
        """
        start_u, end_u = ensure_utc(start), ensure_utc(end)
        if end_u <= start_u:
            return []
        result: list[datetime] = []
        k = self.index_at_or_before(start_u) + 1
        b = self.boundary(k)
        while b <= end_u:
            result.append(b)
            k += 1
            b = self.boundary(k)
        return result


class ExpirationDuration(StrEnum):
    """The unit of a grant's `expiration {duration, count}`."""

    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"
    YEAR = "YEAR"


_EXPIRATION_COUNT_MAX = 1000


@dataclass(frozen=True)
class Expiration:
    """A grant's lifetime `{duration, count}`: `expiresAt = effectiveAt + count·duration`.

    Months and years clamp to the month end exactly like usage periods (Jan 31 + 1 MONTH = Feb
    28/29). OpenMeter overflows here instead (Jan 31 + 1 MONTH = Mar 3); Allotment chooses one
    calendar rule for the whole engine (README.md, "Deviations").
    """

    duration: ExpirationDuration
    count: int

    def __post_init__(self) -> None:
        if not isinstance(self.duration, ExpirationDuration):
            raise InvalidInput(
                f"invalid expiration duration {self.duration!r}", field="expiration.duration"
            )
        if (
            isinstance(self.count, bool)
            or not isinstance(self.count, int)
            or not 1 <= self.count <= _EXPIRATION_COUNT_MAX
        ):
            raise InvalidInput(
                f"expiration count must be an integer from 1 to {_EXPIRATION_COUNT_MAX}",
                field="expiration.count",
            )

    @classmethod
    def parse(cls, duration: str, count: int) -> Expiration:
        """Build from API values; raises InvalidInput naming `expiration.duration`/`.count`."""
        try:
            unit = ExpirationDuration(str(duration).strip().upper())
        except ValueError as exc:
            raise InvalidInput(
                f"invalid expiration duration {duration!r}: expected HOUR, DAY, WEEK, MONTH or "
                "YEAR",
                field="expiration.duration",
            ) from exc
        return cls(unit, count)

    def expires_at(self, effective_at: datetime) -> datetime:
        """`effective_at + count·duration`, month ends clamped."""
        t = ensure_utc(effective_at, "effective_at")
        match self.duration:
            case ExpirationDuration.HOUR:
                return t + timedelta(hours=self.count)
            case ExpirationDuration.DAY:
                return t + timedelta(days=self.count)
            case ExpirationDuration.WEEK:
                return t + timedelta(weeks=self.count)
            case ExpirationDuration.MONTH:
                return t + relativedelta(months=self.count)
            case ExpirationDuration.YEAR:
                return t + relativedelta(years=self.count)
