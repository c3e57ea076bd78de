"""The filters of the cursor-paginated event list (`GET /api/v2/events`, OpenMeter's
`filter` parameter): string filters on `id`, `source`, `subject` and `type`, time filters on
`time` and `ingestedAt`, and `customerId` as `{"$in": [...]}`.

Each field's filter is an object of operators. As OpenMeter's schema has it, an operator whose
value is `null` is not set; several operators in one object must all hold (so
`{"$gte": a, "$lt": b}` is a range); an object with none filters nothing.

Times are compared as instants: `$gt`, `$gte`, `$lt`, `$lte`, combined by `$and` and `$or`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from allotment.domain.group_filters import StringFilter, parse_filter
from allotment.domain.instants import OUT_OF_RANGE, is_client_instant
from allotment.errors import FieldError, InvalidInput

STRING_FIELDS: Final = ("id", "source", "subject", "type")
TIME_FIELDS: Final = ("time", "ingestedAt")
FIELDS: Final = (*STRING_FIELDS, "customerId", *TIME_FIELDS)
TIME_COMPARISONS: Final = frozenset({"$gt", "$gte", "$lt", "$lte"})
_DEPTH_MAX: Final = 8
_LIST_LENGTH_MAX: Final = 100


@dataclass(frozen=True)
class TimeFilter:
    """One operator: a comparison with an instant, or `$and`/`$or` of filters."""

    operator: str
    operand: datetime | tuple[TimeFilter, ...]

    def matches(self, instant: datetime) -> bool:
        """The reference meaning the SQL reproduces."""
        operand = self.operand
        if isinstance(operand, tuple):
            results = (child.matches(instant) for child in operand)
            return all(results) if self.operator == "$and" else any(results)
        return _COMPARE[self.operator](instant, operand)


_COMPARE: Final[dict[str, Callable[[datetime, datetime], bool]]] = {
    "$gt": lambda instant, bound: instant > bound,
    "$gte": lambda instant, bound: instant >= bound,
    "$lt": lambda instant, bound: instant < bound,
    "$lte": lambda instant, bound: instant <= bound,
}


@dataclass(frozen=True)
class EventListFilter:
    """A parsed `filter`: field -> filter, and the customers whose subjects are wanted."""

    strings: Mapping[str, StringFilter]
    times: Mapping[str, TimeFilter]
    customer_ids: tuple[str, ...] | None


def _refused(field: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{field}: {problem}", errors=[FieldError(field=field, message=problem)])


def _operators(raw: object, field: str) -> dict[str, object]:
    if not isinstance(raw, Mapping):
        raise _refused(field, "give an object of operators, e.g. {'$eq': 'x'}")
    return {str(key): value for key, value in raw.items() if value is not None}


def _string_filter(raw: object, field: str) -> StringFilter | None:
    operators = _operators(raw, field)
    if not operators:
        return None
    if len(operators) == 1:
        return parse_filter(operators, field)
    parts = tuple(parse_filter({op: value}, field) for op, value in operators.items())
    return StringFilter("$and", parts)


InstantReader = Callable[[object, str], datetime]
"""Reads an operand as an instant, or raises InvalidInput naming the field (the API's RFC 3339
rules live with the API)."""


def parse_time_filter(
    raw: object, field: str, read_instant: InstantReader, depth: int = 1
) -> TimeFilter | None:
    """A FilterTime object."""
    if depth > _DEPTH_MAX:
        raise _refused(field, f"filters nest at most {_DEPTH_MAX} levels")
    operators = _operators(raw, field)
    parts: list[TimeFilter] = []
    for operator, operand in operators.items():
        where = f"{field}.{operator}"
        if operator in ("$and", "$or"):
            if not isinstance(operand, list) or not operand:
                raise _refused(where, "give a non-empty list")
            if len(operand) > _LIST_LENGTH_MAX:
                raise _refused(where, f"at most {_LIST_LENGTH_MAX} items")
            children = [
                parse_time_filter(item, f"{where}.{index}", read_instant, depth + 1)
                for index, item in enumerate(operand)
            ]
            kept = tuple(child for child in children if child is not None)
            if kept:
                parts.append(TimeFilter(operator, kept))
        elif operator in TIME_COMPARISONS:
            instant = read_instant(operand, where).astimezone(UTC)
            if not is_client_instant(instant):
                raise _refused(where, OUT_OF_RANGE)
            parts.append(TimeFilter(operator, instant))
        else:
            allowed = ", ".join(sorted({*TIME_COMPARISONS, "$and", "$or"}))
            raise _refused(where, f"unknown operator; use one of {allowed}")
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else TimeFilter("$and", tuple(parts))


def parse_event_list_filter(
    raw: Mapping[str, object], read_instant: InstantReader, field: str = "filter"
) -> EventListFilter:
    """The `filter` object. Unknown fields are refused: a misspelt one would silently list
    every event."""
    strings: dict[str, StringFilter] = {}
    times: dict[str, TimeFilter] = {}
    customer_ids: tuple[str, ...] | None = None
    for name, value in raw.items():
        where = f"{field}.{name}"
        if value is None:
            continue
        if name in STRING_FIELDS:
            parsed = _string_filter(value, where)
            if parsed is not None:
                strings[name] = parsed
        elif name in TIME_FIELDS:
            time_filter = parse_time_filter(value, where, read_instant)
            if time_filter is not None:
                times[name] = time_filter
        elif name == "customerId":
            customer_ids = _customer_ids(value, where)
        else:
            raise _refused(where, f"unknown field; use one of {', '.join(FIELDS)}")
    return EventListFilter(strings=strings, times=times, customer_ids=customer_ids)


def _customer_ids(raw: object, field: str) -> tuple[str, ...] | None:
    operators = _operators(raw, field)
    unknown = sorted(set(operators) - {"$in"})
    if unknown:
        raise _refused(f"{field}.{unknown[0]}", "only $in is allowed on customerId")
    if "$in" not in operators:
        return None
    values = operators["$in"]
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise _refused(f"{field}.$in", "give a list of customer ids")
    if len(values) > _LIST_LENGTH_MAX:
        raise _refused(f"{field}.$in", f"at most {_LIST_LENGTH_MAX} items")
    return tuple(values)
