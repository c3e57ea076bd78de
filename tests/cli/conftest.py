"""Run the `allotment` command in-process against the test database and clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from click.testing import Result
from typer.testing import CliRunner

from allotment.cli.main import app
from allotment.cli.state import STATE
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
