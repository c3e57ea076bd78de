"""Balance history: usage and balance per time window, and the burn-down segments behind them.

Rules (README.md, "History"):

- `from` is floored and `to` rounded up to the minute; `from` may not precede
  `measureUsageFrom`, and `to` must come after `from`.
- Windows are MINUTE, HOUR, DAY or MONTH long and aligned in the requested IANA time zone, DST
  included: DAY windows in America/Los_Angeles run from local midnight to local midnight (23 or
  25 hours on change days). The engine counts the first and last window clipped to
  `[from, to)`; each window also carries its whole aligned period (`aligned`), from the start
  of the window holding `from` to the end of the one holding `to`, which the API reports as
  OpenMeter does. Usage still counts only inside `[from, to)`, and the first window's balance
  is the balance at `from`, so the windows still add up.
- Every window is returned, zero-filled when nothing happened.
- `balance_at_start` is exact: the engine state at the window start (observed by the run, not
  back-computed), so `balance_at_start - grant burn in the window = next balance_at_start`
  unless a reset or a grant change happens inside the window (they show in the segments).
- The burn-down segments are those of a run that starts at `from`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from allotment.domain.burn import (
    EngineState,
    MeteredTerms,
    Segment,
    UsageMode,
    UsageSource,
    UsageWindow,
    clean_usage,
    initial_state,
    plan_usage_windows,
    plan_windows_from,
    run,
    usage_lookup,
)
from allotment.domain.grants import Grant
from allotment.domain.periods import Period
from allotment.domain.time import MINUTE, ceil_to_minute, ensure_utc, truncate_to_minute
from allotment.errors import InvalidInput

MAX_HISTORY_WINDOWS = 100_000
"""A request asking for more windows than this is refused (a year of MINUTE windows would be
half a million rows); pick a larger window size or a shorter range."""


class WindowSize(StrEnum):
    MINUTE = "MINUTE"
    HOUR = "HOUR"
    DAY = "DAY"
    MONTH = "MONTH"

    @classmethod
    def parse(cls, text: str) -> WindowSize:
        try:
            return cls(str(text).strip().upper())
        except ValueError as exc:
            raise InvalidInput(
                f"invalid windowSize {text!r}: expected MINUTE, HOUR, DAY or MONTH",
                field="windowSize",
            ) from exc


def parse_time_zone(name: str) -> ZoneInfo:
    """An IANA time zone; an unknown or malformed name is InvalidInput(field="windowTimeZone")."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError) as exc:
        raise InvalidInput(f"unknown time zone {name!r}", field="windowTimeZone") from exc


def _floor_local(t: datetime, size: WindowSize, zone: ZoneInfo) -> datetime:
    """Start (UTC) of the local window containing `t`."""
    if size is WindowSize.MINUTE:
        return truncate_to_minute(t)
    local = t.astimezone(zone)
    if size is WindowSize.HOUR:
        floored = local.replace(minute=0, second=0, microsecond=0)
    elif size is WindowSize.DAY:
        floored = datetime.combine(local.date(), time(0), tzinfo=zone)
    else:
        floored = datetime.combine(local.date().replace(day=1), time(0), tzinfo=zone)
    return floored.astimezone(UTC)


