"""Meters: what counts as a value, where windows start and end, and how a definition is checked.

Every store (SQLite and PostgreSQL today, roll-ups or another engine later) must give the same
answers, so the rules live here once and the SQL in `storage/` is tested against them:

- **Paths**: `valueProperty` and `groupBy` values are JSONPaths into the event's `data`. The forms
  people write are supported: `$.a`, `$.a.b`, `$['a b']`, `$["a"]`, `$.a[0]`. A name selects an
  object member, `[n]` an array element; nothing else (wildcards, filters, `..`, slices) is
  accepted, so a path means the same thing on every store.
- **Values**: SUM, AVG, MIN, MAX and LATEST take a JSON number or a string holding a plain decimal
  number (`"12.5"`, `"-3"`, `"1e3"`; no spaces, no `NaN`, exponents of at most three digits)
  inside the *usage domain*: at most 24 digits before the decimal point and 18 after it
  (`usage_number`). Every store and the credit engine hold such numbers, and any sum of them,
  exactly; `1e-70`, `1e308` or `"1e400"` are outside it. Anything else makes the event invalid
  for that meter: it is stored but not counted, and `GET /events` says why, so no stored event
  can make a read fail. COUNT counts every event of the type. UNIQUE_COUNT counts distinct
  values, where a value is a string, a number (compared by numeric value: `1`, `1.0` and `"1"`
  are the same) or a boolean; objects, arrays, null and missing values are invalid.
- **Group-by values**: a string as is, a number or boolean as its JSON text, null or missing as
  null (OpenMeter writes an empty string; null is kept apart from a real empty string here).
- **Windows**: tumbling windows aligned in the query's IANA time zone. MINUTE and HOUR windows
  are fixed lengths aligned on the local clock's minute and hour marks (so in India an hour window
  starts at :30 UTC, and the repeated hour of a DST fall-back is two separate windows). DAY and
  MONTH windows run from local midnight to local midnight, so a DAY window lasts 23 or 25 hours on
  DST days; where midnight is skipped or repeated the day starts at the first instant of that
  local date.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import cache
from typing import Any, Final
from zoneinfo import ZoneInfo, available_timezones

import orjson

from allotment.domain.group_filters import StringFilter
from allotment.domain.instants import OUT_OF_RANGE, is_client_instant
from allotment.domain.time import truncate_to_minute
from allotment.errors import ErrorList

SLUG_PATTERN: Final = r"^[a-z0-9]+(?:_[a-z0-9]+)*$"
SLUG_LENGTH_MAX: Final = 64
GROUP_BY_KEY_PATTERN: Final = r"^[a-zA-Z_][0-9a-zA-Z_]*$"
EVENT_TYPE_LENGTH_MAX: Final = 256
PATH_LENGTH_MAX: Final = 256
NAME_LENGTH_MAX: Final = 256
DESCRIPTION_LENGTH_MAX: Final = 1024

SUBJECT_GROUP: Final = "subject"
"""The reserved group-by key that groups rows by event subject."""

CUSTOMER_GROUP: Final = "customer_id"
"""The reserved group-by key that groups rows by customer (needs a customer filter)."""

NUMERIC_STRING_PATTERN: Final = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$"
"""A string value that counts as a number. Written in the regular-expression dialect that
Python and PostgreSQL share, because the PostgreSQL meter query applies this very pattern."""

_NUMERIC_STRING = re.compile(NUMERIC_STRING_PATTERN)
_SLUG = re.compile(SLUG_PATTERN)
_GROUP_BY_KEY = re.compile(GROUP_BY_KEY_PATTERN)


class Aggregation(StrEnum):
    SUM = "SUM"
    COUNT = "COUNT"
    UNIQUE_COUNT = "UNIQUE_COUNT"
    AVG = "AVG"
    MIN = "MIN"
    MAX = "MAX"
    LATEST = "LATEST"


class WindowSize(StrEnum):
    MINUTE = "MINUTE"
    HOUR = "HOUR"
    DAY = "DAY"
    MONTH = "MONTH"


# ---------------------------------------------------------------------------------------------
# JSONPath


PathSegment = str | int
"""An object member name, or an array index."""


class _Missing:
    """The value at a path that leads nowhere (distinct from a JSON null)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


