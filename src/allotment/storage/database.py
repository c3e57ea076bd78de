"""Engine factory: one place that knows how each database is connected, tuned and bounded.

Failing fast when the database cannot serve (every bound below is a DatabaseOptions field):
- connecting gives up after `connect_timeout`, waiting for a pooled connection after
  `pool_timeout`; PostgreSQL cancels a statement after `statement_timeout` (and a lock wait or an
  idle transaction after as long), SQLite gives up waiting for the write lock after
  `sqlite_busy_timeout`;
- a PostgreSQL server that stops answering altogether (frozen, or cut off) answers no timeout of
  its own, so `deadlines.Deadlines` shuts the socket of a transaction still running a grace
  period after `statement_timeout`, and of an idle connection's ping that takes longer than
  `connect_timeout`;
- every driver error that means "the database cannot serve now" (down, hung, locked, full,
  read-only) becomes `errors.Unavailable` here, which the API answers with 503 and Retry-After.
  Other driver errors pass through unchanged.
Statement parameters never appear in an error's text (`hide_parameters`), so what a client sent
cannot reach a log that way.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc, text
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.pool import NullPool

from allotment import json_exact
from allotment.errors import Unavailable
from allotment.storage.change_board import ChangeBoard, board_wanted, open_board
from allotment.storage.deadlines import Deadlines
from allotment.storage.sqlite_writers import WriterQueue
from allotment.storage.turns import postgres_turn, sqlite_turn
from allotment.storage.unit_of_work import UnitOfWork

# A SQLite database whose disk has less free space than this is not ready.
SQLITE_FREE_BYTES_MIN = 16 * 1024 * 1024
# Readiness reports a write that failed for want of space or permission this long after.
WRITE_FAILURE_MEMORY_SECONDS = 30.0


def _json_text(value: Any) -> str:
    # JSON columns keep numbers exactly as written (decimals, integers of any width).
    return json_exact.dumps(value).decode()


@dataclass(frozen=True)
class DatabaseOptions:
    pool_size: int = 10
    connect_timeout: float = 3.0
    statement_timeout: float = 10.0
    pool_timeout: float = 3.0
    sqlite_busy_timeout: float = 5.0
    retry_after: int = 2
    change_board: str = "auto"
    """auto, on or off: storage/change_board.py."""


def normalise_url(url: str) -> str:
    """Accept the URLs people paste (`postgres://`, `postgresql://`) and pick psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