def _next_local(b: datetime, size: WindowSize, zone: ZoneInfo) -> datetime:
    """Start (UTC) of the local window after the one starting at `b`."""
    if size is WindowSize.MINUTE:
        return b + MINUTE
    if size is WindowSize.HOUR:
        candidate = b + timedelta(hours=1)
        snapped = _floor_local(candidate, size, zone)
        return snapped if snapped > b else candidate
    local = b.astimezone(zone)
    if size is WindowSize.DAY:
        next_date = local.date() + timedelta(days=1)
    else:
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        next_date = local.date().replace(year=year, month=month, day=1)
    return datetime.combine(next_date, time(0), tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class HistoryQuery:
    """A validated history request: the range, and its windows (UTC, clipped to the range)."""

    start: datetime
    end: datetime
    window_size: WindowSize
    time_zone: ZoneInfo
    windows: tuple[Period, ...]

    @property
    def window_starts(self) -> list[datetime]:
        return [w.start for w in self.windows]

    def aligned(self, window: Period) -> Period:
        """`window` at its full length: only the first and last can differ from it."""
        start = truncate_to_minute(_floor_local(window.start, self.window_size, self.time_zone))
        end = window.end
        if window.end == self.end:
            following = _next_local(
                _floor_local(window.start, self.window_size, self.time_zone),
                self.window_size,
                self.time_zone,
            )
            end = max(truncate_to_minute(following), window.end)
        return Period(start, end)


def history_query(
    from_: datetime,
    to: datetime,
    window_size: WindowSize | str,
    time_zone: ZoneInfo | str,
    measure_usage_from: datetime,
) -> HistoryQuery:
    """Validate a history request and lay out its windows.

    Raises InvalidInput: "from" before measureUsageFrom, "to" not after "from", an unknown
    "windowSize" or "windowTimeZone", or too many windows.
    """
    size = window_size if isinstance(window_size, WindowSize) else WindowSize.parse(window_size)
    zone = time_zone if isinstance(time_zone, ZoneInfo) else parse_time_zone(time_zone)
    start = truncate_to_minute(from_)
    end = ceil_to_minute(to)
    measure_from = ensure_utc(measure_usage_from)
    if start < measure_from:
        raise InvalidInput(
            f"from {start.isoformat()} is before the start of measurement "
            f"{measure_from.isoformat()}",
            field="from",
        )
    if end <= start:
        raise InvalidInput("to must be after from", field="to")
    boundaries = [start]
    b = _floor_local(start, size, zone)
    while True:
        b = _next_local(b, size, zone)
        aligned = truncate_to_minute(b)
        if aligned >= end:
            break
        if aligned > boundaries[-1]:
            boundaries.append(aligned)
            if len(boundaries) > MAX_HISTORY_WINDOWS:
                raise InvalidInput(
                    f"the range holds more than {MAX_HISTORY_WINDOWS} {size.value} windows; "
                    "choose a larger windowSize or a shorter range",
                    field="windowSize",
                )
    boundaries.append(end)
    windows = tuple(Period(a, z) for a, z in pairwise(boundaries))
    return HistoryQuery(start, end, size, zone, windows)


@dataclass(frozen=True)
class HistoryWindow:
    period: Period
    """The stretch the usage covers: the aligned window clipped to the range."""
    usage: Decimal
    balance_at_start: Decimal
    aligned: Period | None = None
    """The whole window in the requested time zone (None: the same as `period`)."""

    @property
    def full_period(self) -> Period:
        return self.aligned or self.period


@dataclass(frozen=True)
class History:
    windows: tuple[HistoryWindow, ...]
    segments: tuple[Segment, ...]
    state_at_start: EngineState
    state_at_end: EngineState


def _latest_windows(terms: MeteredTerms, query: HistoryQuery) -> list[UsageWindow]:
    timeline = terms.timeline
    return [
        UsageWindow(w.start, w.end, timeline.current_period_at(w.start).start)
        for w in query.windows
    ]


def _start(
    terms: MeteredTerms,
    grants: Sequence[Grant],
    query: HistoryQuery,
    start_state: EngineState | None,
) -> EngineState:
    start = start_state if start_state is not None else initial_state(terms, grants)
    if start.at > query.start:
        raise ValueError("the start state lies after the history range starts")
    return start


def plan_history(
    terms: MeteredTerms,
    grants: Sequence[Grant],
    query: HistoryQuery,
    start_state: EngineState | None = None,
) -> list[UsageWindow]:
    """Every usage window `build_history` will ask for, deduplicated, in order."""
    start = _start(terms, grants, query, start_state)
    windows = plan_usage_windows(terms, grants, start, query.start)
    windows += plan_windows_from(terms, grants, query.start, query.end, query.window_starts)
    if terms.usage_mode is UsageMode.LATEST:
        windows += _latest_windows(terms, query)
    return list(dict.fromkeys(windows))


def build_history(
    terms: MeteredTerms,
    grants: Sequence[Grant],
    query: HistoryQuery,
    usage: UsageSource,
    start_state: EngineState | None = None,
) -> History:
    """The windowed and burn-down history for `query`.

    Runs the engine from `start_state` (a checkpoint at or before `query.start`, default:
    measurement start) to `query.start`, then on to `query.end`, observing the state at every
    window start. ADDITIVE window usage is the sum of the engine's own windows inside it (so
    windows and segments always agree); LATEST window usage is the latest value in the window.
    """
    start = _start(terms, grants, query, start_state)
    to_start = run(terms, grants, start, query.start, usage)
    over = run(terms, grants, to_start.state, query.end, usage, observe=query.window_starts)
    if terms.usage_mode is UsageMode.LATEST:
        lookup = usage_lookup(usage)
        usages = [clean_usage(lookup(w), w) for w in _latest_windows(terms, query)]
    else:
        usages = []
        engine_windows = over.usage_by_window
        i = 0
        for w in query.windows:
            total = Decimal(0)
            while i < len(engine_windows) and engine_windows[i][0].end <= w.end:
                total += engine_windows[i][1]
                i += 1
            usages.append(total)
    windows = tuple(
        HistoryWindow(
            period=w,
            usage=u,
            balance_at_start=over.observed[w.start].balance,
            aligned=query.aligned(w),
        )
        for w, u in zip(query.windows, usages, strict=True)
    )
    return History(
        windows=windows,
        segments=over.segments,
        state_at_start=over.start,
        state_at_end=over.state,
    )