@dataclass(frozen=True)
class JsonPath:
    """A parsed JSONPath: the text as written and the member/index steps it takes."""

    text: str
    segments: tuple[PathSegment, ...]

    @classmethod
    def parse(cls, text: str) -> JsonPath:
        """Parse `text`, raising ValueError with a message fit for the client otherwise."""
        return cls(text, _parse_segments(text))

    @property
    def is_plain_members(self) -> bool:
        """Only member names that do not look like array indexes (`$.a.b`, not `$.a[0]`)."""
        return all(isinstance(s, str) and not s.isdigit() for s in self.segments)

    def extract(self, data: object) -> object:
        """The value at this path in `data` (parsed JSON), or MISSING."""
        segments = self.segments
        if len(segments) == 1 and type(data) is dict:
            # `$.name`, by far the most common path, in one lookup.
            return data.get(segments[0], MISSING) if type(segments[0]) is str else MISSING
        current = data
        for segment in self.segments:
            if isinstance(segment, int):
                if not isinstance(current, list) or segment >= len(current):
                    return MISSING
                current = current[segment]
            else:
                if not isinstance(current, dict) or segment not in current:
                    return MISSING
                current = current[segment]
        return current


_NAME = re.compile(r"[\w$@-]+")
_INDEX = re.compile(r"\[([0-9]+)\]")


def _parse_segments(text: str) -> tuple[PathSegment, ...]:
    if not text.startswith("$"):
        raise ValueError(f"JSONPath must start with '$': {text!r}")
    if len(text) > PATH_LENGTH_MAX:
        raise ValueError(f"JSONPath is longer than {PATH_LENGTH_MAX} characters")
    segments: list[PathSegment] = []
    position = 1
    while position < len(text):
        character = text[position]
        if character == "." and text.startswith("..", position):
            raise ValueError(f"recursive descent '..' is not supported in JSONPath {text!r}")
        if character == ".":
            match = _NAME.match(text, position + 1)
            if match is None:
                raise ValueError(f"expected a member name after '.' in JSONPath {text!r}")
            segments.append(match.group())
            position = match.end()
        elif text.startswith("['", position) or text.startswith('["', position):
            name, position = _quoted_name(text, position + 1)
            segments.append(name)
        elif (index := _INDEX.match(text, position)) is not None:
            segments.append(int(index.group(1)))
            position = index.end()
        else:
            raise ValueError(
                f"unsupported JSONPath {text!r}: use $.name, $['name'] or $.name[0] steps"
            )
    if not segments:
        raise ValueError("JSONPath must select a property of data, e.g. $.tokens")
    return tuple(segments)


def _quoted_name(text: str, position: int) -> tuple[str, int]:
    """Read `'name']` or `"name"]` starting at the quote; returns the name and the next index."""
    quote = text[position]
    characters: list[str] = []
    position += 1
    while position < len(text):
        character = text[position]
        if character == "\\" and position + 1 < len(text):
            characters.append(text[position + 1])
            position += 2
            continue
        if character == quote:
            if not text.startswith("]", position + 1):
                break
            name = "".join(characters)
            # SQLite's path syntax cannot escape a double quote inside a member name.
            if '"' in name or not name:
                raise ValueError(f"unsupported member name {name!r} in JSONPath {text!r}")
            return name, position + 2
        characters.append(character)
        position += 1
    raise ValueError(f"unterminated quoted name in JSONPath {text!r}")


# ---------------------------------------------------------------------------------------------
# Values


