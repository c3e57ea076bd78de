"""SQL for meters on both databases: values, group values, windows and aggregates of raw events.

The rules come from `allotment.domain.meters`; this module writes them in each dialect:

- PostgreSQL reads `data` (JSONB) with path operators, checks numeric strings with the domain's
  own regular expression, sums exactly in NUMERIC and buckets windows with `date_trunc` in the
  query's time zone.
- SQLite reads `data` (JSON text) with `->`, and calls the Python functions of
  `sqlite_functions.py`, which apply the domain rules directly.

Everything is computed at query time from the events table, in one statement per query.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Numeric,
    Select,
    Subquery,
    Text,
    and_,
    case,
    cast,
    distinct,
    extract,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, aggregate_order_by
from sqlalchemy.types import UserDefinedType

from allotment.domain.group_filters import NEGATIVE, StringFilter
from allotment.domain.meters import (
    NUMERIC_STRING_PATTERN,
    USAGE_FRACTION_DIGITS_MAX,
    USAGE_INTEGER_DIGITS_MAX,
    Aggregation,
    JsonPath,
    Meter,
    WindowSize,
)
from allotment.storage.tables import events
from allotment.storage.types import to_micros

_event_data = events.c.data
_event_time = type_coerce(events.c.time, BigInteger)
_event_seq = events.c.seq
_UNITS_MICROSECONDS = {
    WindowSize.MINUTE: 60_000_000,
    WindowSize.HOUR: 3_600_000_000,
    WindowSize.DAY: 86_400_000_000,
}


class _JsonPathType(UserDefinedType[str]):
    """PostgreSQL's `jsonpath`, for casting a bound path text."""

    cache_ok = True

    def get_col_spec(self, **_kwargs: Any) -> str:
        return "JSONPATH"


def _sqlite_path(path: JsonPath) -> str:
    # Member names are always quoted, so any name the domain accepts reads literally.
    return "$" + "".join(
        f"[{segment}]" if isinstance(segment, int) else f'."{segment}"' for segment in path.segments
    )


def _postgres_json_path(path: JsonPath) -> str:
    # strict: a name never matches an array element nor an index an object member (as in the
    # domain); errors for missing members are silenced by jsonb_path_query_first's last argument.
    return "strict $" + "".join(
        f"[{segment}]" if isinstance(segment, int) else "." + json.dumps(segment)
        for segment in path.segments
    )


