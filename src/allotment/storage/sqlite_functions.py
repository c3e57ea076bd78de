"""SQL functions SQLite lacks, registered on every new SQLite connection.

PostgreSQL has time zones and exact NUMERIC sums built in; SQLite gets small deterministic
Python equivalents so the same meter queries run on both. The rules themselves (what counts as
a number, where a window starts) come from `allotment.domain.meters`; these functions only adapt
them to SQLite's values: a JSON value arrives as its JSON text (`data -> '$.path'`), an instant
as integer microseconds, and exact decimals travel as text (SQLite's own numbers are binary
floats, where 0.1 + 0.2 is not 0.3).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal
from typing import Any, Final

import orjson

from allotment.domain.group_filters import like_regex
from allotment.domain.meters import (
    WindowSize,
    resolve_time_zone,
    unique_value_key,
    usage_number,
    window_end,
    window_start,
)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND: Final = timedelta(microseconds=1)
_UTC_UNITS: Final = {"MINUTE": 60_000_000, "HOUR": 3_600_000_000, "DAY": 86_400_000_000}

# Sums of many decimals must not round: far more digits than any amount or count needs.
_EXACT: Final = Context(prec=1000, Emax=999_999, Emin=-999_999)


def _json_scalar(json_text: str) -> object:
    """The Python value of a JSON text, keeping numbers exact (never through a float)."""
    first = json_text[:1]
    if first == "-" or first.isdigit():
        return Decimal(json_text)
    return orjson.loads(json_text)


def meter_number(json_text: str | None) -> str | None:
    """`allotment_number(data -> path)`: the value as exact decimal text, or NULL when it is
    not a number inside the usage domain."""
    if json_text is None:
        return None
    value = _json_scalar(json_text)
    number = usage_number(value)
    if number is None:
        return None
    return json_text if isinstance(value, Decimal) else str(number)


def positive(value: str | None) -> str | None:
    """`allotment_positive(number)`: the decimal text, or '0' when it is negative."""
    if value is None:
        return None
    return "0" if value.startswith("-") and Decimal(value) < 0 else value


def unique_key(json_text: str | None) -> str | None:
    """`allotment_unique_key(data -> path)`: what UNIQUE_COUNT compares, or NULL if invalid."""
    if json_text is None:
        return None
    value = _json_scalar(json_text)
    if isinstance(value, Decimal):
        value = str(value)  # a number is keyed like the numeric string of the same value
    return unique_value_key(value)


# The last window found per (size, zone): rows mostly arrive in time order, so most calls land
# in the window of the call before and skip the time-zone arithmetic. Only windows without a UTC
# offset change inside are kept: in those every instant has the window's local date (or hour),
# so the domain would place it in that same window. Any thread may replace an entry; each entry
# is right on its own.
_last_windows: dict[tuple[str, str], tuple[int, int]] = {}


def window_start_micros(micros: int | None, size: str, zone_name: str) -> int | None:
    """`allotment_window_start(time, size, zone)` in integer microseconds."""
    if micros is None:
        return None
    if zone_name == "UTC" and size in _UTC_UNITS:
        return micros - micros % _UTC_UNITS[size]
    key = (size, zone_name)
    last = _last_windows.get(key)
    if last is not None and last[0] <= micros < last[1]:
        return last[0]
    window_size = WindowSize(size)
    zone = resolve_time_zone(zone_name)
    start = window_start(_EPOCH + micros * _ONE_MICROSECOND, window_size, zone)
    end = window_end(start, window_size, zone)
    start_micros = (start - _EPOCH) // _ONE_MICROSECOND
    last_instant = end - _ONE_MICROSECOND
    if start.astimezone(zone).utcoffset() == last_instant.astimezone(zone).utcoffset():
        _last_windows[key] = (start_micros, (end - _EPOCH) // _ONE_MICROSECOND)
    return start_micros


def add(left: str | None, right: str | None) -> str | None:
    """`allotment_add(a, b)`: the exact sum of two decimal texts; NULL counts as nothing."""
    if left is None:
        return right
    if right is None:
        return left
    return format(_EXACT.add(Decimal(left), Decimal(right)), "f")


def least(left: str | None, right: str | None) -> str | None:
    """`allotment_least(a, b)`: the smaller of two decimal texts, ignoring NULL."""
    if left is None or right is None:
        return right if left is None else left
    return left if Decimal(left) <= Decimal(right) else right


def greatest(left: str | None, right: str | None) -> str | None:
    """`allotment_greatest(a, b)`: the greater of two decimal texts, ignoring NULL."""
    if left is None or right is None:
        return right if left is None else left
    return left if Decimal(left) >= Decimal(right) else right


def like(value: str | None, pattern: str, ignore_case: int) -> int | None:
    """`allotment_like(value, pattern, ignore_case)`: the domain's LIKE (1, 0, or NULL)."""
    if value is None:
        return None
    return int(like_regex(pattern, ignore_case=bool(ignore_case)).fullmatch(value) is not None)


