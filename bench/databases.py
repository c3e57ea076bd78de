"""Benchmark databases: where they live, how they are created, copied, dropped and connected to
directly (for the raw references). PostgreSQL databases are named `allotment_bench_*` on the
shared server; SQLite files live under bench/cache/."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

PG_HOST = os.environ.get("BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("BENCH_PG_USER", "postgres")
PG_MAINTENANCE_DB = os.environ.get("BENCH_PG_DB", "postgres")
PREFIX = "allotment_bench_"


@dataclass(frozen=True)
class Store:
    """One benchmark database: a PostgreSQL database name or a SQLite file."""

    kind: str  # "sqlite" | "postgres"
    name: str
    path: Path | None = None

    @property
    def url(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.path}"
        return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.name}"

    def connect(self) -> Any:
        """A raw DB-API connection (sqlite3 or psycopg), autocommit off."""
        if self.kind == "sqlite":
            connection = sqlite3.connect(str(self.path), isolation_level=None)
            # The same durability as the server's own connections (storage/database.py).
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA busy_timeout=30000")
            return connection
        return psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=self.name, autocommit=False
        )


def pg_admin() -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_MAINTENANCE_DB, autocommit=True
    )


def pg_available() -> str | None:
    try:
        with pg_admin() as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        return str(error).strip()
    return None


def store(kind: str, name: str, directory: Path) -> Store:
    if kind == "sqlite":
        return Store(kind, name, directory / f"{name}.db")
    return Store(kind, PREFIX + name)


def exists(s: Store) -> bool:
    if s.kind == "sqlite":
        return s.path is not None and s.path.exists()
    with pg_admin() as admin:
        return (
            admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (s.name,)).fetchone()
            is not None
        )


def drop(s: Store) -> None:
    if s.kind == "sqlite":
        assert s.path is not None
        for suffix in ("", "-wal", "-shm"):
            Path(f"{s.path}{suffix}").unlink(missing_ok=True)
        return
    if not s.name.startswith(PREFIX):
        raise ValueError(f"refusing to drop {s.name}: not a benchmark database")
    with pg_admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{s.name}" WITH (FORCE)')


def create_empty(s: Store) -> None:
    drop(s)
    if s.kind == "sqlite":
        assert s.path is not None
        s.path.parent.mkdir(parents=True, exist_ok=True)
        return
    with pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{s.name}"')


def finalize(s: Store) -> None:
    """After a bulk load: PostgreSQL here runs with autovacuum off, so do what it would have
    done (statistics, visibility map); SQLite: fold the WAL into the file so it can be copied."""
    if s.kind == "sqlite":
        connection = sqlite3.connect(str(s.path), isolation_level=None)
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.close()
        return
    connection = psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=s.name, autocommit=True
    )
    with connection:
        connection.execute("VACUUM ANALYZE")


def analyze(s: Store) -> None:
    """PostgreSQL: refresh the planner's statistics (what autovacuum does on its own)."""
    connection = psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=s.name, autocommit=True
    )
    with connection:
        connection.execute("ANALYZE")


def copy(source: Store, target: Store) -> float:
    """Copy a whole database (the data set template to a run's working copy); returns seconds."""
    started = time.perf_counter()
    drop(target)
    if source.kind == "sqlite":
        assert source.path is not None and target.path is not None
        finalize(source)
        shutil.copyfile(source.path, target.path)
    else:
        for attempt in range(20):
            try:
                with pg_admin() as admin:
                    # FILE_COPY: a file-level copy, much faster than WAL-logging gigabytes.
                    admin.execute(
                        f'CREATE DATABASE "{target.name}" TEMPLATE "{source.name}"'
                        " STRATEGY FILE_COPY"
                    )
                break
            except psycopg.errors.ObjectInUse:
                # A process that just closed its connection may not have left the server yet.
                if attempt == 19:
                    raise
                time.sleep(0.5)
    return time.perf_counter() - started


def list_pg(prefix: str) -> list[str]:
    with pg_admin() as admin:
        rows = admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",)
        ).fetchall()
    return [row[0] for row in rows]


@contextmanager
def connected(s: Store) -> Iterator[Any]:
    connection = s.connect()
    try:
        yield connection
    finally:
        connection.close()
