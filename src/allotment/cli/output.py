"""How the CLI talks to people: tables by default, exact JSON for scripts, errors in plain words.

Every command prints through these helpers, so a value reads the same everywhere: amounts exact
and grouped, times RFC 3339 in UTC as the API writes them, ids and times never cut in a table.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from allotment.domain.periods import Period, Recurrence
from allotment.domain.time import rfc3339
from allotment.errors import AllotmentError

console = Console()
error_console = Console(stderr=True)


# -- tables -----------------------------------------------------------------------------------


# A prose cell may break a word longer than this (a long JSON config) to keep the table whole.
_PROSE_WORD_MAX = 12


def print_rows(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    prose: Collection[str] = (),
) -> None:
    """A table of records, without the columns no record has a value in.

    Amounts, times and ids are never cut short or split over lines: each such column is as wide
    as its widest cell. Only the `prose` columns wrap, and share what width is left. When the
    terminal is too narrow even for that, each record is shown as its own label/value table.
    """
    cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
    shown = [i for i in range(len(columns)) if not cells or any(row[i] for row in cells)]
    header_word = {i: max(len(word) for word in columns[i].split()) for i in shown}
    longest = {i: max(_line_lengths(row[i] for row in cells), default=0) for i in shown}
    minimum = {}
    for i in shown:
        if columns[i] in prose:
            word = max((len(w) for row in cells for w in row[i].split()), default=0)
            minimum[i] = max(min(word, _PROSE_WORD_MAX), header_word[i])
        else:
            minimum[i] = max(longest[i], header_word[i])
        longest[i] = max(longest[i], len(columns[i]))
    # Borders and padding take three characters a column, plus one.
    spare = console.width - (3 * len(shown) + 1) - sum(minimum.values())
    if spare < 0:
        for number, row in enumerate(cells, start=1):
            label = f"{title} ({number} of {len(cells)})"
            print_fields(label, [[columns[i], row[i]] for i in shown])
        return
    widths = dict(minimum)
    growing = [i for i in shown if columns[i] in prose or widths[i] < longest[i]]
    while spare > 0 and growing:
        growing = [i for i in growing if widths[i] < longest[i]]
        for i in growing[:spare]:
            widths[i] += 1
            spare -= 1
    table = Table(title=title)
    for i in shown:
        table.add_column(columns[i], width=widths[i], overflow="fold")
    for row in cells:
        table.add_row(*(row[i] for i in shown))
    console.print(table)


def _line_lengths(texts: Iterable[str]) -> list[int]:
    return [len(line) for text in texts for line in text.splitlines() or [""]]


def print_fields(title: str, rows: Sequence[Sequence[Any]]) -> None:
    """One record as a two-column table: a label, then its value."""
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for label, value in rows:
        table.add_row(str(label), "" if value is None else str(value))
    console.print(table)


def time_cell(value: datetime | None) -> str:
    """A time for a table: RFC 3339 in UTC, to the second (the JSON keeps every digit)."""
    return time_text(None if value is None else value.replace(microsecond=0)) or ""


def time_text(value: datetime | None) -> str | None:
    """The API's form of a time (`rfc3339`), None for none."""
    return None if value is None else rfc3339(value)


def amount_text(value: Decimal | None) -> str:
    """`10,000,000` or `1,234.5`: grouped for reading, every digit kept."""
    if value is None:
        return ""
    return f"{value:,f}"


def period_text(period: Period | None) -> str:
    if period is None:
        return ""
    return f"{time_cell(period.start)} → {time_cell(period.end)}"


def recurrence_text(recurrence: Recurrence | None) -> str:
    if recurrence is None:
        return ""
    return f"{recurrence.interval.api_name} from {time_cell(recurrence.anchor)}"


# -- exact JSON -------------------------------------------------------------------------------


def exact_json(document: object) -> str:
    """`json.dumps`, with each Decimal written as a JSON number with all its digits.

    A Decimal first travels as a string between two copies of a fresh random mark; the marks and
    the quotes around them are then removed. Stored text cannot know the mark in advance.
    """
    mark = uuid.uuid4().hex

    def marked(value: object) -> str:
        if isinstance(value, Decimal):
            return f"{mark}{value:f}{mark}"
        raise TypeError(f"cannot write {type(value).__name__} as JSON")

    text = json.dumps(document, indent=2, ensure_ascii=False, default=marked)
    return re.sub(f'"{mark}([^"]*){mark}"', r"\1", text)


def without_unset(document: dict[str, Any]) -> dict[str, Any]:
    """A document as the API writes it: fields without a value are left out."""
    return {name: value for name, value in document.items() if value is not None}


def print_exact_json(document: object) -> None:
    sys.stdout.write(exact_json(document) + "\n")


# -- one record or a list, as a table or as JSON -----------------------------------------------


def print_record(
    title: str, rows: Sequence[Sequence[Any]], document: object, as_json: bool
) -> None:
    """One record: its JSON document with `--json`, else its label/value table."""
    if as_json:
        print_exact_json(document)
    else:
        print_fields(title, rows)


def print_records(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    documents: Sequence[object],
    as_json: bool,
    *,
    prose: Collection[str] = (),
) -> None:
    """A list: a JSON array of the documents with `--json`, else one table row a record."""
    if as_json:
        print_exact_json(list(documents))
    else:
        print_rows(title, columns, rows, prose=prose)


# -- errors -----------------------------------------------------------------------------------


@contextmanager
def plain_errors() -> Iterator[None]:
    """Turn service errors into one readable line on stderr and exit code 1."""
    try:
        yield
    except AllotmentError as error:
        kind = type(error).__name__
        error_console.print(f"[bold red]Error[/] ({_KIND.get(kind, kind)}): {error.message}")
        for field_error in error.errors:
            if field_error.message != error.message:
                error_console.print(f"  - {field_error.field}: {field_error.message}")
        raise typer.Exit(code=1) from None


_KIND = {
    "InvalidInput": "invalid input",
    "NotFound": "not found",
    "Conflict": "conflict",
    "PreconditionFailed": "precondition failed",
    "Unauthenticated": "unauthenticated",
    "Forbidden": "forbidden",
}
