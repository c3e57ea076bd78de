"""Engine factory: one place that knows how each database is connected and tuned."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from allotment import json_exact
from allotment.storage.unit_of_work import UnitOfWork

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalise_url(url: str) -> str:
    """Accept the URLs people paste (`postgres://`, `postgresql://`) and pick psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _json_text(value: Any) -> str:
    # JSON columns keep numbers exactly as written (decimals, integers of any width).
    return json_exact.dumps(value).decode()


class Database:
    """A connected database; hands out units of work. Nothing connects until first use."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = normalise_url(url)
        self.engine = _create_engine(self.url, pool_size=pool_size, echo=echo)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def unit_of_work(self, *, write: bool = False) -> UnitOfWork:
        """One transaction. `write=True` takes SQLite's write lock up front (BEGIN IMMEDIATE),
        so two writers queue instead of failing when a read transaction tries to upgrade."""
        return UnitOfWork(self.engine, write=write)

    def single_statement(self) -> UnitOfWork:
        """A unit for a read that is one statement: no transaction around it (the statement
        is its own snapshot), so it costs exactly one round trip."""
        return UnitOfWork(self.engine, write=False, single_statement=True)

    def dispose(self) -> None:
        self.engine.dispose()


def _create_engine(url: str, *, pool_size: int, echo: bool) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _create_sqlite_engine(url, echo=echo)
    engine = create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        future=True,
        json_serializer=_json_text,
        json_deserializer=json_exact.loads_stored,
    )
    _ping_idle_connections(engine)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        from allotment.storage.copy import create_staging_tables

        create_staging_tables(dbapi_connection)

    return engine


IDLE_BEFORE_PING_SECONDS = 10.0
"""A pooled connection unused this long is pinged before use (a server restart or a dropped
TCP session shows there); busier ones are used as they are, sparing a round trip per request."""


def _ping_idle_connections(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("checked_in")
        if idle_since is None or time.monotonic() - idle_since < IDLE_BEFORE_PING_SECONDS:
            return
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            if not dbapi_connection.autocommit:
                dbapi_connection.rollback()
        except Exception as error:
            # The pool discards this connection and checks out (or opens) another.
            raise exc.DisconnectionError() from error


def _create_sqlite_engine(url: str, *, echo: bool) -> Engine:
    in_memory = make_url(url).database in (None, "", ":memory:")
    options: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if in_memory:
        # Every connection to ":memory:" is a new empty database; tests use files instead.
        options["poolclass"] = NullPool
    engine = create_engine(
        url,
        echo=echo,
        json_serializer=_json_text,
        json_deserializer=json_exact.loads_stored,
        **options,
    )

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
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()
        from allotment.storage.sqlite_functions import register

        register(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode is not None:  # None: a single-statement unit, which runs without BEGIN
            connection.exec_driver_sql(f"BEGIN {mode}")

    return engine
