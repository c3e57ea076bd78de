"""Reading what people type into forms, and keeping their errors next to their fields.

Input names are the API's field names (`usagePeriod.interval`, `expiration.count`), so an
error a service raises about a wire field lands next to the input that holds it. Values that
cannot be read at all (a number that is not one, a time without a date) are refused here; every
rule about the values themselves stays in the domain and services, so the dashboard and the API
agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from starlette.datastructures import FormData

from allotment.domain.text import UNSTORABLE_TEXT, is_storable_text
from allotment.errors import AllotmentError

TEXT_LENGTH_MAX = 20_000
"""Longer than any field the services accept (a static config is the longest); longer input is
refused before it reaches them."""

# Thousands separators are accepted where they cannot mean anything else.
_GROUPED = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,4})?$")
_INTEGER = re.compile(r"^[+-]?\d{1,12}$")


@dataclass
class FormErrors:
    """Messages by input name; `general` for errors about no input on the form."""

    by_field: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        self.by_field.setdefault(name, []).append(message)

    def add_error(self, error: AllotmentError, *, inputs: Mapping[str, str] | None = None) -> None:
        """Every field error of a service error, each under the input that holds its field.

        `inputs` maps a wire field, or a field that nests others (`groupBy` for `groupBy.model`),
        to the input it is typed into when that input has another name.
        """
        if not error.errors:
            self.add("", error.message)
        for each in error.errors:
            self.add(_input_for(each.field, inputs or {}), each.message)

    def __bool__(self) -> bool:
        return bool(self.by_field)

    def of(self, name: str) -> list[str]:
        return self.by_field.get(name, [])

    def items(self) -> Iterable[tuple[str, list[str]]]:
        return self.by_field.items()


def _input_for(field: str, inputs: Mapping[str, str]) -> str:
    name = field
    while name:
        if name in inputs:
            return inputs[name]
        name = name.rpartition(".")[0]
    return field


class FormInput:
    """A submitted form: one text value per name (the last one sent), stripped."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)

    @classmethod
    def of(cls, form: FormData, errors: FormErrors) -> FormInput:
        values: dict[str, str] = {}
        for name, value in form.multi_items():
            if not isinstance(value, str):
                continue  # no form of the dashboard uploads files
            if not is_storable_text(name):
                errors.add("", f"a field name {UNSTORABLE_TEXT}")
                continue
            if not is_storable_text(value):
                errors.add(name, UNSTORABLE_TEXT)
                value = ""
            elif len(value) > TEXT_LENGTH_MAX:
                errors.add(name, f"must be at most {TEXT_LENGTH_MAX:,} characters")
                value = value[:TEXT_LENGTH_MAX]
            values[name] = value.strip()
        return cls(values)

    def text(self, name: str) -> str:
        return self.values.get(name, "")

    def optional(self, name: str) -> str | None:
        """The value, or None when the input was left empty (or not sent)."""
        return self.values.get(name) or None

    def checked(self, name: str) -> bool:
        return name in self.values and self.values[name] not in ("", "off", "false")


def parse_amount(text: str | None, name: str, errors: FormErrors) -> Decimal | None:
    """An exact decimal: 10000000, 10,000,000, 10_000_000 or 0.25; None when left empty."""
    if not text:
        return None
    cleaned = text.replace("_", "").replace(" ", "")
    if _GROUPED.match(cleaned):
        cleaned = cleaned.replace(",", "")
    if not _PLAIN_NUMBER.match(cleaned):
        errors.add(name, f"{text!r} is not a number; write it like 500000 or 500,000")
        return None
    try:
        return Decimal(cleaned)
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        errors.add(name, f"{text!r} is not a number")
        return None


def parse_integer(text: str | None, name: str, errors: FormErrors) -> int | None:
    if not text:
        return None
    if not _INTEGER.match(text):
        errors.add(name, f"{text!r} is not a whole number")
        return None
    return int(text)


def parse_time(text: str | None, name: str, errors: FormErrors) -> datetime | None:
    """A time from a datetime-local input (taken as UTC) or RFC 3339 with an offset."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        errors.add(name, f"{text!r} is not a time; use YYYY-MM-DD HH:MM (UTC)")
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        errors.add(name, "the time has no UTC equivalent (out of range)")
        return None


def parse_pairs(text: str | None, name: str, errors: FormErrors) -> dict[str, str]:
    """Lines of `key=value`; the first `=` separates key from value."""
    pairs: dict[str, str] = {}
    if not text:
        return pairs
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        key, separator, value = line.partition("=")
        if not separator or not key.strip():
            errors.add(name, f"expected key=value, got {line!r}")
            continue
        pairs[key.strip()] = value.strip()
    return pairs


def parse_list(text: str | None) -> list[str]:
    """Values separated by commas, spaces or lines."""
    if not text:
        return []
    return [part for part in re.split(r"[\s,]+", text) if part]
