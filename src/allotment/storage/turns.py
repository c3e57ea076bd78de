"""Turns: one holder at a time across every process using a database, never waited for.

For work that any process may do but one at a time is enough (two notification evaluators
reading the same queue would each read every value in it). Whoever asks while another holds the
turn is told so at once and does something else. A process that dies lets go: SQLite's turn is
an advisory lock on a file beside the database (`<database>-<name>`), PostgreSQL's a session
advisory lock on a connection of the pool.
"""

from __future__ import annotations

import fcntl
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

from allotment.storage.deadlines import Deadlines


def _key(name: str) -> int:
    """A stable advisory lock key per name (bigint), apart from storage/rollups.py's."""
    return 0x414C_0000_0000 + zlib.crc32(name.encode())


@contextmanager
def sqlite_turn(database_path: str | None, name: str) -> Iterator[bool]:
    if database_path is None:  # in memory: one process only
        yield True
        return
    fd = os.open(f"{database_path}-{name}", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def postgres_turn(
    engine: Engine, name: str, deadlines: Deadlines, seconds: float
) -> Iterator[bool]:
    key = _key(name)
    with engine.connect() as connection:
        # The backstop for a server that stopped answering, as every unit has (deadlines.py).
        raw = connection.connection.dbapi_connection
        with deadlines.watching(raw, seconds):
            held = bool(
                connection.exec_driver_sql("SELECT pg_try_advisory_lock(%s)", (key,)).scalar()
            )
            # The lock is the session's: no transaction stays open (and holds back vacuum).
            connection.commit()
        try:
            yield held
        finally:
            if held:
                with deadlines.watching(raw, seconds):
                    connection.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (key,))
                    connection.commit()
