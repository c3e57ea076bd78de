"""Reading usage from the roll-ups: entitlement windows and meter queries.

A read adds three sources, each covering what the others do not (storage/rollups.py says why
that is exact):

- `usage_rollups`: the buckets of the range's pieces (domain/rollups.py `pieces`);
- `usage_deltas`: minute partials ingest wrote and compaction has not folded yet;
- the raw events of the range's sub-minute edges, if it has any.

Every statement reads the series of the meter's current generation, restricted to the subjects
and group-by filters asked for, so a read costs a few index ranges per series whatever the
number of events behind them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    SmallInteger,
    Subquery,
    Text,
    and_,
    cast,
    func,
    literal,
    null,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY

from allotment import json_exact
from allotment.domain.burn import EngineState
from allotment.domain.group_filters import StringFilter
from allotment.domain.instants import EARLIEST, LATEST
from allotment.domain.meters import (
    Aggregation,
    Grouping,
    Meter,
    MeterBucket,
    MeterQuery,
    WindowSize,
    group_value,
    resolve_time_zone,
    unique_value_key,
    usage_number,
    window_start,
)
from allotment.domain.rollups import (
    MINUTE_MICROSECONDS,
    Level,
    Partial,
    distinct_key,
    split_range,
)
from allotment.storage import hot_read
from allotment.storage.meter_sql import MeterDialect, filter_condition, for_dialect
from allotment.storage.repositories.base import Repository
from allotment.storage.repositories.checkpoints import state_to_text
from allotment.storage.rollups import partial_of_row
from allotment.storage.tables import (
    events,
    usage_deltas,
    usage_distinct,
    usage_rollups,
    usage_series,
)
from allotment.storage.types import from_micros, to_micros

_EARLIEST_MICROS = to_micros(EARLIEST)
_LATEST_MICROS = to_micros(LATEST)


@dataclass(frozen=True)
class SeriesScope:
    """Which series of a meter a read covers."""

    meter: Meter
    generation: int
    subjects: Sequence[str] | None
    """None: every subject; otherwise only these."""
    group_filters: Mapping[str, Sequence[str]] | None = None
    """Group-by key -> accepted values (exact match)."""
    advanced_filters: Mapping[str, StringFilter] | None = None
    """Group-by key -> filter its value must pass."""


def series_conditions(
    dialect: MeterDialect,
    dialect_name: str,
    meter_id: str,
    generation: int,
    subjects: Sequence[str] | None,
    advanced_filters: Mapping[str, StringFilter] | None = None,
    group_filters: Mapping[str, Sequence[str]] | None = None,
) -> list[ColumnElement[bool]]:
    """Conditions on `usage_series` selecting the series of a meter generation, restricted to
    `subjects` (None: all) and to group-by values passing the filters."""
    conditions: list[ColumnElement[bool]] = [
        usage_series.c.meter_id == meter_id,
        usage_series.c.generation == generation,
    ]
    if subjects is not None:
        conditions.append(usage_series.c.subject.in_(list(subjects)))
    for key, accepted in (group_filters or {}).items():
        conditions.append(hot_read.group_value(dialect_name, key).in_(list(accepted)))
    for key, condition in (advanced_filters or {}).items():
        conditions.append(
            filter_condition(dialect, hot_read.group_value(dialect_name, key), condition)
        )
    return conditions


def _series_conditions(
    dialect: MeterDialect, dialect_name: str, scope: SeriesScope
) -> list[ColumnElement[bool]]:
    return series_conditions(
        dialect,
        dialect_name,
        scope.meter.id,
        scope.generation,
        scope.subjects,
        scope.advanced_filters,
        scope.group_filters,
    )


def _pieces_table(
    dialect_name: str, rows: Sequence[tuple[int, int, int, int]], name: str = "pieces"
) -> Subquery:
    """`(range_index, level, piece_start, piece_end)` rows from one bound parameter."""
    if dialect_name == "postgresql":
        columns = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
        table = (
            func.unnest(
                literal(list(columns[0]), ARRAY(Integer)),
                literal(list(columns[1]), ARRAY(SmallInteger)),
                literal(list(columns[2]), ARRAY(BigInteger)),
                literal(list(columns[3]), ARRAY(BigInteger)),
            )
            .table_valued("range_index", "level", "piece_start", "piece_end")
            .render_derived()
        )
        return select(
            table.c.range_index, table.c.level, table.c.piece_start, table.c.piece_end
        ).subquery(name)
    items = func.json_each(literal(json.dumps(rows), Text)).table_valued("value")
    return select(
        func.json_extract(items.c.value, "$[0]", type_=Integer).label("range_index"),
        func.json_extract(items.c.value, "$[1]", type_=Integer).label("level"),
        func.json_extract(items.c.value, "$[2]", type_=BigInteger).label("piece_start"),
        func.json_extract(items.c.value, "$[3]", type_=BigInteger).label("piece_end"),
    ).subquery(name)


def _aggregate_columns(table: Any) -> list[ColumnElement[Any]]:
    return [
        table.c["count"],
        table.c.first_time,
        table.c.last_time,
        table.c.last_seq,
        table.c.total,
        table.c.negative_total,
        table.c.minimum,
        table.c.maximum,
        table.c.last_value,
    ]


def _merged(
    dialect: MeterDialect, union: Subquery, aggregation: Aggregation
) -> list[ColumnElement[Any]]:
    """The nine aggregate columns of `union`'s rows merged per group, in Partial order; the
    amounts the meter's aggregation never fills stay NULL. On SQLite each exact amount is a
    Python aggregate called once per row, and a month of 1,000 subjects is tens of thousands
    of rows: merging all five amounts of every meter was most of a meter query's time."""
    amounts = _AMOUNTS_OF[aggregation]

    def amount(name: str, merged: ColumnElement[Any]) -> ColumnElement[Any]:
        return (merged if name in amounts else null()).label(name)

    if aggregation is Aggregation.LATEST:
        latest_seq = dialect.latest(union.c.last_seq, union.c.last_time, union.c.last_seq)
    else:
        # Only LATEST orders by it; a plain maximum keeps the column filled.
        latest_seq = func.max(union.c.last_seq)
    latest_value = dialect.latest(union.c.last_value, union.c.last_time, union.c.last_seq)
    return [
        func.sum(union.c["count"]).label("count"),
        func.min(union.c.first_time).label("first_time"),
        func.max(union.c.last_time).label("last_time"),
        latest_seq.label("last_seq"),
        amount("total", dialect.arithmetic(Aggregation.SUM, union.c.total)),
        amount("negative_total", dialect.arithmetic(Aggregation.SUM, union.c.negative_total)),
        amount("minimum", dialect.arithmetic(Aggregation.MIN, union.c.minimum)),
        amount("maximum", dialect.arithmetic(Aggregation.MAX, union.c.maximum)),
        amount("last_value", latest_value),
    ]


