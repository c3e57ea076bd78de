"""Bulk writes on PostgreSQL with COPY: the fastest way rows get into it.

Rows are written as COPY's text format in one buffer (building it is a few string joins; the
driver's per-value array dumping costs more than the database's own work), into a table or into
a session's temporary staging table that an `INSERT … SELECT … ON CONFLICT` then reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection


def _field(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return (
                value.replace("\\", "\\\\")
                .replace("\t", "\\t")
                .replace("\n", "\\n")
                .replace("\r", "\\r")
            )
        return value
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def copy_text(rows: Iterable[Sequence[Any]]) -> bytes:
    """`rows` in COPY's text format."""
    return "".join("\t".join(map(_field, row)) + "\n" for row in rows).encode()


def copy_into(
    connection: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """COPY `rows` into `table` inside the connection's current transaction."""
    buffer = copy_text(rows)
    if not buffer:
        return
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            copy.write(buffer)
    finally:
        cursor.close()


STAGING_TABLES = {
    # Events as one ingest sends them, in batch order, before the deduplicating insert.
    "staged_events": (
        "ordinal integer, id text, source text, specversion text, type text, subject text, "
        "time bigint, datacontenttype text, dataschema text, data jsonb, ingested_at bigint"
    ),
    "staged_distinct": "series_id bigint, level smallint, bucket bigint, value_key text",
}


def create_staging_tables(dbapi_connection: Any) -> None:
    """Create this database connection's temporary staging tables (each new connection, before
    first use). Their rows go at every commit; PostgreSQL skips that step in transactions that
    never touched them."""
    cursor = dbapi_connection.cursor()
    try:
        for name, columns in STAGING_TABLES.items():
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({columns}) ON COMMIT DELETE ROWS"
            )
    finally:
        cursor.close()
    dbapi_connection.commit()
