"""How the CLI talks to people: rich tables by default, JSON for scripts, errors in plain words."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from allotment.errors import AllotmentError

console = Console()
error_console = Console(stderr=True)

T = TypeVar("T")


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(table)


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


def run_command(action: Callable[[], T]) -> T:
    with plain_errors():
        return action()