_AMOUNTS_OF: dict[Aggregation, frozenset[str]] = {
    Aggregation.SUM: frozenset({"total", "negative_total"}),
    Aggregation.AVG: frozenset({"total", "negative_total"}),
    Aggregation.MIN: frozenset({"minimum"}),
    Aggregation.MAX: frozenset({"maximum"}),
    Aggregation.LATEST: frozenset({"last_value"}),
    Aggregation.COUNT: frozenset(),
    Aggregation.UNIQUE_COUNT: frozenset(),
}
"""The amounts `Partial.of_event` fills for each aggregation (the others are always NULL)."""


@dataclass(frozen=True)
class Probe:
    """What a read's one statement also checks, besides usage (services/entitlement_values.py):
    the stamps cached definitions were loaded at, and whether the checkpoints still hold."""

    customer_id: str | None
    checkpoints: tuple[tuple[str, EngineState] | None, ...] = ()
    """Per request: `(entitlement id, checkpoint)` its run starts from, or None."""
    newer_than: tuple[tuple[str, datetime | None], ...] = ()
    """`(entitlement id, instant its run starts from or None)`: also report whether any of
    them has a checkpoint saved after that instant, at or before `at`."""
    at: datetime | None = None


@dataclass(frozen=True)
class ProbeResult:
    catalog_version: int
    customer_revision: int | None
    checkpoint_valid: bool
    """Every probed checkpoint still exists and no usage before it waits in the deltas."""
    newer_checkpoint: bool
    """One of `newer_than` has a newer checkpoint, at or before the probe's `at`."""