class _Sum:
    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, value: str | None) -> None:
        if value is not None:
            number = Decimal(value)
            self.total = number if self.total is None else _EXACT.add(self.total, number)

    def finalize(self) -> str | None:
        return None if self.total is None else str(self.total)


class _Average:
    def __init__(self) -> None:
        self.total = Decimal(0)
        self.count = 0

    def step(self, value: str | None) -> None:
        if value is not None:
            self.total = _EXACT.add(self.total, Decimal(value))
            self.count += 1

    def finalize(self) -> str | None:
        if not self.count:
            return None
        # Thirty significant digits, as the roll-ups give (domain/rollups.py `average`).
        return str(Context(prec=30).divide(self.total, self.count))


class _Minimum:
    def __init__(self) -> None:
        self.best: Decimal | None = None

    def better(self, number: Decimal, best: Decimal) -> bool:
        return number < best

    def step(self, value: str | None) -> None:
        if value is None:
            return
        number = Decimal(value)
        if self.best is None or self.better(number, self.best):
            self.best = number

    def finalize(self) -> str | None:
        return None if self.best is None else str(self.best)


class _Maximum(_Minimum):
    def better(self, number: Decimal, best: Decimal) -> bool:
        return number > best


class _Latest:
    """The value of the row with the greatest (time, seq): the latest event, ties broken by
    ingest order."""

    def __init__(self) -> None:
        self.key: tuple[int, int] | None = None
        self.value: str | None = None

    def step(self, time: int, seq: int, value: str | None) -> None:
        if value is None:
            return
        key = (time, seq)
        if self.key is None or key > self.key:
            self.key = key
            self.value = value

    def finalize(self) -> str | None:
        return self.value


def register(connection: sqlite3.Connection) -> None:
    """Called by the engine's connect hook for every new SQLite connection."""
    connection.create_function("allotment_number", 1, meter_number, deterministic=True)
    connection.create_function("allotment_positive", 1, positive, deterministic=True)
    connection.create_function("allotment_unique_key", 1, unique_key, deterministic=True)
    connection.create_function("allotment_like", 3, like, deterministic=True)
    connection.create_function("allotment_add", 2, add, deterministic=True)
    connection.create_function("allotment_least", 2, least, deterministic=True)
    connection.create_function("allotment_greatest", 2, greatest, deterministic=True)
    connection.create_function("allotment_window_start", 3, window_start_micros, deterministic=True)
    # typeshed describes aggregates with integer steps only; these take text and integers.
    aggregates: list[tuple[str, int, Any]] = [
        ("allotment_sum", 1, _Sum),
        ("allotment_avg", 1, _Average),
        ("allotment_min", 1, _Minimum),
        ("allotment_max", 1, _Maximum),
        ("allotment_latest", 3, _Latest),
    ]
    for name, arguments, aggregate in aggregates:
        connection.create_aggregate(name, arguments, aggregate)