def parse_number(value: object) -> Decimal | None:
    """A JSON value as a meter number, or None when it is not one (see the module docstring)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, float):
        # repr is the shortest text that reads back as the same float: 0.1 stays 0.1.
        return Decimal(repr(value)) if value - value == 0.0 else None
    if isinstance(value, str) and _NUMERIC_STRING.fullmatch(value):
        return Decimal(value)
    return None


USAGE_INTEGER_DIGITS_MAX: Final = 24
USAGE_FRACTION_DIGITS_MAX: Final = 18
_USAGE_LIMIT: Final = Decimal(10) ** USAGE_INTEGER_DIGITS_MAX
_INTEGER_LIMIT: Final = 10**USAGE_INTEGER_DIGITS_MAX


def usage_domain_problem(number: Decimal) -> str | None:
    """Why `number` is outside the usage domain (see the module docstring), or None."""
    if abs(number) >= _USAGE_LIMIT:
        return f"more than {USAGE_INTEGER_DIGITS_MAX} digits before the decimal point"
    exponent = number.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # finite: parse_number never returns NaN or infinity
    if -exponent > USAGE_FRACTION_DIGITS_MAX:
        return f"more than {USAGE_FRACTION_DIGITS_MAX} digits after the decimal point"
    return None


def usage_number(value: object) -> Decimal | None:
    """A JSON value as a countable meter number: a number inside the usage domain, else None."""
    if type(value) is int:  # the common case, checked without building a Decimal first
        return Decimal(value) if -_INTEGER_LIMIT < value < _INTEGER_LIMIT else None
    number = parse_number(value)
    if number is None or usage_domain_problem(number) is not None:
        return None
    return number


def canonical_number_text(number: Decimal) -> str:
    """Plain decimal text without trailing zeros: 1, 1.0 and 1e0 all read `1`."""
    normalised = number.normalize() + 0  # `+ 0` turns -0 into 0
    return format(normalised, "f")


def unique_value_key(value: object) -> str | None:
    """What UNIQUE_COUNT compares, or None when the value cannot be counted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        number = parse_number(value)
        return value if number is None else canonical_number_text(number)
    if isinstance(value, int | float | Decimal):
        number = parse_number(value)
        return None if number is None else canonical_number_text(number)
    return None


def group_value(value: object) -> str | None:
    """A group-by value as roll-ups store it: a string as is, a boolean as `true`/`false`, a
    number in plain decimal notation (`1e3` reads `1000`, `1.50` stays `1.50`), an object or
    array as its compact JSON text, and null or a missing value as None."""
    if value is None or value is MISSING:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return repr(value)
    return orjson.dumps(value, default=_json_default).decode()


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"not JSON: {type(value).__name__}")


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return f"{value!r}"


# ---------------------------------------------------------------------------------------------
# Meters


@dataclass(frozen=True)
class Meter:
    """A meter: which events it reads (`event_type`, from `event_from` on) and how it adds them up.

    `value_property` is None exactly when the aggregation is COUNT. `group_by` maps a group-by key
    to the JSONPath of its value. Deleting a meter keeps it (soft delete, `deleted_at`).
    """

    id: str
    slug: str
    name: str
    aggregation: Aggregation
    event_type: str
    created_at: datetime
    updated_at: datetime
    value_property: str | None = None
    group_by: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None
    metadata: Mapping[str, str] | None = None
    event_from: datetime | None = None
    deleted_at: datetime | None = None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def value_path(self) -> JsonPath | None:
        return _cached_path(self.value_property) if self.value_property else None

    @property
    def group_paths(self) -> dict[str, JsonPath]:
        return {key: _cached_path(path) for key, path in self.group_by.items()}

    def value_problem(self, data: object) -> str | None:
        """Why an event with this `data` is not counted by this meter, or None when it is."""
        path = self.value_path
        if self.aggregation is Aggregation.COUNT or path is None:
            return None
        if data is None:
            return f"the event has no data, so value property {path.text!r} is missing"
        value = path.extract(data)
        if value is MISSING:
            return f"missing value property {path.text!r}"
        if value is None:
            return f"value property {path.text!r} is null"
        if self.aggregation is Aggregation.UNIQUE_COUNT:
            if unique_value_key(value) is None:
                return (
                    f"value property {path.text!r} is {_describe(value)}; UNIQUE_COUNT counts "
                    "strings, numbers and booleans"
                )
            return None
        number = parse_number(value)
        if number is None:
            if isinstance(value, float):
                return f"value property {path.text!r} is not a finite number"
            return f"value property {path.text!r} is {_describe(value)}, not a number"
        problem = usage_domain_problem(number)
        if problem is not None:
            return (
                f"value property {path.text!r} is {number}, which has {problem}: usage numbers "
                f"have at most {USAGE_INTEGER_DIGITS_MAX} integer and "
                f"{USAGE_FRACTION_DIGITS_MAX} decimal digits"
            )
        return None