@dataclass(frozen=True)
class ScopedRanges:
    """Usage ranges of one entitlement: its series and the `[start, end)` ranges it needs."""

    scope: SeriesScope
    ranges: Sequence[tuple[datetime, datetime]]


# Row kinds of the read statement (`RollupReader.read`).
_STAMPS, _PARTIALS, _DISTINCT = 0, 1, 2


class RollupReader(Repository):
    """Usage from roll-ups, deltas and raw edges, for meters whose roll-ups are complete."""

    @property
    def _meter_dialect(self) -> MeterDialect:
        return for_dialect(self.dialect)

    def _series(self, scope: SeriesScope) -> Select[Any]:
        return select(usage_series.c.id).where(
            *_series_conditions(self._meter_dialect, self.dialect, scope)
        )

    # -- entitlements -----------------------------------------------------------------------

    def read(
        self, probe: Probe, requests: Sequence[ScopedRanges]
    ) -> tuple[ProbeResult, list[list[Decimal]]]:
        """One statement (storage/hot_read.py): the probe's stamps and, for each request, the
        usage an entitlement counts in each of its minute-aligned ranges (as
        `usage_in_ranges`)."""
        pieces: list[tuple[int, int, int, int, int]] = []
        ranges: list[tuple[int, int, int, int, int]] = []
        owners: list[Meter] = []  # by range index
        placed: list[list[int]] = [[] for _ in requests]  # request -> its range indexes
        for number, request in enumerate(requests):
            meter = request.scope.meter
            for start, end in request.ranges:
                index = len(owners)
                owners.append(meter)
                placed[number].append(index)
                low, high = _range_micros(meter, start, end)
                for piece in split_range(low, high).pieces:
                    pieces.append((index, number, int(piece.level), piece.start, piece.end))
                ranges.append((index, number, 0, low, high))
        checkpoints = list(probe.checkpoints) + [None] * (len(requests) - len(probe.checkpoints))
        # Once any entitlement starts from a checkpoint, the statement checks a slot of each.
        any_checkpoint = any(c is not None for c in checkpoints)
        shape = hot_read.ReadShape.of(
            customer_id=probe.customer_id,
            checkpoint_checks=len(checkpoints) if any_checkpoint else 0,
            newer_checks=len(probe.newer_than),
            scopes=[
                (r.scope.meter, r.scope.generation, r.scope.advanced_filters) for r in requests
            ],
        )
        statement = hot_read.prepared(self.connection.dialect, shape)
        values: dict[str, Any] = {"read_customer": probe.customer_id}
        if probe.newer_than:
            assert probe.at is not None  # newer than what, up to when
            values["read_at"] = to_micros(probe.at)
            for number, (entitlement_id, after) in enumerate(probe.newer_than):
                values[f"read_newer_of_{number}"] = entitlement_id
                values[f"read_newer_after_{number}"] = -1 if after is None else to_micros(after)
        checked: list[tuple[int, int, int, int, int]] = []
        for number, checkpoint in enumerate(checkpoints[: shape.checkpoint_checks]):
            if checkpoint is None:
                values[f"read_checkpoint_of_{number}"] = None
                values[f"read_checkpoint_at_{number}"] = None
                values[f"read_checkpoint_state_{number}"] = None
            else:
                checked.append((number, number, 0, 0, to_micros(checkpoint[1].at)))
                values[f"read_checkpoint_of_{number}"] = checkpoint[0]
                values[f"read_checkpoint_at_{number}"] = to_micros(checkpoint[1].at)
                values[f"read_checkpoint_state_{number}"] = state_to_text(checkpoint[1])
        for number, request in enumerate(requests):
            subjects = request.scope.subjects or ()
            values.update(hot_read.subjects_parameter(self.dialect, number, subjects))
        every_subject = [s for r in requests for s in r.scope.subjects or ()]
        values.update(hot_read.all_subjects_parameter(self.dialect, every_subject))
        values.update(hot_read.rows_parameters(self.dialect, "read_checked", checked))
        values.update(hot_read.rows_parameters(self.dialect, "read_pieces", pieces))
        values.update(hot_read.rows_parameters(self.dialect, "read_ranges", ranges))
        rows = self.connection.exec_driver_sql(statement.sql, statement.parameters(values)).all()
        stamps = next(row for row in rows if row[0] == hot_read.KIND_STAMPS)
        result = ProbeResult(
            catalog_version=int(stamps[2] or 0),
            customer_revision=None if stamps[3] is None else int(stamps[3]),
            checkpoint_valid=bool(stamps[4]),
            newer_checkpoint=bool(stamps[5]),
        )
        found_partials = {
            int(r[1]): partial_of_row(r[2:]) for r in rows if r[0] == hot_read.KIND_PARTIALS
        }
        found_distinct = {int(r[1]): int(r[4]) for r in rows if r[0] == hot_read.KIND_DISTINCT}
        usage: list[list[Decimal]] = []
        zero = Decimal(0)
        for indexes in placed:
            found: list[Decimal] = []
            for index in indexes:
                meter = owners[index]
                if meter.aggregation is Aggregation.UNIQUE_COUNT:
                    found.append(Decimal(found_distinct.get(index, 0)))
                    continue
                partial = found_partials.get(index)
                if partial is None or partial.count == 0:
                    found.append(zero)
                elif meter.aggregation is Aggregation.SUM:
                    found.append(partial.positive_total)
                else:
                    found.append(partial.value(meter.aggregation))
            usage.append(found)
        return result, usage

    def usage_in_ranges(
        self, scope: SeriesScope, ranges: Sequence[tuple[datetime, datetime]]
    ) -> list[Decimal]:
        """The usage an entitlement counts in each minute-aligned `[start, end)`: positive SUM,
        COUNT, distinct values, or the latest value (0 without events)."""
        if not ranges:
            return []
        meter = scope.meter
        bounds = [_range_micros(meter, start, end) for start, end in ranges]
        if meter.aggregation is Aggregation.UNIQUE_COUNT:
            counts = self._distinct_counts(scope, bounds)
            return [Decimal(counts.get(i, 0)) for i in range(len(ranges))]
        partials = self._range_partials(scope, bounds)
        zero = Decimal(0)
        result = []
        for index in range(len(ranges)):
            partial = partials.get(index)
            if partial is None or partial.count == 0:
                result.append(zero)
            elif meter.aggregation is Aggregation.SUM:
                result.append(partial.positive_total)
            elif meter.aggregation is Aggregation.LATEST:
                result.append(partial.value(Aggregation.LATEST))
            else:
                result.append(partial.value(meter.aggregation))
        return result

    def _piece_rows(
        self, bounds: Sequence[tuple[int, int]], top: Level = Level.DAY
    ) -> list[tuple[int, int, int, int]]:
        rows: list[tuple[int, int, int, int]] = []
        for index, (start, end) in enumerate(bounds):
            split = split_range(start, end, top)
            if split.edges:
                raise ValueError("entitlement usage ranges are minute-aligned")
            rows.extend((index, int(p.level), p.start, p.end) for p in split.pieces)
        return rows

    def _range_partials(
        self, scope: SeriesScope, bounds: Sequence[tuple[int, int]]
    ) -> dict[int, Partial]:
        pieces = _pieces_table(self.dialect, self._piece_rows(bounds))
        ranges = _pieces_table(
            self.dialect, [(i, 0, start, end) for i, (start, end) in enumerate(bounds)]
        )
        series = self._series(scope)
        rollups = (
            select(pieces.c.range_index, *_aggregate_columns(usage_rollups))
            .select_from(
                pieces.join(
                    usage_rollups,
                    and_(
                        usage_rollups.c.level == pieces.c.level,
                        usage_rollups.c.bucket >= pieces.c.piece_start,
                        usage_rollups.c.bucket < pieces.c.piece_end,
                    ),
                )
            )
            .where(usage_rollups.c.series_id.in_(series))
        )
        deltas = (
            select(ranges.c.range_index, *_aggregate_columns(usage_deltas))
            .select_from(
                ranges.join(
                    usage_deltas,
                    and_(
                        usage_deltas.c.minute >= ranges.c.piece_start,
                        usage_deltas.c.minute < ranges.c.piece_end,
                    ),
                )
            )
            .where(usage_deltas.c.series_id.in_(series))
        )
        union = union_all(rollups, deltas).subquery("parts")
        statement = select(
            union.c.range_index, *_merged(self._meter_dialect, union, scope.meter.aggregation)
        ).group_by(union.c.range_index)
        return {
            int(row[0]): partial_of_row(row[1:])
            for row in self.connection.execute(statement)
            if row[1] is not None
        }

    def _distinct_counts(
        self, scope: SeriesScope, bounds: Sequence[tuple[int, int]]
    ) -> dict[int, int]:
        pieces = _pieces_table(self.dialect, self._piece_rows(bounds))
        statement = (
            select(pieces.c.range_index, func.count(usage_distinct.c.value_key.distinct()))
            .select_from(
                pieces.join(
                    usage_distinct,
                    and_(
                        usage_distinct.c.level == pieces.c.level,
                        usage_distinct.c.bucket >= pieces.c.piece_start,
                        usage_distinct.c.bucket < pieces.c.piece_end,
                    ),
                )
            )
            .where(usage_distinct.c.series_id.in_(self._series(scope)))
            .group_by(pieces.c.range_index)
        )
        return {int(index): int(count) for index, count in self.connection.execute(statement)}

    def has_pending_usage_before(self, scope: SeriesScope, before: datetime) -> bool:
        """Whether usage before `before` is still waiting in `usage_deltas` for the series of
        `scope` (a checkpoint at `before` may have missed it)."""
        statement = select(
            select(usage_deltas.c.id)
            .where(
                usage_deltas.c.series_id.in_(self._series(scope)),
                usage_deltas.c.minute < to_micros(before),
            )
            .exists()
        )
        return bool(self.connection.execute(statement).scalar())

    # -- meter queries ----------------------------------------------------------------------

    def aggregate(
        self,
        scope: SeriesScope,
        query: MeterQuery,
        grouping: Grouping,
        customer_of_subject: Mapping[str, str] | None = None,
    ) -> list[MeterBucket] | None:
        """The meter query's buckets (only groups with events), or None when the roll-ups
        cannot answer it (a time zone whose offsets are not whole minutes)."""
        meter = scope.meter
        zone = resolve_time_zone(query.time_zone)
        top = _top_level(query.window_size, query.time_zone)
        if top is None:
            return None
        start = to_micros(query.effective_from(meter) or EARLIEST)
        end = to_micros(query.to_time) if query.to_time is not None else _LATEST_MICROS
        start = max(start, _EARLIEST_MICROS)
        if start >= end:
            return []
        split = split_range(start, end, top)
        by_subject = grouping.by_subject or grouping.by_customer
        keyer = _Keyer(self.dialect, query, grouping, by_subject)
        partials = self._grouped_partials(scope, split, keyer)
        for edge_start, edge_end in split.edges:
            self._add_edge(scope, edge_start, edge_end, keyer, zone, partials, distinct=None)
        distinct: dict[tuple[Any, ...], set[str]] | None = None
        if meter.aggregation is Aggregation.UNIQUE_COUNT:
            distinct = self._grouped_distinct(scope, split, keyer)
            for edge_start, edge_end in split.edges:
                self._add_edge(scope, edge_start, edge_end, keyer, zone, None, distinct)
        return _buckets(meter, grouping, keyer, partials, distinct, customer_of_subject)

    def _grouped_partials(
        self, scope: SeriesScope, split: Any, keyer: _Keyer
    ) -> dict[tuple[Any, ...], Partial]:
        if not split.pieces:
            return {}
        piece_rows = [(0, int(p.level), p.start, p.end) for p in split.pieces]
        core = (split.pieces[0].start, split.pieces[-1].end)
        pieces = _pieces_table(self.dialect, piece_rows)
        ranges = _pieces_table(self.dialect, [(0, 0, core[0], core[1])])
        conditions = _series_conditions(self._meter_dialect, self.dialect, scope)
        rollups = select(
            *keyer.columns(self._meter_dialect, usage_rollups.c.bucket),
            *_aggregate_columns(usage_rollups),
        ).select_from(
            # Pieces, then the meter's series, then their buckets by the roll-ups' key: left
            # to its own guesses SQLite joined the buckets by level alone and scanned every
            # series' buckets of that level once per piece.
            hot_read.InOrder(
                hot_read.InOrder(pieces, usage_series, and_(*conditions)),
                usage_rollups,
                and_(
                    usage_rollups.c.level == pieces.c.level,
                    usage_rollups.c.series_id == usage_series.c.id,
                    usage_rollups.c.bucket >= pieces.c.piece_start,
                    usage_rollups.c.bucket < pieces.c.piece_end,
                ),
            )
        )
        deltas = (
            select(
                *keyer.columns(self._meter_dialect, usage_deltas.c.minute),
                *_aggregate_columns(usage_deltas),
            )
            .select_from(
                ranges.join(
                    usage_deltas,
                    and_(
                        usage_deltas.c.minute >= ranges.c.piece_start,
                        usage_deltas.c.minute < ranges.c.piece_end,
                    ),
                ).join(usage_series, usage_series.c.id == usage_deltas.c.series_id)
            )
            .where(*conditions)
        )
        union = union_all(rollups, deltas).subquery("parts")
        keys = [union.c[name] for name in keyer.names]
        merged = _merged(self._meter_dialect, union, scope.meter.aggregation)
        statement = select(*keys, *merged).group_by(*keys)
        width = len(keys)
        return {
            tuple(row[:width]): partial_of_row(row[width:])
            for row in self.connection.execute(statement)
            if row[width] is not None
        }

    def _grouped_distinct(
        self, scope: SeriesScope, split: Any, keyer: _Keyer
    ) -> dict[tuple[Any, ...], set[str]]:
        if not split.pieces:
            return {}
        pieces = _pieces_table(
            self.dialect, [(0, int(p.level), p.start, p.end) for p in split.pieces]
        )
        columns = keyer.columns(self._meter_dialect, usage_distinct.c.bucket)
        statement = (
            select(*columns, usage_distinct.c.value_key)
            .distinct()
            .select_from(
                hot_read.InOrder(
                    hot_read.InOrder(
                        pieces,
                        usage_series,
                        and_(*_series_conditions(self._meter_dialect, self.dialect, scope)),
                    ),
                    usage_distinct,
                    and_(
                        usage_distinct.c.level == pieces.c.level,
                        usage_distinct.c.series_id == usage_series.c.id,
                        usage_distinct.c.bucket >= pieces.c.piece_start,
                        usage_distinct.c.bucket < pieces.c.piece_end,
                    ),
                )
            )
        )
        width = len(columns)
        found: dict[tuple[Any, ...], set[str]] = {}
        for row in self.connection.execute(statement):
            found.setdefault(tuple(row[:width]), set()).add(row[width])
        return found

    def _add_edge(
        self,
        scope: SeriesScope,
        start: int,
        end: int,
        keyer: _Keyer,
        zone: ZoneInfo,
        partials: dict[tuple[Any, ...], Partial] | None,
        distinct: dict[tuple[Any, ...], set[str]] | None,
    ) -> None:
        """Add the raw events of a sub-minute edge `[start, end)` (a few at most)."""
        meter = scope.meter
        time_column = type_coerce(events.c.time, BigInteger)
        conditions = [
            events.c.type == meter.event_type,
            events.c.excluded_at.is_(None),
            time_column >= start,
            time_column < end,
        ]
        if scope.subjects is not None:
            conditions.append(events.c.subject.in_(list(scope.subjects)))
        data_text = (
            cast(events.c.data, Text)
            if self.dialect == "postgresql"
            else type_coerce(events.c.data, Text)
        )
        statement = select(events.c.subject, time_column, events.c.seq, data_text).where(
            *conditions
        )
        group_paths = meter.group_paths
        for subject, time, seq, text in self.connection.execute(statement):
            data = json_exact.loads(text) if text is not None else None
            groups = {key: group_value(path.extract(data)) for key, path in group_paths.items()}
            if not _passes(scope, groups):
                continue
            key = keyer.key_of(subject, int(time), groups, zone)
            path = meter.value_path
            if distinct is not None:
                assert path is not None
                unique = unique_value_key(path.extract(data)) if data is not None else None
                if unique is not None:
                    distinct.setdefault(key, set()).add(distinct_key(unique))
                continue
            assert partials is not None
            value = None
            if meter.aggregation not in (Aggregation.COUNT, Aggregation.UNIQUE_COUNT):
                assert path is not None
                value = usage_number(path.extract(data)) if data is not None else None
                if value is None:
                    continue
            elif meter.aggregation is Aggregation.UNIQUE_COUNT:
                assert path is not None
                if data is None or unique_value_key(path.extract(data)) is None:
                    continue
            contribution = Partial.of_event(meter.aggregation, int(time), int(seq), value)
            found = partials.get(key)
            if found is None:
                partials[key] = contribution
            else:
                found.merge(contribution)


