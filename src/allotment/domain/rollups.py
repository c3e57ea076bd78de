"""Usage roll-ups: meter usage pre-aggregated per series and time bucket, exact for every meter.

A *series* is one meter's events of one subject with one combination of group-by values. Its
usage is kept per UTC bucket at three levels: MINUTE, HOUR and DAY. Minute buckets alone would
not compress sparse usage (10,000,000 events over 10,000 subjects in a month is 0.02 events per
subject-minute); the coarser levels make any long range a few rows per series.

What must hold (each is a property test in `tests/domain/test_rollups.py`):

- **Every range is a sum of buckets.** A minute-aligned range `[start, end)` splits into at most
  five *pieces* (`pieces`): a run of minutes up to the first hour mark, hours up to the first day
  mark, whole days, hours, minutes. Pieces never overlap and cover the range exactly, so a
  read sums each event exactly once. A range that is not minute-aligned leaves sub-minute *edges*
  (`split_range`), which are read from the raw events.
- **A bucket is a `Partial`, and partials merge exactly.** SUM, COUNT and AVG (total and count)
  add; MIN and MAX take the least and the greatest; LATEST keeps the value of the greatest
  `(time, seq)`, the event that happened last, ties broken by arrival. `merge` is associative and
  commutative, so a bucket gives the same answer however its events were grouped into writes,
  in whatever order late events arrive. Totals are Decimals summed without rounding.
- **UNIQUE_COUNT is a set, not a number.** Distinct counts do not add (a value seen in two
  buckets counts once), so each bucket keeps the *set* of distinct values seen in it, and a
  range's count is the size of the union of its pieces' sets: exact, at the price of one row per
  distinct value and bucket. Values are compared by `unique_value_key` (meters.py); a key longer
  than `DISTINCT_KEY_LENGTH_MAX` is stored as its SHA-256, which two different values share with
  probability 2⁻²⁵⁶.
- **Entitlements count positive usage only.** A negative value (a refund) counts as 0 towards
  an entitlement, per event (`Partial.positive_total`), while meter queries still sum it
  (`total`). Clamping per event rather than per window is what makes a balance independent of
  where the timeline is cut (checkpoints, observe points).
- **Only countable events are rolled up.** A value outside the usage domain of `meters.py`
  (`usage_number`) is not counted anywhere, and the event listing says why.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal
from enum import IntEnum
from typing import Any, Final

import orjson

from allotment.domain.meters import (
    Aggregation,
    Meter,
    group_value,
    unique_value_key,
    usage_number,
)

MINUTE_MICROSECONDS: Final = 60_000_000
HOUR_MICROSECONDS: Final = 3_600_000_000
DAY_MICROSECONDS: Final = 86_400_000_000

DISTINCT_KEY_LENGTH_MAX: Final = 128
"""Distinct values longer than this (in UTF-8 bytes) are kept as their SHA-256 digest."""

# Sums of many exact decimals: more digits than any sum of usage numbers can need (each has at
# most 24 integer and 18 fractional digits), so no addition ever rounds.
_EXACT: Final = Context(prec=200, Emax=999_999, Emin=-999_999)


class Level(IntEnum):
    """A bucket size; buckets are aligned on UTC minute, hour and day marks."""

    MINUTE = 0
    HOUR = 1
    DAY = 2

    @property
    def microseconds(self) -> int:
        return _UNITS[self]


_UNITS: Final = {
    Level.MINUTE: MINUTE_MICROSECONDS,
    Level.HOUR: HOUR_MICROSECONDS,
    Level.DAY: DAY_MICROSECONDS,
}
LEVELS: Final = (Level.MINUTE, Level.HOUR, Level.DAY)


def bucket_start(micros: int, level: Level) -> int:
    """The start of the bucket of `level` holding the instant `micros` (µs since the epoch)."""
    return micros - micros % _UNITS[level]


def _ceil(micros: int, unit: int) -> int:
    return -(-micros // unit) * unit


def _floor(micros: int, unit: int) -> int:
    return micros - micros % unit


@dataclass(frozen=True, slots=True)
class Piece:
    """The buckets of `level` whose start lies in `[start, end)` (µs), read together."""

    level: Level
    start: int
    end: int


def pieces(start: int, end: int, top: Level = Level.DAY) -> list[Piece]:
    """`[start, end)` (both minute-aligned) as the fewest aligned runs of buckets no coarser than
    `top`, in time order: coarse buckets in the middle, finer ones towards the edges."""
    if start % MINUTE_MICROSECONDS or end % MINUTE_MICROSECONDS:
        raise ValueError("pieces() takes minute-aligned bounds; use split_range")
    return _pieces(start, end, top)


def _pieces(start: int, end: int, level: Level) -> list[Piece]:
    if start >= end:
        return []
    if level is Level.MINUTE:
        return [Piece(Level.MINUTE, start, end)]
    finer = Level(level - 1)
    unit = _UNITS[level]
    low, high = _ceil(start, unit), _floor(end, unit)
    if low >= high:
        return _pieces(start, end, finer)
    return [*_pieces(start, low, finer), Piece(level, low, high), *_pieces(high, end, finer)]


@dataclass(frozen=True, slots=True)
class SplitRange:
    """A range as bucket pieces plus the sub-minute edges only raw events can answer."""

    pieces: tuple[Piece, ...]
    edges: tuple[tuple[int, int], ...]


def split_range(start: int, end: int, top: Level = Level.DAY) -> SplitRange:
    """Any range `[start, end)` (µs): the minute-aligned core as pieces no coarser than `top`,
    the rest as edges."""
    if start >= end:
        return SplitRange((), ())
    core_start = _ceil(start, MINUTE_MICROSECONDS)
    core_end = _floor(end, MINUTE_MICROSECONDS)
    if core_start >= core_end:
        return SplitRange((), ((start, end),))
    edges = []
    if start < core_start:
        edges.append((start, core_start))
    if core_end < end:
        edges.append((core_end, end))
    return SplitRange(tuple(pieces(core_start, core_end, top)), tuple(edges))


# ---------------------------------------------------------------------------------------------
# Partial aggregates


@dataclass(slots=True)
class Partial:
    """The countable events of one bucket (or of any set of buckets), aggregated.

    `count` counts the events; `first_time` and `last_time` are the earliest and latest event
    times (µs) and `last_seq` the arrival order of the latest, whose value is `last_value`.
    `total` sums every value, `negative_total` the negative ones (None when there were none);
    `minimum`/`maximum` bound them. Fields a meter does not need stay None.
    """

    count: int
    first_time: int
    last_time: int
    last_seq: int
    total: Decimal | None = None
    negative_total: Decimal | None = None
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    last_value: Decimal | None = None

    @classmethod
    def of_event(
        cls, aggregation: Aggregation, time: int, seq: int, value: Decimal | None
    ) -> Partial:
        """One countable event (`value` is None for COUNT and UNIQUE_COUNT)."""
        partial = cls(1, time, time, seq)
        if value is None:
            return partial
        if aggregation is Aggregation.SUM or aggregation is Aggregation.AVG:
            partial.total = value
            if value < 0:
                partial.negative_total = value
        elif aggregation is Aggregation.MIN:
            partial.minimum = value
        elif aggregation is Aggregation.MAX:
            partial.maximum = value
        elif aggregation is Aggregation.LATEST:
            partial.last_value = value
        return partial

    def copy(self) -> Partial:
        return Partial(
            self.count,
            self.first_time,
            self.last_time,
            self.last_seq,
            self.total,
            self.negative_total,
            self.minimum,
            self.maximum,
            self.last_value,
        )

    def merge(self, other: Partial) -> None:
        """Fold `other` into this partial (in place)."""
        self.count += other.count
        if other.first_time < self.first_time:
            self.first_time = other.first_time
        if (other.last_time, other.last_seq) > (self.last_time, self.last_seq):
            self.last_time = other.last_time
            self.last_seq = other.last_seq
            self.last_value = other.last_value
        self.total = _add(self.total, other.total)
        self.negative_total = _add(self.negative_total, other.negative_total)
        if other.minimum is not None and (self.minimum is None or other.minimum < self.minimum):
            self.minimum = other.minimum
        if other.maximum is not None and (self.maximum is None or other.maximum > self.maximum):
            self.maximum = other.maximum

    @property
    def positive_total(self) -> Decimal:
        """What an entitlement counts of a SUM: every positive value (negatives count 0)."""
        total = self.total or Decimal(0)
        return _EXACT.subtract(total, self.negative_total) if self.negative_total else total

    def value(self, aggregation: Aggregation) -> Decimal:
        """The meter's aggregate of these events."""
        if aggregation is Aggregation.COUNT:
            return Decimal(self.count)
        if aggregation is Aggregation.SUM:
            return self.total if self.total is not None else Decimal(0)
        if aggregation is Aggregation.AVG:
            return average(self.total or Decimal(0), self.count)
        if aggregation is Aggregation.MIN:
            assert self.minimum is not None
            return self.minimum
        if aggregation is Aggregation.MAX:
            assert self.maximum is not None
            return self.maximum
        if aggregation is Aggregation.LATEST:
            assert self.last_value is not None
            return self.last_value
        raise ValueError("UNIQUE_COUNT is counted from distinct values, not partials")


