"""Filters on group-by values (OpenMeter's `FilterString`), and what each one matches.

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

COMPARISONS: Final = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})
MEMBERSHIP: Final = frozenset({"$in", "$nin"})
PATTERNS: Final = frozenset({"$like", "$nlike", "$ilike", "$nilike"})
COMBINATIONS: Final = frozenset({"$and", "$or"})
NEGATIVE: Final = frozenset({"$ne", "$nin", "$nlike", "$nilike"})
OPERATORS: Final = COMPARISONS | MEMBERSHIP | PATTERNS | COMBINATIONS
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


def parse_filter(raw: object, field: str, depth: int = 0) -> StringFilter:
    """Read a filter from parsed JSON; ValueError names the field and says what is wrong."""
    if depth > DEPTH_MAX:
        raise ValueError(f"{field}: filters nest at most {DEPTH_MAX} levels")
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise ValueError(f"{field}: give an object with exactly one operator, e.g. {{'$eq': 'x'}}")
    ((operator, operand),) = raw.items()
    if operator not in OPERATORS:
        allowed = ", ".join(sorted(OPERATORS))
        raise ValueError(f"{field}: unknown operator {operator!r}; use one of {allowed}")
    where = f"{field}.{operator}"
    if operator in COMBINATIONS:
        items = _list(operand, where)
        return StringFilter(
            operator,
            tuple(parse_filter(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(items)),
        )
    if operator in MEMBERSHIP:
        return StringFilter(
            operator,
            tuple(_text(item, f"{where}[{i}]") for i, item in enumerate(_list(operand, where))),
        )
    return StringFilter(operator, _text(operand, where))


def _list(operand: object, where: str) -> Sequence[object]:
    if not isinstance(operand, list) or not operand:
        raise ValueError(f"{where}: give a non-empty list")
    if len(operand) > LIST_LENGTH_MAX:
        raise ValueError(f"{where}: at most {LIST_LENGTH_MAX} items")
    return operand


def _text(operand: object, where: str) -> str:
    if not isinstance(operand, str) or not operand:
        raise ValueError(f"{where}: give a non-empty string")
    return operand