class _Keyer:
    """The grouping columns of a meter query over roll-ups, and the same key for raw events."""

    def __init__(
        self, dialect_name: str, query: MeterQuery, grouping: Grouping, by_subject: bool
    ) -> None:
        self.dialect_name = dialect_name
        self.window_size = query.window_size
        self.time_zone = query.time_zone
        self.by_subject = by_subject
        self.keys = grouping.keys
        self.names = (
            (["window"] if self.window_size is not None else [])
            + (["subject"] if by_subject else [])
            + [f"group_{i}" for i in range(len(self.keys))]
        )

    def columns(self, dialect: MeterDialect, bucket: ColumnElement[Any]) -> list[Any]:
        columns: list[Any] = []
        if self.window_size is not None:
            columns.append(
                dialect.window_start(self.window_size, self.time_zone, bucket).label("window")
            )
        if self.by_subject:
            columns.append(usage_series.c.subject.label("subject"))
        for index, key in enumerate(self.keys):
            columns.append(hot_read.group_value(self.dialect_name, key).label(f"group_{index}"))
        return columns

    def split(self, key: tuple[Any, ...]) -> tuple[int | None, str | None, tuple[Any, ...]]:
        """(window µs, subject, group values) of a key made of `columns` or `key_of`."""
        position = 0
        window = None
        if self.window_size is not None:
            window = int(key[0])
            position = 1
        subject = None
        if self.by_subject:
            subject = key[position]
            position += 1
        return window, subject, tuple(key[position:])

    def key_of(
        self, subject: str, time: int, groups: Mapping[str, str | None], zone: ZoneInfo
    ) -> tuple[Any, ...]:
        key: list[Any] = []
        if self.window_size is not None:
            key.append(to_micros(window_start(from_micros(time), self.window_size, zone)))
        if self.by_subject:
            key.append(subject)
        key.extend(groups.get(name) for name in self.keys)
        return tuple(key)