class MeterDialect:
    """The expressions one database needs; pick one with `for_dialect`."""

    def number(self, path: JsonPath) -> ColumnElement[Any]:
        raise NotImplementedError

    def positive(self, value: ColumnElement[Any]) -> ColumnElement[Any]:
        """`value`, or 0 when it is negative (what an entitlement counts of a SUM)."""
        raise NotImplementedError

    def unique_key(self, path: JsonPath) -> ColumnElement[Any]:
        raise NotImplementedError

    def group_value(self, path: JsonPath) -> ColumnElement[Any]:
        raise NotImplementedError

    def window_start(
        self, size: WindowSize, zone: str, time: ColumnElement[Any] = _event_time
    ) -> ColumnElement[Any]:
        """The start (µs) of the window holding the instant `time` (µs; an event's time by
        default, a roll-up bucket's start for roll-ups)."""
        raise NotImplementedError

    def aggregate(
        self,
        aggregation: Aggregation,
        value: ColumnElement[Any],
        time: ColumnElement[Any],
        seq: ColumnElement[Any],
    ) -> ColumnElement[Any]:
        """The aggregate of `value` over a group; `time` and `seq` order events for LATEST."""
        if aggregation is Aggregation.COUNT:
            return func.count()
        if aggregation is Aggregation.UNIQUE_COUNT:
            return func.count(distinct(value))
        if aggregation is Aggregation.LATEST:
            return self.latest(value, time, seq)
        return self.arithmetic(aggregation, value)

    def latest(
        self, value: ColumnElement[Any], time: ColumnElement[Any], seq: ColumnElement[Any]
    ) -> ColumnElement[Any]:
        """The value of the last event by time, then by arrival (`seq`)."""
        raise NotImplementedError

    def arithmetic(self, aggregation: Aggregation, value: ColumnElement[Any]) -> ColumnElement[Any]:
        """SUM, AVG, MIN or MAX of the numbers, exactly."""
        raise NotImplementedError

    def like(
        self, value: ColumnElement[Any], pattern: str, ignore_case: bool
    ) -> ColumnElement[Any]:
        raise NotImplementedError

    def code_point_order(self, value: ColumnElement[Any]) -> ColumnElement[Any]:
        """`value` compared by code point, whatever the database's default collation."""
        return value

    def ranges(self, bounds: Sequence[tuple[int, int]]) -> Subquery:
        """`bounds` (microseconds) as a table `(range_index, range_start, range_end)`, indexed
        from 0 and read from one bound parameter: the statement keeps one shape, hence one
        cached compilation, whatever the number of ranges (rows of VALUES are never cached)."""
        raise NotImplementedError

    def counted(self, meter: Meter, *, positive: bool = False) -> ColumnElement[Any]:
        """What the aggregate reads per event: the number, the unique key, or 1 for COUNT;
        with `positive`, a SUM reads negative numbers as 0 (entitlement usage)."""
        path = meter.value_path
        if meter.aggregation is Aggregation.COUNT or path is None:
            return literal(1, Integer)
        if meter.aggregation is Aggregation.UNIQUE_COUNT:
            return self.unique_key(path)
        if positive and meter.aggregation is Aggregation.SUM:
            return self.positive(self.number(path))
        return self.number(path)


def _members(path: JsonPath) -> ColumnElement[Any]:
    return literal([str(segment) for segment in path.segments], ARRAY(Text))


