"""The usage-period timeline of a metered entitlement: periods, automatic and manual resets.

An entitlement measures usage from `measure_usage_from` in periods that follow its recurrence
(interval + anchor). Each manual reset starts a new period at its instant and, unless the
anchor was retained, moves the anchor there. The timeline is an ordered list of entries
`(effective_from, recurrence)`: the first is `(measure_usage_from, usage period)`, then one per
manual reset. Every recurrence boundary inside an entry's span is an automatic reset; every entry
start after the first is a manual one.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime

from allotment.domain.periods import Interval, Period, Recurrence
from allotment.domain.time import MINUTE, ensure_utc, is_minute_aligned, truncate_to_minute
from allotment.errors import InvalidInput


@dataclass(frozen=True)
class ManualReset:
    """A reset recorded through the API.

    `at` is the (minute-floored) reset instant; `anchor` the usage period's anchor from then on
    (`at` itself unless the reset retained the anchor); `preserve_overage` the resolved choice
    (the request's `preserveOverage`, defaulted by the caller to the entitlement's
    `preserveOverageAtReset`).
    """

    at: datetime
    anchor: datetime
    preserve_overage: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", truncate_to_minute(self.at))
        object.__setattr__(self, "anchor", truncate_to_minute(self.anchor))


@dataclass(frozen=True)
class ResetPoint:
    """One reset instant on the timeline: automatic (a period boundary) or manual."""

    at: datetime
    manual: ManualReset | None = None

    def preserves_overage(self, default: bool) -> bool:
        """Automatic resets follow the entitlement's `preserveOverageAtReset` (`default`)."""
        return self.manual.preserve_overage if self.manual is not None else default


@dataclass(frozen=True)
class _Entry:
    effective_from: datetime
    recurrence: Recurrence
    manual: ManualReset | None