def _add(left: Decimal | None, right: Decimal | None) -> Decimal | None:
    if right is None:
        return left
    if left is None:
        return right
    return _EXACT.add(left, right)


AVERAGE_SIGNIFICANT_DIGITS: Final = 30


def average(total: Decimal, count: int) -> Decimal:
    """AVG: the total over the count, to thirty significant digits (an average is the one
    aggregate that cannot be exact in general: 1/3)."""
    return Context(prec=AVERAGE_SIGNIFICANT_DIGITS).divide(total, count)


def rounded_average(value: Decimal) -> Decimal:
    """An average divided to more digits (by a database) as `average` gives it."""
    return Context(prec=AVERAGE_SIGNIFICANT_DIGITS).plus(value)


def merge_all(partials: Sequence[Partial]) -> Partial | None:
    """The merge of several partials (None for none); the inputs are left unchanged."""
    if not partials:
        return None
    merged = partials[0].copy()
    for partial in partials[1:]:
        merged.merge(partial)
    return merged


# ---------------------------------------------------------------------------------------------
# Series keys


def group_values_text(values: Mapping[str, str | None]) -> str:
    """The canonical text of a series' group-by values: a JSON object, keys sorted. Two events
    belong to the same series exactly when their texts are equal."""
    return orjson.dumps(values, option=orjson.OPT_SORT_KEYS).decode()