class Database:
    """A connected database; hands out units of work. Nothing connects until first use."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int | None = None,
        options: DatabaseOptions | None = None,
        echo: bool = False,
    ) -> None:
        options = options or DatabaseOptions()
        if pool_size is not None:
            options = DatabaseOptions(**{**options.__dict__, "pool_size": pool_size})
        self.url = normalise_url(url)
        self.options = options
        self.deadlines = Deadlines()
        # (monotonic time, reason) of the last write refused for want of space or permission.
        self.last_write_refusal: tuple[float, str] | None = None
        self.engine = _create_engine(self, echo=echo)
        path = make_url(self.url).database
        self._path = (
            path if self.dialect == "sqlite" and path not in (None, "", ":memory:") else None
        )
        self._writers = (
            WriterQueue(self._path, self.options.sqlite_busy_timeout) if self._path else None
        )
        self._board_wanted = board_wanted(options.change_board, self.engine)
        self._board: ChangeBoard | None = None
        self._board_lock = threading.Lock()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def opened_board(self) -> ChangeBoard | None:
        """The change board if a call to `board` has opened it already (never blocks)."""
        return self._board

    def board(self, connection: Connection | None = None) -> ChangeBoard | None:
        """This database's change board on this host, or None when it is off. Opened on first
        use, through `connection` if given (a unit of work's own, so no second connection
        waits on its locks); raises when the database cannot be read, so a writer never
        commits without marking it."""
        if not self._board_wanted:
            return None
        if self._board is None:
            with self._board_lock:
                if self._board is None:
                    if connection is not None:
                        board = open_board(connection, self._path)
                    else:
                        with self.engine.connect() as own:
                            board = open_board(own, self._path)
                    if board is None:
                        return None
                    self._board = board
        return self._board

    def unit_of_work(self, *, write: bool = False) -> UnitOfWork:
        """One transaction. `write=True` takes SQLite's write lock up front (BEGIN IMMEDIATE),
        so two writers queue instead of failing when a read transaction tries to upgrade."""
        return UnitOfWork(
            self.engine,
            write=write,
            deadlines=self.deadlines if self.dialect == "postgresql" else None,
            transaction_seconds=self.options.statement_timeout + 2.0,
            unavailable=self.unavailable,
            writers=self._writers,
            board=self.board,
        )

    @contextmanager
    def turn(self, name: str) -> Iterator[bool]:
        """Whether this caller holds the turn `name` for the block, across every process of
        the database; False at once when another does (storage/turns.py)."""
        if self.dialect == "sqlite":
            with sqlite_turn(self._path, name) as held:
                yield held
        else:
            seconds = self.options.statement_timeout + 2.0
            with postgres_turn(self.engine, name, self.deadlines, seconds) as held:
                yield held

    def unavailable(self, error: BaseException) -> Unavailable | None:
        """The Unavailable an error means, or None when it is not about availability."""
        reason = _unavailable_reason(error)
        if reason is None:
            return None
        if reason in ("disk_full", "read_only"):
            self.last_write_refusal = (time.monotonic(), reason)
        retry_after = 1 if reason == "locked" else self.options.retry_after
        return Unavailable(
            _MESSAGES.get(reason, _MESSAGES["connection"]), reason=reason, retry_after=retry_after
        )

    def single_statement(self) -> UnitOfWork:
        """A unit for a read that is one statement: no transaction around it (the statement
        is its own snapshot), so it costs exactly one round trip."""
        return UnitOfWork(
            self.engine,
            write=False,
            single_statement=True,
            deadlines=self.deadlines if self.dialect == "postgresql" else None,
            transaction_seconds=self.options.statement_timeout + 2.0,
            unavailable=self.unavailable,
        )

    def pool_use(self) -> dict[str, int]:
        pool: Any = self.engine.pool
        if not hasattr(pool, "checkedout"):
            return {}
        return {
            "checked_out": pool.checkedout(),
            "idle": pool.checkedin(),
            "overflow": max(0, pool.overflow()),
            "size": pool.size(),
        }

    def readiness_problem(self) -> str | None:
        """None when the database answers and takes writes, else a short reason. Blocking: the
        caller bounds how long it waits."""
        refusal = self.last_write_refusal
        if refusal is not None and time.monotonic() - refusal[0] < WRITE_FAILURE_MEMORY_SECONDS:
            return f"writes are failing: {_MESSAGES[refusal[1]].split(';')[0]}"
        try:
            with self.engine.connect() as connection:
                if self.dialect == "postgresql":
                    row = connection.execute(
                        text(
                            "SELECT pg_is_in_recovery(), "
                            "current_setting('default_transaction_read_only')"
                        )
                    ).one()
                    if row[0] or row[1] == "on":
                        return "the database is read-only"
                else:
                    connection.execute(text("SELECT 1"))
        except Unavailable as error:
            return f"database unreachable: {error.reason}"
        except Exception as error:  # any driver error means "not reachable"
            return f"database unreachable: {type(error).__name__}"
        return self._sqlite_file_problem() if self.dialect == "sqlite" else None

    def _sqlite_file_problem(self) -> str | None:
        name = make_url(self.url).database
        if not name or name == ":memory:":
            return None
        path = Path(name).resolve()
        if path.exists() and not _writable(path):
            return "the database file is read-only"
        if shutil.disk_usage(path.parent).free < SQLITE_FREE_BYTES_MIN:
            return "the database's disk is nearly full"
        return None

    def dispose(self) -> None:
        self.engine.dispose()
        self.deadlines.stop()
        if self._writers is not None:
            self._writers.close()


def _writable(path: Path) -> bool:
    import os

    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


_MESSAGES = {
    "connection": "the database is unreachable; try again shortly",
    "timeout": "the database did not answer in time; try again shortly",
    "statement_timeout": "the database did not answer in time; try again shortly",
    "lock_timeout": "the data is locked by another request; try again shortly",
    "locked": "the database is busy with another write; try again shortly",
    "disk_full": "the database has no space left; try again later",
    "read_only": "the database is read-only; try again later",
    "out_of_memory": "the database is out of memory; try again shortly",
    "too_many_connections": "the database has no free connections; try again shortly",
    "shutting_down": "the database is restarting; try again shortly",
    "io_error": "the database cannot read or write its files; try again later",
    "pool_timeout": "every database connection is busy; try again shortly",
}

_POSTGRES_STATES = {
    "57014": "statement_timeout",
    "55P03": "lock_timeout",
    "53100": "disk_full",
    "53200": "out_of_memory",
    "53300": "too_many_connections",
    "25006": "read_only",
    "57P01": "shutting_down",
    "57P02": "shutting_down",
    "57P03": "shutting_down",
    "58030": "io_error",
}

_SQLITE_NAMES = {
    "SQLITE_BUSY": "locked",
    "SQLITE_LOCKED": "locked",
    "SQLITE_FULL": "disk_full",
    "SQLITE_READONLY": "read_only",
    "SQLITE_IOERR": "io_error",
    "SQLITE_CANTOPEN": "io_error",
    "SQLITE_INTERRUPT": "timeout",
}


def _unavailable_reason(error: BaseException) -> str | None:
    """What a driver error (or SQLAlchemy's wrapper of one) says about availability."""
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(error, PoolTimeout):
        return "pool_timeout"
    original = error.orig if isinstance(error, DBAPIError) else error
    if isinstance(original, sqlite3.Error):
        name = getattr(original, "sqlite_errorname", "") or ""
        base = "_".join(name.split("_")[:2])
        return _SQLITE_NAMES.get(base)
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return None
    if isinstance(original, psycopg.Error):
        state = original.sqlstate or ""
        if state in _POSTGRES_STATES:
            return _POSTGRES_STATES[state]
        if state.startswith("08") or (not state and isinstance(original, psycopg.OperationalError)):
            return "connection"
    return None


def _create_engine(database: Database, *, echo: bool) -> Engine:
    parsed = make_url(database.url)
    if parsed.get_backend_name() == "sqlite":
        engine = _create_sqlite_engine(database, echo=echo)
    else:
        engine = _create_postgres_engine(database, echo=echo)

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> BaseException | None:
        # A pre-ping's failure is SQLAlchemy's to handle (it reconnects); replacing it would stop
        # that.
        if context.is_pre_ping:
            return None
        return database.unavailable(context.sqlalchemy_exception or context.original_exception)

    return engine


def _cache_long_statements() -> None:
    """psycopg rewrites each statement's `%(name)s` placeholders to `$n` on every execution,
    caching the rewrite only for statements under 4 KB with at most 50 parameters. The
    check-access read is longer (5 KB for one entitlement, 100 KB and 1,000 parameters for a
    customer of 100 features), so each read paid the rewrite again: 1 ms and 13 ms. Raising
    the bounds keeps those rewrites in psycopg's own cache (128 statements, least recently used
    dropped). The bounds are module attributes of psycopg 3 (see psycopg discussion #628)."""
    try:
        from psycopg import _queries
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return
    if hasattr(_queries, "MAX_CACHED_STATEMENT_LENGTH"):
        _queries.MAX_CACHED_STATEMENT_LENGTH = max(_queries.MAX_CACHED_STATEMENT_LENGTH, 256 * 1024)
    if hasattr(_queries, "MAX_CACHED_STATEMENT_PARAMS"):
        _queries.MAX_CACHED_STATEMENT_PARAMS = max(_queries.MAX_CACHED_STATEMENT_PARAMS, 2_000)


def _create_postgres_engine(database: Database, *, echo: bool) -> Engine:
    _cache_long_statements()
    options = database.options
    statement_ms = int(options.statement_timeout * 1000)
    engine = create_engine(
        database.url,
        echo=echo,
        hide_parameters=True,
        pool_size=options.pool_size,
        max_overflow=options.pool_size,
        pool_timeout=options.pool_timeout,
        connect_args={
            "connect_timeout": max(1, round(options.connect_timeout)),
            "options": (
                f"-c statement_timeout={statement_ms} -c lock_timeout={statement_ms} "
                f"-c idle_in_transaction_session_timeout={statement_ms * 3} "
                # psycopg prepares a statement run five times on a connection; PostgreSQL then
                # kept planning the check-access read anew on every run (a custom plan: about
                # 1 ms, more than executing it), as its estimated generic cost looked higher.
                # Our repeated statements look rows up by key, so the generic plan is the one
                # a custom plan would choose anyway.
                "-c plan_cache_mode=force_generic_plan"
            ),
            # A peer that vanished (cable cut, host gone) is noticed by the kernel.
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            "tcp_user_timeout": int((options.statement_timeout + 5) * 1000),
        },
        json_serializer=_json_text,
        json_deserializer=json_exact.loads_stored,
    )
    _ping_idle_connections(engine, database.deadlines, options.connect_timeout)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        from allotment.storage.copy import create_staging_tables

        create_staging_tables(dbapi_connection)

    return engine


IDLE_BEFORE_PING_SECONDS = 10.0
"""A pooled connection unused this long is pinged before use (a server restart or a dropped
TCP session shows there); busier ones are used as they are, sparing a round trip per request."""


def _ping_idle_connections(engine: Engine, deadlines: Deadlines, ping_seconds: float) -> None:
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("checked_in")
        if idle_since is None or time.monotonic() - idle_since < IDLE_BEFORE_PING_SECONDS:
            return
        try:
            # A frozen server would leave the ping waiting forever: it gets connect_timeout.
            with deadlines.watching(dbapi_connection, ping_seconds):
                cursor = dbapi_connection.cursor()
                cursor.execute("SELECT 1")
                cursor.close()
                if not dbapi_connection.autocommit:
                    dbapi_connection.rollback()
        except Exception as error:
            # The pool discards this connection and checks out (or opens) another.
            raise exc.DisconnectionError() from error


def _create_sqlite_engine(database: Database, *, echo: bool) -> Engine:
    url = database.url
    in_memory = make_url(url).database in (None, "", ":memory:")
    options: dict[str, Any] = {
        "connect_args": {"check_same_thread": False},
        "hide_parameters": True,
        "json_serializer": _json_text,
        "json_deserializer": json_exact.loads_stored,
    }
    if in_memory:
        # Every connection to ":memory:" is a new empty database; tests use files instead.
        options["poolclass"] = NullPool
    engine = create_engine(url, echo=echo, **options)
    busy_timeout_ms = int(database.options.sqlite_busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so BEGIN is ours (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before it returns, so an acknowledged ingest survives a
        # power cut too (NORMAL in WAL mode only survives a crash of the process).
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # A larger page cache than the 2 MiB default: roll-up writes touch pages all over the
        # keys of a busy day (pages are taken as needed, not up front). Not larger: each of a
        # worker's pooled connections (up to 2 x pool_size) keeps its own, and 32 MiB each took
        # a worker under load past 450 MB; the OS page cache, shared, holds the rest.
        cursor.execute("PRAGMA cache_size=-8192")
        # A writer waits this long for the write lock, then the request is a 503.
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.close()
        from allotment.storage.sqlite_functions import register

        register(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode is not None:  # None: a single-statement unit, which runs without BEGIN
            connection.exec_driver_sql(f"BEGIN {mode}")

    return engine