@dataclass(frozen=True)
class UsagePeriodTimeline:
    """Where every usage period of one metered entitlement starts and ends.

    Invariants: `measure_usage_from` and every reset are minute-aligned; manual resets are
    strictly increasing and strictly after `measure_usage_from`. Usage before
    `measure_usage_from` never counts: the first period starts there, however the anchor lies.
    """

    measure_usage_from: datetime
    recurrence: Recurrence
    manual_resets: tuple[ManualReset, ...] = ()
    _entries: tuple[_Entry, ...] = field(init=False, repr=False, compare=False)
    _starts: tuple[datetime, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        start = truncate_to_minute(self.measure_usage_from)
        object.__setattr__(self, "measure_usage_from", start)
        resets = tuple(self.manual_resets)
        object.__setattr__(self, "manual_resets", resets)
        entries = [_Entry(start, self.recurrence, None)]
        for reset in resets:
            if reset.at <= entries[-1].effective_from:
                raise ValueError(
                    f"manual resets must be strictly increasing and after measureUsageFrom: "
                    f"{reset.at.isoformat()} <= {entries[-1].effective_from.isoformat()}"
                )
            entries.append(_Entry(reset.at, Recurrence(self.interval, reset.anchor), reset))
        object.__setattr__(self, "_entries", tuple(entries))
        object.__setattr__(self, "_starts", tuple(e.effective_from for e in entries))

    # -- reading ------------------------------------------------------------------------------

    @property
    def interval(self) -> Interval:
        return self.recurrence.interval

    @property
    def last_reset(self) -> datetime:
        """The latest manual reset, or `measure_usage_from` if none (automatic boundaries never
        count here, as in OpenMeter's `lastReset`)."""
        return self._entries[-1].effective_from

    def _entry_index_at(self, t: datetime) -> int:
        """Index of the last entry with `effective_from <= t` (0 when t precedes them all)."""
        return max(bisect.bisect_right(self._starts, t) - 1, 0)

    def recurrence_at(self, t: datetime) -> Recurrence:
        """The recurrence (interval + anchor) in force at `t`."""
        return self._entries[self._entry_index_at(ensure_utc(t))].recurrence

    def current_period_at(self, t: datetime) -> Period:
        """The usage period containing `t`.

        Before `measure_usage_from` this is the first period (which starts at
        `measure_usage_from`): nothing earlier is ever measured.
        """
        u = ensure_utc(t)
        i = self._entry_index_at(u)
        entry = self._entries[i]
        probe = max(u, entry.effective_from)
        period = entry.recurrence.period_containing(probe)
        start = max(period.start, entry.effective_from)
        end = period.end
        if i + 1 < len(self._entries):
            end = min(end, self._entries[i + 1].effective_from)
        return Period(start, end)

    def resets_between(self, start: datetime, end: datetime) -> list[ResetPoint]:
        """Every reset r with `start < r <= end`, in order: period boundaries and manual resets.

        `measure_usage_from` is not a reset (it is where measurement begins). A manual reset
        that falls on a period boundary appears once, as the manual reset.
        """
        lo, hi = ensure_utc(start), ensure_utc(end)
        if hi <= lo:
            return []
        result: list[ResetPoint] = []
        first = self._entry_index_at(lo)
        for i in range(first, len(self._entries)):
            entry = self._entries[i]
            if entry.effective_from > hi:
                break
            span_end = self._entries[i + 1].effective_from if i + 1 < len(self._entries) else None
            if entry.manual is not None and lo < entry.effective_from <= hi:
                result.append(ResetPoint(entry.effective_from, entry.manual))
            boundaries_from = max(lo, entry.effective_from)
            boundaries_to = hi if span_end is None else min(hi, span_end)
            for b in entry.recurrence.boundaries_between(boundaries_from, boundaries_to):
                if span_end is not None and b >= span_end:
                    break
                result.append(ResetPoint(b))
        return result

    def is_reset(self, t: datetime) -> bool:
        """True when a reset (automatic or manual) happens exactly at `t`."""
        u = ensure_utc(t)
        if not is_minute_aligned(u):
            return False
        return bool(self.resets_between(u - MINUTE, u))

    # -- changing -----------------------------------------------------------------------------

    def with_manual_reset(
        self, at: datetime, *, retain_anchor: bool, preserve_overage: bool
    ) -> tuple[UsagePeriodTimeline, ManualReset]:
        """The timeline after a manual reset at `at` (floored), and the reset to record.

        Does not validate against the clock; call `validate_manual_reset` first. Raises
        ValueError if `at` is not after the last reset (an invariant, not user input).
        """
        reset_at = truncate_to_minute(at)
        anchor = self.recurrence_at(reset_at).anchor if retain_anchor else reset_at
        reset = ManualReset(at=reset_at, anchor=anchor, preserve_overage=preserve_overage)
        timeline = UsagePeriodTimeline(
            measure_usage_from=self.measure_usage_from,
            recurrence=self.recurrence,
            manual_resets=(*self.manual_resets, reset),
        )
        return timeline, reset

    def validate_manual_reset(self, requested_at: datetime, now: datetime) -> datetime:
        """Check a requested manual reset against the rules; return the floored reset instant.

        A reset may not be in the future, may not fall in the same minute as (or before) the
        last manual reset or measurement start, may not be before the start of the usage
        period current at `now`, and no reset may lie in `(reset, now]` (history is closed).
        Raises InvalidInput(field="effectiveAt").
        """
        requested = ensure_utc(requested_at, "effectiveAt")
        now_u = ensure_utc(now, "now")
        reset_at = truncate_to_minute(requested)
        last = self.last_reset
        if reset_at == last:
            raise InvalidInput(
                f"reset at {reset_at.isoformat()} must be after the last reset at "
                f"{last.isoformat()}",
                field="effectiveAt",
            )
        if requested > now_u:
            raise InvalidInput(
                f"cannot reset at {requested.isoformat()}: it is in the future",
                field="effectiveAt",
            )
        period_start = self.current_period_at(now_u).start
        if reset_at < period_start:
            raise InvalidInput(
                f"reset at {reset_at.isoformat()} is before the current usage period start "
                f"{period_start.isoformat()}",
                field="effectiveAt",
            )
        if reset_at < last:
            raise InvalidInput(
                f"reset at {reset_at.isoformat()} must be after the last reset at "
                f"{last.isoformat()}",
                field="effectiveAt",
            )
        later = self.resets_between(reset_at, now_u)
        if later:
            raise InvalidInput(
                f"reset at {reset_at.isoformat()} is before a reset that already happened at "
                f"{later[0].at.isoformat()}",
                field="effectiveAt",
            )
        return reset_at