def group_values_digest(text: str) -> str:
    """A fixed-size key for `group_values_text` (group-by values may be long strings)."""
    return hashlib.sha256(text.encode()).hexdigest()


def distinct_key(value_key: str) -> str:
    """How a UNIQUE_COUNT value is stored in a bucket's set (see the module docstring)."""
    encoded = value_key.encode("utf-8", "surrogatepass")
    if len(encoded) <= DISTINCT_KEY_LENGTH_MAX:
        return value_key
    return "sha256:" + hashlib.sha256(encoded).hexdigest()


# ---------------------------------------------------------------------------------------------
# What a batch of events adds


SeriesKey = tuple[str, int, str, str]
"""`(meter_id, generation, subject, group_values_text)`: a series before it has an id."""


@dataclass(frozen=True)
class RolledMeter:
    """A live meter whose roll-ups ingest keeps, at its current generation."""

    meter: Meter
    generation: int


@dataclass
class RollupBatch:
    """What a set of newly stored events adds to the roll-ups: minute partials per series, and
    for UNIQUE_COUNT meters the distinct values per series and bucket at every level (their
    partials then only count events and keep their times)."""

    partials: dict[tuple[SeriesKey, int], Partial] = field(default_factory=dict)
    distinct: set[tuple[SeriesKey, int, int, str]] = field(default_factory=set)

    @property
    def is_empty(self) -> bool:
        return not self.partials and not self.distinct

    def series_keys(self) -> set[SeriesKey]:
        return {key for key, _minute in self.partials} | {key for key, *_ in self.distinct}


