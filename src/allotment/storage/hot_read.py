"""The check-access statement: stamps, checkpoint validity and usage of every window, at once.

One statement per read, so its cost is one round trip. Its text depends only on the *shape* of
the read (is there a customer, a checkpoint to check; which series each entitlement reads), not
on the instants or windows, so it is built with SQLAlchemy once per shape, compiled, cached
(`prepared`), and afterwards sent straight to the driver: the windows travel as one parameter
(a JSON array on SQLite, arrays on PostgreSQL).

The statement is a UNION ALL of row kinds with the same columns:

- `kind 0`, one row: the catalog version, the customer's revision, whether the checkpoint still
  exists with no usage before it waiting in the deltas, and whether maintenance saved a newer
  checkpoint than the one a read started from (so its cached definitions are refreshed);
- `kind 1`, one row per range with usage: the merged partial of its buckets and deltas;
- `kind 2`, one row per range of a UNIQUE_COUNT meter: the count of distinct values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from sqlalchemy import (
    CTE,
    BigInteger,
    ColumnElement,
    Dialect,
    Integer,
    Select,
    SmallInteger,
    Subquery,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.selectable import FromClause, Join

from allotment.domain.group_filters import StringFilter
from allotment.domain.meters import Aggregation, Meter
from allotment.storage.meter_sql import MeterDialect, filter_condition, for_dialect
from allotment.storage.tables import (
    balance_checkpoints,
    catalog_versions,
    customers,
    usage_deltas,
    usage_distinct,
    usage_rollups,
    usage_series,
)

KIND_STAMPS: Final = 0
KIND_PARTIALS: Final = 1
KIND_DISTINCT: Final = 2

_PREPARED_MAX: Final = 10_000


@dataclass(frozen=True)
class SeriesShape:
    """Which series one entitlement reads (part of the statement's text)."""

    meter_id: str
    generation: int
    advanced_filters: tuple[tuple[str, StringFilter], ...]
    distinct: bool


@dataclass(frozen=True)
class ReadShape:
    with_customer: bool
    checkpoint_checks: int
    """How many entitlements the statement checks a start checkpoint of (each one's may be
    none): the same statement whichever of them has one, so a customer whose checkpoints
    maintenance saves one by one does not compile a new statement after each."""
    newer_checks: int
    """How many entitlements the statement asks "is there a newer checkpoint?" for."""
    series: tuple[SeriesShape, ...]

    @classmethod
    def of(
        cls,
        *,
        customer_id: str | None,
        checkpoint_checks: int,
        newer_checks: int,
        scopes: Sequence[tuple[Meter, int, Mapping[str, StringFilter] | None]],
    ) -> ReadShape:
        return cls(
            with_customer=customer_id is not None,
            checkpoint_checks=checkpoint_checks,
            newer_checks=newer_checks,
            series=tuple(
                SeriesShape(
                    meter.id,
                    generation,
                    tuple(sorted((filters or {}).items())),
                    meter.aggregation is Aggregation.UNIQUE_COUNT,
                )
                for meter, generation, filters in scopes
            ),
        )


@dataclass(frozen=True)
class Prepared:
    sql: str
    positional: tuple[str, ...] | None
    """Parameter names in order (SQLite), or None for named parameters (PostgreSQL)."""
    fixed: Mapping[str, Any]
    """Parameters baked into the shape (meter ids, filters): the same for every customer of
    the same features, so customers share one compiled statement."""

    def parameters(self, values: Mapping[str, Any]) -> Any:
        merged = {**self.fixed, **values}
        if self.positional is None:
            return merged
        return tuple(merged[name] for name in self.positional)


_cache: dict[tuple[str, ReadShape], Prepared] = {}


def prepared(dialect: Dialect, shape: ReadShape) -> Prepared:
    """The compiled statement of `shape` (built on first use)."""
    key = (dialect.name, shape)
    found = _cache.get(key)
    if found is None:
        found = _compile(dialect, shape)
        if len(_cache) >= _PREPARED_MAX:
            _cache.clear()
        _cache[key] = found
    return found


def rows_parameters(dialect_name: str, name: str, rows: Sequence[Sequence[int]]) -> dict[str, Any]:
    """Five-column rows `(range_index, scope, level, start, end)` as the statement's
    parameters."""
    if dialect_name == "postgresql":
        columns: list[list[int]] = [[] for _ in range(5)]
        for row in rows:
            for column, value in zip(columns, row, strict=True):
                column.append(value)
        return {f"{name}_{i}": column for i, column in enumerate(columns)}
    return {name: orjson.dumps(rows).decode()}


def _rows_table(dialect_name: str, name: str) -> Subquery:
    """The rows of `rows_parameters(name)` as a table
    `(range_index, scope, level, piece_start, piece_end)`."""
    labels = ("range_index", "scope", "level", "piece_start", "piece_end")
    if dialect_name == "postgresql":
        kinds = (Integer, Integer, SmallInteger, BigInteger, BigInteger)
        table = (
            func.unnest(
                *(
                    cast(bindparam(f"{name}_{i}", value=[]), ARRAY(kind))
                    for i, kind in enumerate(kinds)
                )
            )
            .table_valued(*labels)
            .render_derived()
        )
        return select(*(table.c[label] for label in labels)).subquery(name)
    items = func.json_each(bindparam(name, type_=Text, value="[]")).table_valued("value")
    return select(
        *(
            func.json_extract(items.c.value, f"$[{i}]", type_=BigInteger).label(label)
            for i, label in enumerate(labels)
        )
    ).subquery(name)


def subjects_parameter(dialect_name: str, number: int, subjects: Sequence[str]) -> dict[str, Any]:
    """The subjects the `number`-th entitlement reads, as the statement's parameter."""
    return {f"read_subjects_{number}": _text_list(dialect_name, subjects)}


def all_subjects_parameter(dialect_name: str, subjects: Sequence[str]) -> dict[str, Any]:
    """Every subject any entitlement of the read reads (the candidate series')."""
    return {"read_all_subjects": _text_list(dialect_name, sorted(set(subjects)))}


def _text_list(dialect_name: str, values: Sequence[str]) -> Any:
    return list(values) if dialect_name == "postgresql" else orjson.dumps(list(values)).decode()


def _in_text_list(dialect_name: str, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """`column` is one of the list parameter `name`."""
    if dialect_name == "postgresql":
        return column == func.any_(cast(bindparam(name, value=[]), ARRAY(Text)))
    items = func.json_each(bindparam(name, type_=Text, value="[]")).table_valued("value")
    return column.in_(select(items.c.value))


def group_value(dialect_name: str, key: str) -> ColumnElement[Any]:
    """A series' group-by value of `key` (NULL when it has none)."""
    if dialect_name == "postgresql":
        return usage_series.c.group_values.op("->>", return_type=Text)(literal(key, Text))
    return func.json_extract(usage_series.c.group_values, literal(f'$."{key}"', Text), type_=Text)


def _filter_keys(shape: ReadShape) -> list[str]:
    return sorted({key for series in shape.series for key, _filter in series.advanced_filters})


def _candidates(dialect_name: str, shape: ReadShape, keys: Sequence[str]) -> CTE:
    """The series any entitlement of the read may read, with the group-by value of each of
    `keys` extracted once (column `k<n>`). Every entitlement's series are then picked from these
    few rows: reading `usage_series` and parsing its JSON once per entitlement (and again for
    its checkpoint's check) was most of the statement's time for a customer with 100 features."""
    generations = {(s.meter_id, s.generation) for s in shape.series}
    return (
        select(
            usage_series.c.id.label("series_id"),
            usage_series.c.meter_id,
            usage_series.c.generation,
            usage_series.c.subject,
            *(group_value(dialect_name, key).label(f"k{n}") for n, key in enumerate(keys)),
        )
        .where(
            or_(
                *(
                    and_(usage_series.c.meter_id == meter_id, usage_series.c.generation == gen)
                    for meter_id, gen in sorted(generations)
                )
            ),
            _in_text_list(dialect_name, usage_series.c.subject, "read_all_subjects"),
        )
        .cte("candidates")
    )


def _series_map(dialect: MeterDialect, dialect_name: str, shape: ReadShape) -> CTE:
    """`(scope, series_id)`: the series each entitlement reads."""
    keys = _filter_keys(shape)
    candidates = _candidates(dialect_name, shape, keys)
    column_of = {key: candidates.c[f"k{n}"] for n, key in enumerate(keys)}
    parts = []
    for number, series in enumerate(shape.series):
        conditions = [
            candidates.c.meter_id == series.meter_id,
            candidates.c.generation == series.generation,
            _in_text_list(dialect_name, candidates.c.subject, f"read_subjects_{number}"),
            *(
                filter_condition(dialect, column_of[key], condition)
                for key, condition in series.advanced_filters
            ),
        ]
        parts.append(
            select(literal(number, Integer).label("scope"), candidates.c.series_id).where(
                *conditions
            )
        )
    return (parts[0] if len(parts) == 1 else union_all(*parts)).cte("series_map")


def _aggregates(table: Any) -> list[ColumnElement[Any]]:
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


def _null_amounts() -> list[ColumnElement[Any]]:
    # Untyped NULLs: the union's column types come from its first part, and amounts read back
    # as each database holds them (NUMERIC, or SQLite's decimal text).
    return [
        null().label(name)
        for name in ("total", "negative_total", "minimum", "maximum", "last_value")
    ]


def _stamps(
    shape: ReadShape, series: CTE | None, meter_dialect: MeterDialect, dialect_name: str
) -> Select[Any]:
    catalog = (
        select(catalog_versions.c.version)
        .where(catalog_versions.c.name == "catalog")
        .scalar_subquery()
    )
    revision: ColumnElement[Any] = literal(None, BigInteger)
    if shape.with_customer:
        revision = (
            select(customers.c.revision)
            .where(customers.c.id == bindparam("read_customer", value=None))
            .scalar_subquery()
        )
    at = type_coerce(balance_checkpoints.c.at, BigInteger)
    newer: ColumnElement[Any] = literal(0, BigInteger)
    if shape.newer_checks:
        read_at = bindparam("read_at", value=None, type_=BigInteger)
        saved = [
            select(balance_checkpoints.c.entitlement_id)
            .where(
                balance_checkpoints.c.entitlement_id
                == bindparam(f"read_newer_of_{number}", value=None),
                at > bindparam(f"read_newer_after_{number}", value=None, type_=BigInteger),
                at <= read_at,
            )
            .exists()
            for number in range(shape.newer_checks)
        ]
        newer = case((or_(*saved), 1), else_=0)
    checks: list[ColumnElement[bool]] = []
    for number in range(shape.checkpoint_checks):
        checkpoint_of = bindparam(f"read_checkpoint_of_{number}", value=None, type_=Text)
        checkpoint_at = bindparam(f"read_checkpoint_at_{number}", value=None, type_=BigInteger)
        saved_then = (
            select(balance_checkpoints.c.entitlement_id)
            .where(
                balance_checkpoints.c.entitlement_id == checkpoint_of,
                at == checkpoint_at,
                # The same state, not merely one saved at the same minute again after the
                # first was dropped.
                balance_checkpoints.c.state
                == bindparam(f"read_checkpoint_state_{number}", value=None, type_=Text),
            )
            .exists()
        )
        checks.append(or_(checkpoint_of.is_(None), saved_then))
    if checks and series is not None:
        # Usage before a checkpoint still waiting in the deltas: it may not include it. One
        # test for all of them, as ranges `[0, checkpoint)` of each one's series: the map
        # referenced once per entitlement had SQLite generate it once per reference (100
        # features: 10,000 unions, most of a second to prepare).
        before = _rows_table(dialect_name, "read_checked")
        late = select(usage_deltas.c.id).select_from(
            InOrder(
                InOrder(before, series, series.c.scope == before.c.scope),
                usage_deltas,
                and_(
                    usage_deltas.c.series_id == series.c.series_id,
                    usage_deltas.c.minute >= before.c.piece_start,
                    usage_deltas.c.minute < before.c.piece_end,
                ),
            )
        )
        checks.append(~late.exists())
    valid: ColumnElement[Any] = literal(1, BigInteger)
    if checks:
        valid = case((and_(*checks), 1), else_=0)
    return select(
        literal(KIND_STAMPS, Integer).label("kind"),
        literal(0, Integer).label("range_index"),
        catalog.label("a"),
        revision.label("b"),
        valid.label("c"),
        newer.label("d"),
        *_null_amounts(),
    )


class InOrder(Join):
    """An inner join whose left side is the outer loop. SQLite reorders joins by its own cost
    guesses (it has no statistics unless ANALYZE ran), and for a read with many entitlements
    it put the roll-ups outermost, seeking them by level alone: 1.8 s instead of milliseconds
    for a customer with 100 checkpointed features. `CROSS JOIN` is SQLite's way to say the
    order; other databases get a plain join and plan it themselves."""

    inherit_cache = True

    def __init__(self, left: FromClause, right: FromClause, onclause: ColumnElement[bool]):
        super().__init__(left, right, onclause)


@compiles(InOrder)
def _plain_join(join: InOrder, compiler: SQLCompiler, **kw: Any) -> str:
    text: str = compiler.visit_join(join, **kw)  # type: ignore[no-untyped-call]
    return text


@compiles(InOrder, "sqlite")
def _sqlite_join_in_order(join: InOrder, compiler: SQLCompiler, **kw: Any) -> str:
    kw.pop("asfrom", None)
    left = join.left._compiler_dispatch(compiler, asfrom=True, **kw)
    right = join.right._compiler_dispatch(compiler, asfrom=True, **kw)
    assert join.onclause is not None
    on = join.onclause._compiler_dispatch(compiler, **kw)
    return f"{left} CROSS JOIN {right} ON {on}"


def _partials(
    dialect: MeterDialect, pieces: Subquery, ranges: Subquery, series: CTE
) -> Select[Any]:
    # Each piece, its entitlement's series, then their buckets by the roll-ups' key.
    rollups = select(pieces.c.range_index, *_aggregates(usage_rollups)).select_from(
        InOrder(
            InOrder(pieces, series, series.c.scope == pieces.c.scope),
            usage_rollups,
            and_(
                usage_rollups.c.level == pieces.c.level,
                usage_rollups.c.series_id == series.c.series_id,
                usage_rollups.c.bucket >= pieces.c.piece_start,
                usage_rollups.c.bucket < pieces.c.piece_end,
            ),
        )
    )
    deltas = select(ranges.c.range_index, *_aggregates(usage_deltas)).select_from(
        InOrder(
            InOrder(ranges, series, series.c.scope == ranges.c.scope),
            usage_deltas,
            and_(
                usage_deltas.c.series_id == series.c.series_id,
                usage_deltas.c.minute >= ranges.c.piece_start,
                usage_deltas.c.minute < ranges.c.piece_end,
            ),
        )
    )
    union = union_all(rollups, deltas).subquery("parts")
    latest_value = dialect.latest(union.c.last_value, union.c.last_time, union.c.last_seq)
    latest_seq = dialect.latest(union.c.last_seq, union.c.last_time, union.c.last_seq)
    return select(
        literal(KIND_PARTIALS, Integer).label("kind"),
        union.c.range_index.label("range_index"),
        func.sum(union.c["count"]).label("count"),
        func.min(union.c.first_time).label("first_time"),
        func.max(union.c.last_time).label("last_time"),
        latest_seq.label("last_seq"),
        dialect.arithmetic(Aggregation.SUM, union.c.total).label("total"),
        dialect.arithmetic(Aggregation.SUM, union.c.negative_total).label("negative_total"),
        dialect.arithmetic(Aggregation.MIN, union.c.minimum).label("minimum"),
        dialect.arithmetic(Aggregation.MAX, union.c.maximum).label("maximum"),
        latest_value.label("last_value"),
    ).group_by(union.c.range_index)


def _distinct(pieces: Subquery, series: CTE) -> Select[Any]:
    return (
        select(
            literal(KIND_DISTINCT, Integer).label("kind"),
            pieces.c.range_index.label("range_index"),
            literal(None, BigInteger).label("a"),
            literal(None, BigInteger).label("b"),
            func.count(usage_distinct.c.value_key.distinct()).label("c"),
            literal(None, BigInteger).label("d"),
            *_null_amounts(),
        )
        .select_from(
            InOrder(
                InOrder(pieces, series, series.c.scope == pieces.c.scope),
                usage_distinct,
                and_(
                    usage_distinct.c.level == pieces.c.level,
                    usage_distinct.c.series_id == series.c.series_id,
                    usage_distinct.c.bucket >= pieces.c.piece_start,
                    usage_distinct.c.bucket < pieces.c.piece_end,
                ),
            )
        )
        .group_by(pieces.c.range_index)
    )


def _compile(dialect: Dialect, shape: ReadShape) -> Prepared:
    meter_dialect = for_dialect(dialect.name)
    series = _series_map(meter_dialect, dialect.name, shape) if shape.series else None
    parts: list[Select[Any]] = [_stamps(shape, series, meter_dialect, dialect.name)]
    if series is not None:
        pieces = _rows_table(dialect.name, "read_pieces")
        ranges = _rows_table(dialect.name, "read_ranges")
        if any(not s.distinct for s in shape.series):
            parts.append(_partials(meter_dialect, pieces, ranges, series))
        if any(s.distinct for s in shape.series):
            parts.append(_distinct(pieces, series))
    statement = union_all(*parts) if len(parts) > 1 else parts[0]
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    positional = tuple(compiled.positiontup) if compiled.positiontup is not None else None
    return Prepared(compiled.string, positional, dict(compiled.params))
