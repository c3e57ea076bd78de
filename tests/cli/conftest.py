"""Run the `allotment` command in-process against the test database and clock, the API beside
it to compare shapes with, and the checks CLI tests share on a command's result."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from allotment.api.app import create_app
from allotment.cli.main import app
from allotment.cli.state import STATE
from allotment.services import api_keys
from allotment.services.context import ServiceContext
from allotment.settings import Settings

# Wide enough that rich never wraps an id or a key inside a table cell.
WIDE = {"COLUMNS": "200"}


@dataclass
class Cli:
    runner: CliRunner

    def __call__(self, *arguments: str) -> Result:
        return self.runner.invoke(app, list(arguments), env=WIDE)


def reset_state(context: ServiceContext | None = None) -> None:
    """Forget the settings and context of an earlier invocation (STATE is process-wide)."""
    STATE.settings = Settings()
    STATE.__dict__.pop("context", None)
    if context is not None:
        STATE.__dict__["context"] = context


@pytest.fixture
def cli(context: ServiceContext) -> Iterator[Cli]:
    """Commands use the test database and the settable clock of `context`."""
    reset_state(context)
    yield Cli(CliRunner())
    reset_state()


@pytest.fixture
def api(context: ServiceContext) -> Iterator[TestClient]:
    """The HTTP API over the same database and clock, to compare shapes with."""
    _key, secret = api_keys.create_key(context, "admin", "cli tests")
    headers = {"Authorization": f"Bearer {secret}"}
    with TestClient(create_app(context=context), headers=headers) as client:
        yield client


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    assert result.stderr == "" or "Error" not in result.stderr
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


def table_rows(table: str) -> list[list[str]]:
    """The rows of a rich table, a cell's continuation lines joined to it with a space."""
    rows: list[list[str]] = []
    for line in table.splitlines():
        line = line.strip()
        if not line.startswith("│"):
            continue
        cells = [cell.strip() for cell in line[1:-1].split("│")]
        if cells[0] or not rows:
            rows.append(cells)
        else:
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
    return rows


def row(table: str, first_cell: str) -> list[str]:
    """The cells of the table row whose first cell is `first_cell`."""
    for cells in table_rows(table):
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in\n{table}")


def error(result: Result, kind: str, *words: str) -> None:
    """A plain message on stderr, nothing on stdout, exit code 1."""
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert f"Error ({kind}):" in result.stderr, result.stderr
    for text in words:
        assert text in result.stderr, result.stderr