class _Reader:
    """One meter's per-event reading, prepared once per batch: value, key, group values."""

    __slots__ = (
        "aggregation",
        "generation",
        "group_paths",
        "keys",
        "meter_id",
        "texts",
        "value_path",
    )

    def __init__(self, rolled: RolledMeter) -> None:
        meter = rolled.meter
        self.meter_id = meter.id
        self.generation = rolled.generation
        self.aggregation = meter.aggregation
        self.value_path = meter.value_path
        self.group_paths = [path for _key, path in sorted(meter.group_paths.items())]
        self.keys = [key for key, _path in sorted(meter.group_paths.items())]
        # Group values seen in this batch -> their canonical text (most events repeat a few).
        self.texts: dict[tuple[str | None, ...], str] = {}

    def group_text(self, data: object) -> str:
        if not self.group_paths:
            return "{}"
        values = tuple(group_value(path.extract(data)) for path in self.group_paths)
        text = self.texts.get(values)
        if text is None:
            text = self.texts[values] = group_values_text(dict(zip(self.keys, values, strict=True)))
        return text


def accumulate(
    batch: RollupBatch,
    meters: Sequence[RolledMeter],
    events: Iterable[tuple[str, str, int, int, Mapping[str, Any] | None]],
) -> RollupBatch:
    """Add `events` — `(type, subject, time µs, seq, data)`, each stored exactly once — to
    `batch` for every meter of its type; events a meter cannot count are skipped, as every
    store skips them (`Meter.value_problem` says why).

    This runs for every stored event, so it merges in place instead of building a partial per
    event; `Partial.of_event` and `Partial.merge` state the same rules."""
    readers: dict[str, list[_Reader]] = {}
    for rolled in meters:
        readers.setdefault(rolled.meter.event_type, []).append(_Reader(rolled))
    partials = batch.partials
    distinct = batch.distinct
    sum_like = (Aggregation.SUM, Aggregation.AVG)
    for event_type, subject, time, seq, data in events:
        for reader in readers.get(event_type, ()):
            aggregation = reader.aggregation
            path = reader.value_path
            value: Decimal | None = None
            if aggregation is Aggregation.UNIQUE_COUNT:
                assert path is not None
                unique = unique_value_key(path.extract(data)) if data is not None else None
                if unique is None:
                    continue
                key = (reader.meter_id, reader.generation, subject, reader.group_text(data))
                stored = distinct_key(unique)
                for level in LEVELS:
                    distinct.add((key, level, time - time % _UNITS[level], stored))
                # The partial (a count and event times) says where the series has events.
            elif path is not None and aggregation is not Aggregation.COUNT:
                value = usage_number(path.extract(data)) if data is not None else None
                if value is None:
                    continue
                key = (reader.meter_id, reader.generation, subject, reader.group_text(data))
            else:
                key = (reader.meter_id, reader.generation, subject, reader.group_text(data))
            slot = (key, time - time % MINUTE_MICROSECONDS)
            found = partials.get(slot)
            if found is None:
                partials[slot] = Partial.of_event(aggregation, time, seq, value)
                continue
            found.count += 1
            if time < found.first_time:
                found.first_time = time
            later = time > found.last_time or (time == found.last_time and seq > found.last_seq)
            if later:
                found.last_time = time
                found.last_seq = seq
            if value is None:
                continue
            if aggregation in sum_like:
                found.total = value if found.total is None else _EXACT.add(found.total, value)
                if value < 0:
                    negative = found.negative_total
                    found.negative_total = (
                        value if negative is None else _EXACT.add(negative, value)
                    )
            elif aggregation is Aggregation.MIN:
                if found.minimum is None or value < found.minimum:
                    found.minimum = value
            elif aggregation is Aggregation.MAX:
                if found.maximum is None or value > found.maximum:
                    found.maximum = value
            elif later:
                found.last_value = value
    return batch


def renumbered(batch: RollupBatch, seqs: Sequence[int]) -> RollupBatch:
    """A batch accumulated with each event's position in its request as its seq, given the
    seq each position was stored under (`seqs[position]`, increasing with position): so the
    work of `accumulate` can happen before the write transaction."""
    for partial in batch.partials.values():
        partial.last_seq = seqs[partial.last_seq]
    return batch


def fold_levels(
    minute_partials: Iterable[tuple[int, int, Partial]],
) -> dict[tuple[int, Level, int], Partial]:
    """Minute partials `(series_id, minute, partial)` as partials of every level's buckets."""
    folded: dict[tuple[int, Level, int], Partial] = {}
    for series_id, minute, partial in minute_partials:
        for level in LEVELS:
            key = (series_id, level, bucket_start(minute, level))
            found = folded.get(key)
            if found is None:
                folded[key] = partial.copy()
            else:
                found.merge(partial)
    return folded