@cache
def _cached_path(text: str) -> JsonPath:
    return JsonPath.parse(text)


@dataclass(frozen=True)
class MeterDefinition:
    """What a client asks for when creating a meter (before ids and timestamps exist)."""

    slug: str
    aggregation: Aggregation
    event_type: str
    name: str | None = None
    description: str | None = None
    metadata: Mapping[str, str] | None = None
    event_from: datetime | None = None
    value_property: str | None = None
    group_by: Mapping[str, str] = field(default_factory=dict)


def check_definition(definition: MeterDefinition) -> ErrorList:
    """Every rule a new meter must follow; each broken rule names its wire field."""
    errors = ErrorList()
    if not _SLUG.match(definition.slug) or len(definition.slug) > SLUG_LENGTH_MAX:
        errors.add(
            "slug",
            f"must match {SLUG_PATTERN} and be at most {SLUG_LENGTH_MAX} characters",
        )
    if not definition.event_type or len(definition.event_type) > EVENT_TYPE_LENGTH_MAX:
        errors.add("eventType", f"must be 1 to {EVENT_TYPE_LENGTH_MAX} characters")
    _check_texts(errors, definition.name, definition.description)
    if definition.event_from is not None and not is_client_instant(definition.event_from):
        errors.add("eventFrom", OUT_OF_RANGE)
    value_property = definition.value_property
    if definition.aggregation is Aggregation.COUNT:
        if value_property is not None:
            errors.add("valueProperty", "not allowed when the aggregation is COUNT")
    elif not value_property:
        errors.add(
            "valueProperty",
            f"required when the aggregation is {definition.aggregation.value}, e.g. $.tokens",
        )
    else:
        try:
            JsonPath.parse(value_property)
        except ValueError as error:
            errors.add("valueProperty", str(error))
    check_group_by(errors, definition.group_by, value_property)
    return errors


def check_update(
    errors: ErrorList,
    *,
    name: str | None,
    description: str | None,
    group_by: Mapping[str, str],
    value_property: str | None,
) -> ErrorList:
    """The rules of a meter update (name, description, groupBy)."""
    _check_texts(errors, name, description)
    check_group_by(errors, group_by, value_property)
    return errors


def _check_texts(errors: ErrorList, name: str | None, description: str | None) -> None:
    if name is not None and not 1 <= len(name) <= NAME_LENGTH_MAX:
        errors.add("name", f"must be 1 to {NAME_LENGTH_MAX} characters")
    if description is not None and len(description) > DESCRIPTION_LENGTH_MAX:
        errors.add("description", f"must be at most {DESCRIPTION_LENGTH_MAX} characters")


def check_group_by(
    errors: ErrorList, group_by: Mapping[str, str], value_property: str | None
) -> None:
    for key, path in group_by.items():
        field_name = f"groupBy.{key}"
        if not _GROUP_BY_KEY.match(key):
            errors.add(field_name, f"group-by key must match {GROUP_BY_KEY_PATTERN}")
        elif key in (SUBJECT_GROUP, CUSTOMER_GROUP):
            errors.add(field_name, f"{key!r} is reserved for grouping by {key}")
        try:
            JsonPath.parse(path)
        except ValueError as error:
            errors.add(field_name, str(error))
            continue
        if value_property is not None and path == value_property:
            errors.add(field_name, "a group-by path may not be the value property")


# ---------------------------------------------------------------------------------------------
# Time zones and windows


