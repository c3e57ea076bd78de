"""A driver error that means "the database cannot serve" leaving a unit of work is Unavailable
(the API's 503), also when it comes from a driver call SQLAlchemy did not run (COPY): found by
the soak test, where such an error was a 500."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from allotment.errors import Unavailable
from allotment.storage import Database


def _driver_error(database: Database) -> Exception:
    if database.dialect == "sqlite":
        error = sqlite3.OperationalError("database is locked")
        error.sqlite_errorname = "SQLITE_BUSY"  # type: ignore[attr-defined]
        return error
    return psycopg.OperationalError("consuming input failed: server closed the connection")


def test_a_raw_driver_error_leaving_a_unit_of_work_is_unavailable(database: Database) -> None:
    with pytest.raises(Unavailable) as raised, database.unit_of_work(write=True):
        raise _driver_error(database)
    assert raised.value.reason in ("locked", "connection")
    assert raised.value.retry_after >= 1


def test_other_errors_pass_through_unchanged(database: Database) -> None:
    with pytest.raises(ValueError, match="not about availability"), database.unit_of_work():
        raise ValueError("not about availability")