def _passes(scope: SeriesScope, groups: Mapping[str, str | None]) -> bool:
    for key, accepted in (scope.group_filters or {}).items():
        if groups.get(key) not in accepted:
            return False
    return all(
        condition.matches(groups.get(key))
        for key, condition in (scope.advanced_filters or {}).items()
    )


def _buckets(
    meter: Meter,
    grouping: Grouping,
    keyer: _Keyer,
    partials: Mapping[tuple[Any, ...], Partial],
    distinct: Mapping[tuple[Any, ...], set[str]] | None,
    customer_of_subject: Mapping[str, str] | None,
) -> list[MeterBucket]:
    result: dict[tuple[Any, ...], tuple[Partial, set[str]]] = {}
    for key, partial in partials.items():
        if partial.count == 0:
            continue
        window, subject, groups = keyer.split(key)
        customer = None
        if grouping.by_customer:
            customer = (customer_of_subject or {}).get(subject or "")
        shown_subject = subject if grouping.by_subject else None
        target = (window, shown_subject, customer, groups)
        values = set(distinct.get(key, set())) if distinct is not None else set()
        found = result.get(target)
        if found is None:
            result[target] = (partial.copy(), values)
        else:
            found[0].merge(partial)
            found[1].update(values)
    buckets = []
    for (window, subject, customer, groups), (partial, values) in result.items():
        if meter.aggregation is Aggregation.UNIQUE_COUNT:
            value = Decimal(len(values))
        else:
            value = partial.value(meter.aggregation)
        buckets.append(
            MeterBucket(
                value=value,
                earliest=from_micros(partial.first_time),
                latest=from_micros(partial.last_time),
                window_start=from_micros(window) if window is not None else None,
                subject=subject,
                customer_id=customer,
                group_values=groups,
            )
        )
    return buckets