class _Postgres(MeterDialect):
    def _json(self, path: JsonPath) -> ColumnElement[Any]:
        if path.is_plain_members:
            return _event_data.op("#>", return_type=JSONB)(_members(path))
        return func.jsonb_path_query_first(
            _event_data,
            cast(literal(_postgres_json_path(path), Text), _JsonPathType()),
            literal_column("'{}'::jsonb"),
            true(),
            type_=JSONB,
        )

    def _text(self, path: JsonPath) -> ColumnElement[Any]:
        if path.is_plain_members:
            return _event_data.op("#>>", return_type=Text)(_members(path))
        return self._json(path).op("#>>", return_type=Text)(literal_column("'{}'::text[]"))

    def number(self, path: JsonPath) -> ColumnElement[Any]:
        kind = func.jsonb_typeof(self._json(path))
        text = self._text(path)
        number = cast(text, Numeric)
        # The usage domain (domain/meters.py): fewer than 24 integer digits, at most 18
        # fractional ones once trailing zeros go.
        in_domain = and_(
            func.abs(number) < literal_column(f"1e{USAGE_INTEGER_DIGITS_MAX}::numeric"),
            func.min_scale(number) <= USAGE_FRACTION_DIGITS_MAX,
        )
        return case(
            (and_(kind == "number", in_domain), number),
            (
                and_(
                    kind == "string",
                    text.op("~")(literal(NUMERIC_STRING_PATTERN, Text)),
                    in_domain,
                ),
                number,
            ),
            else_=literal(None, Numeric),
        )

    def positive(self, value: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.greatest(value, literal(0, Numeric))

    def unique_key(self, path: JsonPath) -> ColumnElement[Any]:
        kind = func.jsonb_typeof(self._json(path))
        text = self._text(path)
        canonical = cast(func.trim_scale(cast(text, Numeric)), Text)
        numeric_string = text.op("~")(literal(NUMERIC_STRING_PATTERN, Text))
        return case(
            (kind == "number", canonical),
            (and_(kind == "string", numeric_string), canonical),
            (kind == "string", text),
            (kind == "boolean", text),
            else_=literal(None, Text),
        )

    def group_value(self, path: JsonPath) -> ColumnElement[Any]:
        return self._text(path)

    def like(
        self, value: ColumnElement[Any], pattern: str, ignore_case: bool
    ) -> ColumnElement[Any]:
        # PostgreSQL's LIKE already escapes with a backslash, as the domain's patterns do.
        return value.ilike(pattern) if ignore_case else value.like(pattern)

    def code_point_order(self, value: ColumnElement[Any]) -> ColumnElement[Any]:
        return value.collate("C")

    def window_start(
        self, size: WindowSize, zone: str, time: ColumnElement[Any] = _event_time
    ) -> ColumnElement[Any]:
        if zone == "UTC" and size in _UNITS_MICROSECONDS:
            unit = _UNITS_MICROSECONDS[size]
            return time - ((time % unit) + unit) % unit
        zone_literal = literal(zone, Text)
        instant = func.to_timestamp(time / 1_000_000.0)
        local = func.timezone(zone_literal, instant)
        if size is WindowSize.MINUTE or size is WindowSize.HOUR:
            # Fixed-length windows on the local clock's marks: shift by the instant's own offset,
            # floor, shift back (the repeated hour of a fall-back stays two windows).
            unit = _UNITS_MICROSECONDS[size]
            offset = cast(
                extract("epoch", local - func.timezone(literal("UTC", Text), instant)) * 1_000_000,
                BigInteger,
            )
            return time - (((time + offset) % unit) + unit) % unit
        # Local midnight of the day (or month), as the earliest instant with that local date:
        # `AT TIME ZONE` would pick the later of two repeated midnights, so take the offset in
        # force just before it instead.
        local_start = func.date_trunc("day" if size is WindowSize.DAY else "month", local)
        candidate = func.timezone(zone_literal, local_start)
        just_before = candidate - literal_column("interval '1 microsecond'")
        offset_before = func.timezone(zone_literal, just_before) - func.timezone(
            literal("UTC", Text), just_before
        )
        return cast(extract("epoch", local_start - offset_before) * 1_000_000, BigInteger)

    def ranges(self, bounds: Sequence[tuple[int, int]]) -> Subquery:
        starts = literal([start for start, _ in bounds], ARRAY(BigInteger))
        ends = literal([end for _, end in bounds], ARRAY(BigInteger))
        table = (
            func.unnest(starts, ends)
            .table_valued("range_start", "range_end", with_ordinality="range_number")
            .render_derived()
        )
        return select(
            (table.c.range_number - 1).label("range_index"), table.c.range_start, table.c.range_end
        ).subquery("ranges")

    def latest(
        self, value: ColumnElement[Any], time: ColumnElement[Any], seq: ColumnElement[Any]
    ) -> ColumnElement[Any]:
        ordered = aggregate_order_by(value, time.desc(), seq.desc())
        return func.array_agg(ordered, type_=ARRAY(Numeric))[1]

    def arithmetic(self, aggregation: Aggregation, value: ColumnElement[Any]) -> ColumnElement[Any]:
        if aggregation is Aggregation.AVG:
            # Not avg(): it divides to as few as 16 significant digits (1/3 came back with 20,
            # where the roll-ups give 30). A dividend of scale 60 makes PostgreSQL divide to
            # 60 places; `rounded_average` takes that to the roll-ups' 30 significant digits.
            total = cast(func.sum(value, type_=Numeric), Numeric(1000, 60))
            return total / func.count(value)
        name = {
            Aggregation.SUM: "sum",
            Aggregation.AVG: "avg",
            Aggregation.MIN: "min",
            Aggregation.MAX: "max",
        }[aggregation]
        return getattr(func, name)(value, type_=Numeric)  # type: ignore[no-any-return]


class _Sqlite(MeterDialect):
    def _json_text(self, path: JsonPath) -> ColumnElement[Any]:
        return _event_data.op("->", return_type=Text)(literal(_sqlite_path(path), Text))

    def number(self, path: JsonPath) -> ColumnElement[Any]:
        return func.allotment_number(self._json_text(path), type_=Text)

    def positive(self, value: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.allotment_positive(value, type_=Text)

    def unique_key(self, path: JsonPath) -> ColumnElement[Any]:
        return func.allotment_unique_key(self._json_text(path), type_=Text)

    def group_value(self, path: JsonPath) -> ColumnElement[Any]:
        sqlite_path = literal(_sqlite_path(path), Text)
        kind = func.json_type(_event_data, sqlite_path)
        return case(
            (kind == "text", _event_data.op("->>", return_type=Text)(sqlite_path)),
            (kind == "true", literal("true", Text)),
            (kind == "false", literal("false", Text)),
            (kind == "null", literal(None, Text)),
            else_=self._json_text(path),
        )

    def like(
        self, value: ColumnElement[Any], pattern: str, ignore_case: bool
    ) -> ColumnElement[Any]:
        # SQLite's LIKE ignores ASCII case and has no escape by default: use the domain's rule.
        return func.allotment_like(value, literal(pattern, Text), literal(ignore_case)) == 1

    def window_start(
        self, size: WindowSize, zone: str, time: ColumnElement[Any] = _event_time
    ) -> ColumnElement[Any]:
        return func.allotment_window_start(
            time, literal(size.value, Text), literal(zone, Text), type_=BigInteger
        )

    def ranges(self, bounds: Sequence[tuple[int, int]]) -> Subquery:
        pairs = func.json_each(literal(json.dumps(bounds), Text)).table_valued("key", "value")
        return select(
            pairs.c.key.label("range_index"),
            func.json_extract(pairs.c.value, "$[0]", type_=BigInteger).label("range_start"),
            func.json_extract(pairs.c.value, "$[1]", type_=BigInteger).label("range_end"),
        ).subquery("ranges")

    def latest(
        self, value: ColumnElement[Any], time: ColumnElement[Any], seq: ColumnElement[Any]
    ) -> ColumnElement[Any]:
        return func.allotment_latest(time, seq, value, type_=Text)

    def arithmetic(self, aggregation: Aggregation, value: ColumnElement[Any]) -> ColumnElement[Any]:
        name = {
            Aggregation.SUM: "allotment_sum",
            Aggregation.AVG: "allotment_avg",
            Aggregation.MIN: "allotment_min",
            Aggregation.MAX: "allotment_max",
        }[aggregation]
        return getattr(func, name)(value, type_=Text)  # type: ignore[no-any-return]


def for_dialect(name: str) -> MeterDialect:
    return _Postgres() if name == "postgresql" else _Sqlite()


def to_decimal(value: Any) -> Decimal:
    """An aggregate as read back: NUMERIC (Decimal), integer counts, or SQLite's decimal text."""
    if isinstance(value, Decimal):
        return value
    return Decimal(value if isinstance(value, int | str) else str(value))


# ---------------------------------------------------------------------------------------------
# Statements


@dataclass(frozen=True)
class EventScope:
    """Which events of a meter a statement reads."""

    from_time: datetime | None = None
    to_time: datetime | None = None
    subjects: Sequence[str] | None = None
    """None: every subject; otherwise only these (an empty list matches nothing)."""
    group_filters: Mapping[str, Sequence[str]] | None = None
    """Meter group-by key -> accepted values (exact match)."""
    advanced_filters: Mapping[str, StringFilter] | None = None
    """Meter group-by key -> filter its value must pass."""


def filter_condition(
    dialect: MeterDialect, value: ColumnElement[Any], condition: StringFilter
) -> ColumnElement[bool]:
    """`condition` in SQL, matching what `StringFilter.matches` says (a missing value passes
    the negative operators only)."""
    operator, operand = condition.operator, condition.operand
    if operator in ("$and", "$or"):
        parts = [filter_condition(dialect, value, f) for f in operand]  # type: ignore[arg-type]
        return and_(*parts) if operator == "$and" else or_(*parts)
    chosen: ColumnElement[Any]
    if operator in ("$in", "$nin"):
        chosen = value.in_(list(operand))
    elif operator in ("$like", "$nlike", "$ilike", "$nilike"):
        chosen = dialect.like(value, str(operand), ignore_case=operator in ("$ilike", "$nilike"))
    else:
        ordered = dialect.code_point_order(value)
        text = literal(str(operand), Text)
        chosen = {
            "$eq": value == text,
            "$ne": value == text,
            "$gt": ordered > text,
            "$gte": ordered >= text,
            "$lt": ordered < text,
            "$lte": ordered <= text,
        }[operator]
    if operator in NEGATIVE:
        return or_(value.is_(None), not_(chosen))
    return and_(value.is_not(None), chosen)


def scoped_events(
    meter: Meter,
    dialect: MeterDialect,
    scope: EventScope,
    columns: Sequence[ColumnElement[Any]],
) -> Select[Any]:
    """SELECT `columns` FROM events of the meter's type within `scope`."""
    conditions: list[ColumnElement[bool]] = [
        events.c.type == meter.event_type,
        events.c.excluded_at.is_(None),
    ]
    from_time = scope.from_time
    if meter.event_from is not None and (from_time is None or from_time < meter.event_from):
        from_time = meter.event_from
    if from_time is not None:
        conditions.append(_event_time >= to_micros(from_time))
    if scope.to_time is not None:
        conditions.append(_event_time < to_micros(scope.to_time))
    if scope.subjects is not None:
        conditions.append(events.c.subject.in_(list(scope.subjects)))
    group_paths = meter.group_paths
    for key, accepted in (scope.group_filters or {}).items():
        conditions.append(dialect.group_value(group_paths[key]).in_(list(accepted)))
    for key, condition in (scope.advanced_filters or {}).items():
        value = dialect.group_value(group_paths[key])
        conditions.append(filter_condition(dialect, value, condition))
    return select(*columns).where(*conditions)


def counted_events(
    meter: Meter,
    dialect: MeterDialect,
    scope: EventScope,
    extra_columns: Sequence[ColumnElement[Any]] = (),
    *,
    positive: bool = False,
) -> Subquery:
    """The meter's countable events: `value`, `time`, `seq`, plus `extra_columns` (labelled)."""
    columns = [
        dialect.counted(meter, positive=positive).label("value"),
        _event_time.label("time"),
        _event_seq.label("seq"),
        *extra_columns,
    ]
    return scoped_events(meter, dialect, scope, columns).subquery("counted")


def usage_in_ranges(
    meter: Meter,
    dialect: MeterDialect,
    scope: EventScope,
    ranges: Sequence[tuple[datetime, datetime]],
) -> Select[Any]:
    """One row `(range_index, value)` per range `[start, end)` that holds countable events."""
    table = dialect.ranges([(to_micros(start), to_micros(end)) for start, end in ranges])
    # The join's bounds reach the events index, so each range reads only its own events. No
    # bound on the ranges' hull: SQLite would seek by it instead, reading the hull per range.
    counted = counted_events(meter, dialect, scope, positive=True)
    value = dialect.aggregate(meter.aggregation, counted.c.value, counted.c.time, counted.c.seq)
    return (
        select(table.c.range_index, value.label("value"))
        .select_from(
            table.join(
                counted,
                and_(counted.c.time >= table.c.range_start, counted.c.time < table.c.range_end),
            )
        )
        .where(counted.c.value.is_not(None))
        .group_by(table.c.range_index)
    )
