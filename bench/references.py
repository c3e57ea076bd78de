"""The raw references of B1 and B4, straight into (and out of) the same database with the
plainest fast path, bypassing Allotment entirely.

B1 writes the rows of the benchmark's own events into the real `events` table (its indexes,
its size), under another source so they do not collide with the HTTP pass and another event type
so that no meter counts them (nothing derived from events can go stale). Only the database work
is timed: the rows are prepared in memory first.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from bench.databases import Store, connected

REFERENCE_TYPE = "bench_ref"  # the same length as "prompt" plus three: no meter reads it
_COLUMNS = ("id", "source", "specversion", "type", "subject", "time", "data", "ingested_at")


@dataclass(frozen=True)
class RawEvent:
    id: str
    subject: str
    time: datetime
    data: dict[str, Any]


def _micros(instant: datetime) -> int:
    delta = instant - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _integer_times(s: Store) -> bool:
    """Whether `events.time` holds integer microseconds (today's schema) or a timestamp."""
    with connected(s) as connection:
        if s.kind == "sqlite":
            types = {
                row[1]: row[2].upper() for row in connection.execute("PRAGMA table_info(events)")
            }
        else:
            types = {
                row[0]: row[1].upper()
                for row in connection.execute(
                    "SELECT column_name, data_type FROM information_schema.columns"
                    " WHERE table_name = 'events'"
                )
            }
    if "time" not in types:
        raise RuntimeError(f"events has no time column: {sorted(types)}")
    return "INT" in types["time"]


def rows(s: Store, events: Sequence[RawEvent], source: str) -> list[tuple[Any, ...]]:
    integer = _integer_times(s)
    ingested = datetime.now(UTC)
    encode = _micros if integer else (lambda t: t)
    return [
        (
            e.id,
            source,
            "1.0",
            REFERENCE_TYPE,
            e.subject,
            encode(e.time),
            orjson.dumps(e.data).decode(),
            encode(ingested),
        )
        for e in events
    ]


@dataclass(frozen=True)
class Timed:
    seconds: float
    rows_changed: int


def insert(s: Store, prepared: list[tuple[Any, ...]], *, dedupe: bool) -> Timed:
    """One transaction: PostgreSQL COPY into a staging table then INSERT ... ON CONFLICT DO
    NOTHING (or a plain COPY into events); SQLite one executemany INSERT OR IGNORE (or plain
    INSERT). Timed from BEGIN to the end of COMMIT."""
    columns = ", ".join(_COLUMNS)
    with connected(s) as connection:
        if s.kind == "sqlite":
            verb = "INSERT OR IGNORE" if dedupe else "INSERT"
            marks = ", ".join("?" for _ in _COLUMNS)
            sql = f"{verb} INTO events ({columns}) VALUES ({marks})"
            started = time.perf_counter()
            connection.execute("BEGIN IMMEDIATE")
            before = connection.total_changes
            connection.executemany(sql, prepared)
            changed = connection.total_changes - before
            connection.execute("COMMIT")
            return Timed(time.perf_counter() - started, changed)
        payload = _copy_text(prepared)
        started = time.perf_counter()
        with connection.cursor() as cursor:
            if dedupe:
                cursor.execute(
                    "CREATE TEMP TABLE bench_staging (LIKE events INCLUDING DEFAULTS)"
                    " ON COMMIT DROP"
                )
                target = "bench_staging"
            else:
                target = "events"
            with cursor.copy(f"COPY {target} ({columns}) FROM STDIN") as copy:
                copy.write(payload)
            changed = len(prepared)
            if dedupe:
                cursor.execute(
                    f"INSERT INTO events ({columns}) SELECT {columns} FROM bench_staging"
                    " ON CONFLICT (source, id) DO NOTHING"
                )
                changed = cursor.rowcount
        connection.commit()
        return Timed(time.perf_counter() - started, changed)


def _copy_text(prepared: list[tuple[Any, ...]]) -> bytes:
    out = io.StringIO()
    for row in prepared:
        out.write("\t".join(_copy_field(value) for value in row))
        out.write("\n")
    return out.getvalue().encode()


def _copy_field(value: Any) -> str:
    if value is None:
        return "\\N"
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def count_source(s: Store, source: str) -> int:
    with connected(s) as connection:
        mark = "?" if s.kind == "sqlite" else "%s"
        row = connection.execute(
            f"SELECT count(*) FROM events WHERE source = {mark}", (source,)
        ).fetchone()
        if s.kind == "postgres":
            connection.rollback()
        return int(row[0])


def group_by(
    s: Store, start: datetime, end: datetime, *, by_model: bool
) -> tuple[float, dict[tuple[str, ...], int]]:
    """B4's reference: SUM of `$.tokens` of `prompt` events in [start, end) per subject (and
    model), by a plain GROUP BY over the raw events table. Returns (seconds, sums)."""
    integer = _integer_times(s)
    bounds: tuple[Any, Any] = (_micros(start), _micros(end)) if integer else (start, end)
    with connected(s) as connection:
        if s.kind == "sqlite":
            model = ", json_extract(data, '$.model')" if by_model else ""
            sql = (
                f"SELECT subject{model}, SUM(json_extract(data, '$.tokens')) FROM events"
                f" WHERE type = 'prompt' AND time >= ? AND time < ? GROUP BY subject{model}"
            )
        else:
            model = ", data->>'model'" if by_model else ""
            sql = (
                f"SELECT subject{model}, SUM((data->>'tokens')::numeric) FROM events"
                f" WHERE type = 'prompt' AND time >= %s AND time < %s GROUP BY subject{model}"
            )
        started = time.perf_counter()
        result = connection.execute(sql, bounds).fetchall()
        seconds = time.perf_counter() - started
        if s.kind == "postgres":
            connection.rollback()
    return seconds, {tuple(row[:-1]): int(row[-1]) for row in result}