def _range_micros(meter: Meter, start: datetime, end: datetime) -> tuple[int, int]:
    """`[start, end)` moved up to the meter's `event_from` (earlier events never count)."""
    low = to_micros(start)
    if meter.event_from is not None:
        low = max(low, -(-to_micros(meter.event_from) // MINUTE_MICROSECONDS) * MINUTE_MICROSECONDS)
    high = to_micros(end)
    return (low, max(low, high))


# ---------------------------------------------------------------------------------------------
# Which bucket level can answer windows in a time zone


@cache
def _zone_step(zone_name: str) -> int | None:
    """The coarsest unit (µs) every UTC offset of `zone_name` since 1970 is a multiple of: a
    day (always UTC), an hour, a minute, or None when some offset has seconds
    (Africa/Monrovia until 1972)."""
    if zone_name == "UTC":
        return DAY_STEP
    zone = resolve_time_zone(zone_name)
    # Every 6 hours from 1970 to 2100: no zone changes its offset more often, and later years
    # repeat its last rule.
    offsets = {
        datetime.fromtimestamp(seconds, zone).utcoffset()
        for seconds in range(0, 130 * 366 * 86_400, 6 * 3600)
    }
    seconds = {int(offset.total_seconds()) for offset in offsets if offset is not None}
    if seconds == {0}:
        return DAY_STEP
    if all(o % 3600 == 0 for o in seconds):
        return HOUR_STEP
    if all(o % 60 == 0 for o in seconds):
        return MINUTE_MICROSECONDS
    return None


DAY_STEP = 86_400_000_000
HOUR_STEP = 3_600_000_000


def _top_level(window_size: WindowSize | None, zone_name: str) -> Level | None:
    """The coarsest level whose buckets never straddle a window boundary."""
    if window_size is None:
        return Level.DAY
    if window_size is WindowSize.MINUTE:
        return Level.MINUTE if _zone_step(zone_name) is not None else None
    step = _zone_step(zone_name)
    if step is None:
        return None
    if window_size is WindowSize.HOUR:
        return Level.HOUR if step >= HOUR_STEP else Level.MINUTE
    if step >= DAY_STEP:
        return Level.DAY
    return Level.HOUR if step >= HOUR_STEP else Level.MINUTE
