"""String filters on meter group-by values (OpenMeter's `FilterString`).

A filter is one operator and its operand, e.g. `{"$eq": "gpt-4"}`, `{"$in": ["a", "b"]}`,
`{"$or": [{"$eq": "a"}, {"$like": "gpt-%"}]}`. Features store them to restrict which usage counts;
`matches` is their meaning, so any code applying them (in SQL or in Python) can be checked
against it.

A group-by value an event does not carry compares as the empty string, as meters report it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from allotment.domain.text import UNSTORABLE_TEXT, is_storable_text
from allotment.errors import InvalidInput

VALUE_OPERATORS = frozenset(
    {"$eq", "$ne", "$like", "$nlike", "$ilike", "$nilike", "$gt", "$gte", "$lt", "$lte"}
)
LIST_OPERATORS = frozenset({"$in", "$nin"})
COMBINING_OPERATORS = frozenset({"$and", "$or"})
OPERATORS = VALUE_OPERATORS | LIST_OPERATORS | COMBINING_OPERATORS

# Deep enough for any real rule, shallow enough that no request can exhaust the stack.
MAX_DEPTH = 8
MAX_ITEMS = 100

Operand = str | tuple[str, ...] | tuple["StringFilter", ...]


@dataclass(frozen=True)
class StringFilter:
    operator: str
    operand: Operand

    def matches(self, value: str | None) -> bool:
        text = "" if value is None else value
        operator, operand = self.operator, self.operand
        if operator in COMBINING_OPERATORS:
            children = [child for child in operand if isinstance(child, StringFilter)]
            if operator == "$and":
                return all(child.matches(text) for child in children)
            return any(child.matches(text) for child in children)
        if operator in LIST_OPERATORS:
            found = text in operand
            return found if operator == "$in" else not found
        assert isinstance(operand, str)
        if operator == "$eq":
            return text == operand
        if operator == "$ne":
            return text != operand
        if operator in ("$gt", "$gte", "$lt", "$lte"):
            return _compare(operator, text, operand)
        case_insensitive = operator in ("$ilike", "$nilike")
        found = _like(operand, case_insensitive).fullmatch(text) is not None
        return found if operator in ("$like", "$ilike") else not found

    def to_document(self) -> dict[str, object]:
        """The JSON form, as sent on the wire and stored."""
        if self.operator in COMBINING_OPERATORS:
            return {
                self.operator: [
                    child.to_document() for child in self.operand if isinstance(child, StringFilter)
                ]
            }
        if self.operator in LIST_OPERATORS:
            return {self.operator: list(self.operand)}
        return {self.operator: self.operand}


def _compare(operator: str, text: str, operand: str) -> bool:
    if operator == "$gt":
        return text > operand
    if operator == "$gte":
        return text >= operand
    if operator == "$lt":
        return text < operand
    return text <= operand


def _like(pattern: str, case_insensitive: bool) -> re.Pattern[str]:
    """SQL LIKE: `%` any run of characters, `_` exactly one, everything else literal."""
    parts = []
    for character in pattern:
        if character == "%":
            parts.append(".*")
        elif character == "_":
            parts.append(".")
        else:
            parts.append(re.escape(character))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if case_insensitive else 0))


def parse_string_filter(document: object, *, field: str, depth: int = 1) -> StringFilter:
    """Validates the JSON form: exactly one known operator with a non-empty operand."""
    if not isinstance(document, Mapping):
        raise InvalidInput('a filter must be an object such as {"$eq": "gpt-4"}', field=field)
    given = {key: value for key, value in document.items() if value is not None}
    if len(given) != 1:
        raise InvalidInput(
            f"a filter must have exactly one operator, got {len(given)}: "
            f"{', '.join(sorted(map(str, given))) or 'none'}",
            field=field,
        )
    (operator, operand), *_ = given.items()
    if operator not in OPERATORS:
        known = ", ".join(sorted(OPERATORS))
        raise InvalidInput(f"unknown operator {operator!r}; use one of {known}", field=field)
    where = f"{field}.{operator}"
    if operator in VALUE_OPERATORS:
        return StringFilter(operator, operand_text(operand, where))
    if not isinstance(operand, Sequence) or isinstance(operand, str) or not operand:
        raise InvalidInput("must be a non-empty list", field=where)
    if len(operand) > MAX_ITEMS:
        raise InvalidInput(f"must have at most {MAX_ITEMS} items", field=where)
    if operator in LIST_OPERATORS:
        return StringFilter(
            operator, tuple(operand_text(item, f"{where}.{i}") for i, item in enumerate(operand))
        )
    if depth >= MAX_DEPTH:
        raise InvalidInput(f"filters may nest at most {MAX_DEPTH} levels deep", field=where)
    return StringFilter(
        operator,
        tuple(
            parse_string_filter(item, field=f"{where}.{i}", depth=depth + 1)
            for i, item in enumerate(operand)
        ),
    )


def operand_text(value: object, field: str) -> str:
    """A string operand: non-empty, as OpenMeter requires, and storable."""
    if not isinstance(value, str):
        raise InvalidInput("must be a string", field=field)
    if not value:
        raise InvalidInput("must not be empty", field=field)
    if not is_storable_text(value):
        raise InvalidInput(UNSTORABLE_TEXT, field=field)
    return value
