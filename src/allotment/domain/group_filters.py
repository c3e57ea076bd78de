"""Filters on group-by values (OpenMeter's `FilterString`): what each one matches, and reading one.

Features store them to restrict which usage counts towards balances; meter queries take them as
`advancedMeterGroupByFilters`. `StringFilter.matches` is the reference meaning: the SQL both
databases run (`storage/meter_sql.py`) is tested against it.

A filter is an object with exactly one operator:

- `$eq`, `$ne`: equal, not equal to a string;
- `$in`, `$nin`: one of, none of a list of strings;
- `$like`, `$nlike`, `$ilike`, `$nilike`: SQL LIKE patterns (`%` any run of characters, `_` any
  one character, a backslash makes the next character literal); the `i` forms ignore case;
- `$gt`, `$gte`, `$lt`, `$lte`: string order by code point (never a locale's collation);
- `$and`, `$or`: a list of filters.

A group-by value that is missing (or null) is no string: it matches only the negative operators
(`$ne`, `$nin`, `$nlike`, `$nilike`), since it is indeed not equal to, nor like, anything.
Empty strings are refused as operands, as OpenMeter refuses them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final

from allotment.domain.text import UNSTORABLE_TEXT, is_storable_text
from allotment.errors import FieldError, InvalidInput

COMPARISONS: Final = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})
MEMBERSHIP: Final = frozenset({"$in", "$nin"})
PATTERNS: Final = frozenset({"$like", "$nlike", "$ilike", "$nilike"})
COMBINATIONS: Final = frozenset({"$and", "$or"})
NEGATIVE: Final = frozenset({"$ne", "$nin", "$nlike", "$nilike"})
OPERATORS: Final = COMPARISONS | MEMBERSHIP | PATTERNS | COMBINATIONS
# Deep enough for any real rule, shallow enough that no request can exhaust the stack.
DEPTH_MAX: Final = 8
LIST_LENGTH_MAX: Final = 100


@dataclass(frozen=True)
class StringFilter:
    """One operator and its operand: a string, a tuple of strings, or a tuple of filters."""

    operator: str
    operand: str | tuple[str, ...] | tuple[StringFilter, ...]

    def matches(self, value: str | None) -> bool:
        """The reference meaning every store must reproduce."""
        operator, operand = self.operator, self.operand
        if operator == "$and":
            return all(f.matches(value) for f in operand)  # type: ignore[union-attr]
        if operator == "$or":
            return any(f.matches(value) for f in operand)  # type: ignore[union-attr]
        if value is None:
            return operator in NEGATIVE
        if operator in MEMBERSHIP:
            return (value in operand) == (operator == "$in")
        if operator in PATTERNS:
            pattern = like_regex(str(operand), ignore_case=operator in ("$ilike", "$nilike"))
            return (pattern.fullmatch(value) is not None) == (operator in ("$like", "$ilike"))
        return _COMPARE[operator](value, str(operand))

    def to_document(self) -> dict[str, object]:
        """The JSON form, as sent on the wire and stored."""
        if self.operator in COMBINATIONS:
            return {
                self.operator: [
                    child.to_document() for child in self.operand if isinstance(child, StringFilter)
                ]
            }
        if self.operator in MEMBERSHIP:
            return {self.operator: list(self.operand)}
        return {self.operator: self.operand}


_COMPARE: Final[dict[str, Callable[[str, str], bool]]] = {
    "$eq": lambda value, operand: value == operand,
    "$ne": lambda value, operand: value != operand,
    "$gt": lambda value, operand: value > operand,
    "$gte": lambda value, operand: value >= operand,
    "$lt": lambda value, operand: value < operand,
    "$lte": lambda value, operand: value <= operand,
}


@cache
def like_regex(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    """A LIKE pattern as a regular expression over the whole value."""
    parts: list[str] = []
    escaped = False
    for character in pattern:
        if escaped:
            parts.append(re.escape(character))
            escaped = False
        elif character == "\\":
            escaped = True
        elif character == "%":
            parts.append(".*")
        elif character == "_":
            parts.append(".")
        else:
            parts.append(re.escape(character))
    if escaped:
        parts.append(re.escape("\\"))
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("".join(parts), flags)


def parse_filter(raw: object, field: str) -> StringFilter:
    """Read a filter from parsed JSON; InvalidInput names the exact place that is wrong
    (`field.$in.1`), and its message starts with that place too."""
    return _parse(raw, field, depth=1)


def filter_text(value: object, field: str) -> str:
    """A string operand: non-empty, as OpenMeter requires, and storable by both databases."""
    if not isinstance(value, str) or not value:
        raise _refused(field, "give a non-empty string")
    if not is_storable_text(value):
        raise _refused(field, UNSTORABLE_TEXT)
    return value


def _parse(raw: object, field: str, depth: int) -> StringFilter:
    if depth > DEPTH_MAX:
        raise _refused(field, f"filters nest at most {DEPTH_MAX} levels")
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise _refused(field, "give an object with exactly one operator, e.g. {'$eq': 'x'}")
    ((operator, operand),) = raw.items()
    if operator not in OPERATORS:
        allowed = ", ".join(sorted(OPERATORS))
        raise _refused(field, f"unknown operator {operator!r}; use one of {allowed}")
    where = f"{field}.{operator}"
    if operator in COMBINATIONS:
        items = _list(operand, where)
        return StringFilter(
            operator,
            tuple(_parse(item, f"{where}.{i}", depth + 1) for i, item in enumerate(items)),
        )
    if operator in MEMBERSHIP:
        items = _list(operand, where)
        return StringFilter(
            operator, tuple(filter_text(item, f"{where}.{i}") for i, item in enumerate(items))
        )
    return StringFilter(operator, filter_text(operand, where))


def _list(operand: object, where: str) -> Sequence[object]:
    if not isinstance(operand, list) or not operand:
        raise _refused(where, "give a non-empty list")
    if len(operand) > LIST_LENGTH_MAX:
        raise _refused(where, f"at most {LIST_LENGTH_MAX} items")
    return operand


def _refused(field: str, problem: str) -> InvalidInput:
    # The message leads with the place, so a one-line detail says where; the field error keeps
    # the bare problem for lists that name the field beside it.
    return InvalidInput(f"{field}: {problem}", errors=[FieldError(field=field, message=problem)])