_MINUTE_MICROSECONDS: Final = 60_000_000
_HOUR_MICROSECONDS: Final = 3_600_000_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


# Files of a tz database that are not zones of the IANA list: the host's own zone, and rules.
_NOT_ZONES: Final = frozenset({"localtime", "posixrules", "Factory"})


@cache
def _known_time_zones() -> frozenset[str]:
    return (frozenset(available_timezones()) - _NOT_ZONES) | {"UTC"}


def resolve_time_zone(name: str) -> ZoneInfo:
    """An IANA time zone by name; ValueError for anything else (offsets, abbreviations, paths).

    Only names of the IANA database are accepted, so both databases know every zone we pass them.
    """
    if name not in _known_time_zones():
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin")
    return ZoneInfo(name)


def _microseconds(instant: datetime) -> int:
    delta = instant - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def window_start(instant: datetime, size: WindowSize, zone: ZoneInfo) -> datetime:
    """The start (in UTC) of the window of `size` that holds `instant`, aligned in `zone`."""
    local = instant.astimezone(zone)
    if size is WindowSize.MINUTE or size is WindowSize.HOUR:
        unit = _MINUTE_MICROSECONDS if size is WindowSize.MINUTE else _HOUR_MICROSECONDS
        offset = local.utcoffset() or timedelta(0)
        local_micros = _microseconds(instant) + (offset // timedelta(microseconds=1))
        return instant.astimezone(UTC) - timedelta(microseconds=local_micros % unit)
    day = 1 if size is WindowSize.MONTH else local.day
    # fold=0: a repeated local midnight means its first occurrence, and a skipped one the
    # instant the clocks jump (the earliest instant of that local date either way).
    return datetime(local.year, local.month, day, tzinfo=zone).astimezone(UTC)


def window_end(start: datetime, size: WindowSize, zone: ZoneInfo) -> datetime:
    """The end (exclusive, in UTC) of the window that starts at `start`."""
    if size is WindowSize.MINUTE:
        return start + timedelta(minutes=1)
    if size is WindowSize.HOUR:
        return start + timedelta(hours=1)
    local = start.astimezone(zone)
    if size is WindowSize.DAY:
        next_day = local.date() + timedelta(days=1)
        return datetime(next_day.year, next_day.month, next_day.day, tzinfo=zone).astimezone(UTC)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime(year, month, 1, tzinfo=zone).astimezone(UTC)


# ---------------------------------------------------------------------------------------------
# Queries


@dataclass(frozen=True)
class MeterQuery:
    """A meter query as asked: `[from_time, to_time)`, windows, filters and grouping.

    `subjects` filters by subject and groups by it; `customer_ids` filters by the customers'
    subjects and groups by customer; `filter_group_by` keeps events whose group-by value is one of
    the listed strings.
    """

    from_time: datetime | None = None
    to_time: datetime | None = None
    window_size: WindowSize | None = None
    time_zone: str = "UTC"
    subjects: Sequence[str] = ()
    customer_ids: Sequence[str] = ()
    group_by: Sequence[str] = ()
    filter_group_by: Mapping[str, Sequence[str]] = field(default_factory=dict)
    advanced_filters: Mapping[str, StringFilter] = field(default_factory=dict)
    """Group-by key -> filter on its value (`advancedMeterGroupByFilters`)."""

    @property
    def zone(self) -> ZoneInfo:
        return resolve_time_zone(self.time_zone)

    def effective_from(self, meter: Meter) -> datetime | None:
        """The query start, moved up to the meter's `event_from`: earlier events never count."""
        if meter.event_from is None:
            return self.from_time
        if self.from_time is None:
            return meter.event_from
        return max(self.from_time, meter.event_from)


@dataclass(frozen=True)
class Grouping:
    """The columns rows are grouped by: subject and/or customer, then meter group-by keys."""

    by_subject: bool
    by_customer: bool
    keys: tuple[str, ...]


LIST_LENGTH_MAX: Final = 100


def check_query(meter: Meter, query: MeterQuery) -> tuple[Grouping, ErrorList]:
    """Validate `query` against `meter`; returns the grouping it implies and the errors found."""
    errors = ErrorList()
    for name, instant in (("from", query.from_time), ("to", query.to_time)):
        if instant is not None and not is_client_instant(instant):
            errors.add(name, OUT_OF_RANGE)
    if (
        query.from_time is not None
        and query.to_time is not None
        and query.from_time >= query.to_time
    ):
        errors.add("to", "must be after from")
    try:
        resolve_time_zone(query.time_zone)
    except ValueError as error:
        errors.add("windowTimeZone", str(error))
    for field_name, values in (
        ("subject", query.subjects),
        ("filterCustomerId", query.customer_ids),
        ("groupBy", query.group_by),
    ):
        if len(values) > LIST_LENGTH_MAX:
            errors.add(field_name, f"at most {LIST_LENGTH_MAX} values")
    keys: list[str] = []
    by_subject = bool(query.subjects)
    by_customer = bool(query.customer_ids)
    for key in query.group_by:
        if key == SUBJECT_GROUP:
            by_subject = True
        elif key == CUSTOMER_GROUP:
            if not query.customer_ids:
                errors.add("groupBy", "grouping by customer_id needs filterCustomerId")
            by_customer = True
        elif key in meter.group_by:
            if key not in keys:
                keys.append(key)
        else:
            errors.add("groupBy", f"invalid group by: {key!r} is not a group-by key of the meter")
    for key, values in query.filter_group_by.items():
        if key not in meter.group_by:
            errors.add(
                f"filterGroupBy.{key}",
                f"invalid filter: {key!r} is not a group-by key of the meter",
            )
        elif not values:
            errors.add(f"filterGroupBy.{key}", "give at least one value")
    for key in query.advanced_filters:
        if key not in meter.group_by:
            errors.add(
                f"advancedMeterGroupByFilters.{key}",
                f"invalid filter: {key!r} is not a group-by key of the meter",
            )
    if query.advanced_filters and query.filter_group_by:
        errors.add(
            "advancedMeterGroupByFilters", "cannot be combined with filterGroupBy; use one of them"
        )
    return Grouping(by_subject=by_subject, by_customer=by_customer, keys=tuple(keys)), errors


@dataclass(frozen=True)
class MeterQueryRow:
    """One aggregate: a window (or the whole range), and the group it belongs to."""

    value: Decimal
    window_start: datetime
    window_end: datetime
    subject: str | None = None
    customer_id: str | None = None
    group_by: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class MeterQueryResult:
    meter: Meter
    query: MeterQuery
    grouping: Grouping
    rows: Sequence[MeterQueryRow]
    subject_display_names: Mapping[str, str] = field(default_factory=dict)
    """Subject key -> display name, for the subjects of the rows that have one."""


def whole_range_bounds(
    query: MeterQuery, earliest: datetime, latest: datetime
) -> tuple[datetime, datetime]:
    """Bounds of an unwindowed row: the query range, or else the events' span floored to the
    minute, with the end one minute past the latest event (so the range holds it)."""
    start = query.from_time if query.from_time is not None else truncate_to_minute(earliest)
    end = (
        query.to_time
        if query.to_time is not None
        else truncate_to_minute(latest) + timedelta(minutes=1)
    )
    return start, end


def sort_key(row: MeterQueryRow) -> tuple[Any, ...]:
    """Rows in window order, then by subject, customer and group values (nulls first)."""
    groups = tuple((value is not None, value or "") for value in row.group_by.values())
    return (row.window_start, row.subject or "", row.customer_id or "", groups)


@dataclass(frozen=True)
class MeterBucket:
    """One aggregate as a store returns it, before windows get their ends.

    `window_start` is None for an unwindowed query; `earliest` and `latest` are the times of the
    first and last event counted in it.
    """

    value: Decimal
    earliest: datetime
    latest: datetime
    window_start: datetime | None = None
    subject: str | None = None
    customer_id: str | None = None
    group_values: tuple[str | None, ...] = ()
