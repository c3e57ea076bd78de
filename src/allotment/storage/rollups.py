"""Roll-up storage: how the rules of `domain/rollups.py` are kept in both databases.

Three writers, each exact by construction:

- **Ingest** stores events and, in the same transaction, writes what they add. On PostgreSQL it
  appends minute partials to `usage_deltas` (plain COPY: concurrent ingests never wait for each
  other on a hot subject's row); on SQLite, which has one writer at a time anyway, it adds them
  to `usage_rollups` at every level at once and drops the checkpoints late usage invalidates.
  UNIQUE_COUNT values go to `usage_distinct` at every level on both. Only events the insert
  actually stored contribute, so duplicates never count twice.
- **Compaction** (maintenance, PostgreSQL) deletes a chunk of deltas with `DELETE … RETURNING`
  and adds exactly those rows to `usage_rollups` at every level, in one transaction. A reader's
  snapshot sees a delta either still in `usage_deltas` or already inside the roll-ups, never
  both and never neither; reads add the two.
- **Backfill** (maintenance) rolls up the events stored before a meter (or its current
  group-by) existed: those with `seq <= backfill_until_seq`. Ingest rolls up every later one.
  That boundary is exact because a meter write takes the `meters` version row FOR UPDATE, which
  waits for every ingest in flight (each holds it FOR SHARE) and holds new ones back until the
  meter commits: `max(seq)` read then is the last event that did not see the meter. SQLite
  serialises all writers, which gives the same guarantee.

Maintenance (compaction and backfill) runs one at a time: a transaction-scoped advisory lock on
PostgreSQL, the database write lock on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import jiter
import orjson
from sqlalchemy import Connection

from allotment.domain.meters import Meter
from allotment.domain.rollups import (
    Level,
    Partial,
    RolledMeter,
    RollupBatch,
    SeriesKey,
    accumulate,
    fold_levels,
    group_values_digest,
)
from allotment.storage.copy import copy_into
from allotment.storage.repositories.base import Repository

MAINTENANCE_LOCK_KEY: Final = 7_426_001
"""PostgreSQL advisory lock held by the one maintenance transaction running at a time."""

_AGGREGATES: Final = (
    "count",
    "first_time",
    "last_time",
    "last_seq",
    "total",
    "negative_total",
    "minimum",
    "maximum",
    "last_value",
)


@dataclass(frozen=True)
class RollupStatus:
    """A meter's roll-ups: their generation, and whether the backfill is done."""

    meter_id: str
    generation: int
    backfill_until_seq: int
    backfill_next_seq: int

    @property
    def ready(self) -> bool:
        return self.backfill_next_seq > self.backfill_until_seq


def _amount(value: Decimal | None, sqlite: bool) -> Any:
    """A Decimal as the driver takes it: text on SQLite (exact), NUMERIC on PostgreSQL."""
    if value is None or not sqlite:
        return value
    return format(value, "f")


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(value if isinstance(value, str | int) else str(value))


def partial_of_row(row: Sequence[Any]) -> Partial:
    """A Partial from the nine aggregate columns, in `_AGGREGATES` order."""
    return Partial(
        int(row[0]),
        int(row[1]),
        int(row[2]),
        int(row[3]),
        _decimal(row[4]),
        _decimal(row[5]),
        _decimal(row[6]),
        _decimal(row[7]),
        _decimal(row[8]),
    )


def partial_values(partial: Partial, sqlite: bool) -> tuple[Any, ...]:
    return (
        partial.count,
        partial.first_time,
        partial.last_time,
        partial.last_seq,
        _amount(partial.total, sqlite),
        _amount(partial.negative_total, sqlite),
        _amount(partial.minimum, sqlite),
        _amount(partial.maximum, sqlite),
        _amount(partial.last_value, sqlite),
    )


# Adding a partial to a stored row, in SQL. Every right-hand side reads the row as it was.
_MERGE_POSTGRES: Final = """
    count = r.count + excluded.count,
    first_time = least(r.first_time, excluded.first_time),
    last_time = greatest(r.last_time, excluded.last_time),
    last_seq = CASE WHEN (excluded.last_time, excluded.last_seq) > (r.last_time, r.last_seq)
        THEN excluded.last_seq ELSE r.last_seq END,
    last_value = CASE WHEN (excluded.last_time, excluded.last_seq) > (r.last_time, r.last_seq)
        THEN excluded.last_value ELSE r.last_value END,
    total = CASE WHEN r.total IS NULL THEN excluded.total
        WHEN excluded.total IS NULL THEN r.total ELSE r.total + excluded.total END,
    negative_total = CASE WHEN r.negative_total IS NULL THEN excluded.negative_total
        WHEN excluded.negative_total IS NULL THEN r.negative_total
        ELSE r.negative_total + excluded.negative_total END,
    minimum = least(r.minimum, excluded.minimum),
    maximum = greatest(r.maximum, excluded.maximum)
"""
AGGREGATE_COLUMNS: Final = ", ".join(_AGGREGATES)
"""The aggregate columns of roll-ups and deltas, in `partial_of_row` order."""


_SET_EXCLUDED: Final = ", ".join(f"{name} = excluded.{name}" for name in _AGGREGATES)


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{name}" for name in _AGGREGATES)


class RollupRepository(Repository):
    """Which meters are rolled up, and the three writers of the module docstring."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self._sqlite = self.dialect == "sqlite"

    # -- meters -----------------------------------------------------------------------------

    def rolled_meters(self, meters: Sequence[Meter]) -> list[RolledMeter]:
        """`meters` (live ones) paired with the generation of their roll-ups."""
        statuses = self.statuses([m.id for m in meters])
        return [RolledMeter(m, statuses[m.id].generation) for m in meters if m.id in statuses]

    def statuses(self, meter_ids: Sequence[str]) -> dict[str, RollupStatus]:
        if not meter_ids:
            return {}
        marks = ", ".join(["?" if self._sqlite else "%s"] * len(meter_ids))
        rows = self.connection.exec_driver_sql(
            "SELECT meter_id, generation, backfill_until_seq, backfill_next_seq "
            f"FROM meter_rollups WHERE meter_id IN ({marks})",
            tuple(meter_ids),
        )
        return {row[0]: RollupStatus(row[0], int(row[1]), int(row[2]), int(row[3])) for row in rows}

    def start(self, meter: Meter) -> RollupStatus:
        """Start (or restart, at a new generation) the roll-ups of `meter`: every event stored
        so far is left to the backfill. Call after `bump_version("meters")` in the same
        transaction, so no ingest is in flight (module docstring)."""
        mark = "?" if self._sqlite else "%s"
        last = self.connection.exec_driver_sql("SELECT max(seq) FROM events").scalar()
        until = int(last or 0)
        has_events = self.connection.exec_driver_sql(
            f"SELECT 1 FROM events WHERE type = {mark} LIMIT 1", (meter.event_type,)
        ).first()
        # Nothing of its type stored yet: nothing to backfill, ready at once.
        next_seq = 1 if has_events is not None else until + 1
        current = self.statuses([meter.id]).get(meter.id)
        generation = 1 if current is None else current.generation + 1
        if current is None:
            self.connection.exec_driver_sql(
                "INSERT INTO meter_rollups (meter_id, generation, backfill_until_seq, "
                f"backfill_next_seq) VALUES ({mark}, {mark}, {mark}, {mark})",
                (meter.id, generation, until, next_seq),
            )
        else:
            self.connection.exec_driver_sql(
                f"UPDATE meter_rollups SET generation = {mark}, backfill_until_seq = {mark}, "
                f"backfill_next_seq = {mark} WHERE meter_id = {mark}",
                (generation, until, next_seq, meter.id),
            )
        return RollupStatus(meter.id, generation, until, next_seq)

    # -- series -----------------------------------------------------------------------------

    def series_ids(
        self, keys: Iterable[SeriesKey], known: Mapping[SeriesKey, int] | None = None
    ) -> dict[SeriesKey, int]:
        """The id of every series in `keys`, creating those that do not exist yet. `known`:
        ids of committed series found before (a series' id never changes), consulted first.
        The caller may remember the result once its transaction has committed, not before: a
        series created by a transaction that rolls back does not exist."""
        known = {} if known is None else known
        found: dict[SeriesKey, int] = {}
        wanted: dict[SeriesKey, tuple[str, int, str, str, str]] = {}
        for key in keys:
            series_id = known.get(key)
            if series_id is not None:
                found[key] = series_id
            else:
                wanted[key] = (key[0], key[1], key[2], group_values_digest(key[3]), key[3])
        if not wanted:
            return found
        looked_up = self._find_series(list(wanted.values()))
        missing = [row for key, row in wanted.items() if key not in looked_up]
        if missing:
            self._insert_series(missing)
            looked_up.update(self._find_series(missing))
        found.update(looked_up)
        return found

    def _find_series(self, rows: list[tuple[str, int, str, str, str]]) -> dict[SeriesKey, int]:
        if self._sqlite:
            result = self.connection.exec_driver_sql(
                "SELECT s.id, s.meter_id, s.generation, s.subject, s.group_digest "
                "FROM json_each(?) AS k JOIN usage_series AS s "
                "ON s.meter_id = k.value ->> 0 AND s.generation = k.value ->> 1 "
                "AND s.subject = k.value ->> 2 AND s.group_digest = k.value ->> 3",
                (orjson.dumps([row[:4] for row in rows]).decode(),),
            )
        else:
            result = self.connection.exec_driver_sql(
                "SELECT s.id, s.meter_id, s.generation, s.subject, s.group_digest "
                "FROM unnest(%s::text[], %s::int[], %s::text[], %s::text[]) "
                "AS k(meter_id, generation, subject, group_digest) JOIN usage_series AS s "
                "USING (meter_id, generation, subject, group_digest)",
                tuple(list(column) for column in zip(*[row[:4] for row in rows], strict=True)),
            )
        texts = {row[:4]: row[4] for row in rows}
        return {
            (
                meter_id,
                int(generation),
                subject,
                texts[(meter_id, int(generation), subject, d)],
            ): int(series_id)
            for series_id, meter_id, generation, subject, d in result
        }

    def _insert_series(self, rows: list[tuple[str, int, str, str, str]]) -> None:
        if self._sqlite:
            self.connection.exec_driver_sql(
                "INSERT INTO usage_series (meter_id, generation, subject, group_digest, "
                "group_values) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                rows,
            )
            return
        # Sorted, so that two ingests creating the same new series wait in one order.
        ordered = sorted(rows)
        self.connection.exec_driver_sql(
            "INSERT INTO usage_series (meter_id, generation, subject, group_digest, group_values) "
            "SELECT * FROM unnest(%s::text[], %s::int[], %s::text[], %s::text[], %s::jsonb[]) "
            "ON CONFLICT DO NOTHING",
            tuple(list(column) for column in zip(*ordered, strict=True)),
        )

    # -- ingest -----------------------------------------------------------------------------

    def add(
        self, batch: RollupBatch, known_series: Mapping[SeriesKey, int] | None = None
    ) -> tuple[dict[SeriesKey, int], list[tuple[int, int]]]:
        """Write what newly stored events add (see `accumulate`). Returns the ids of the
        batch's series (see `series_ids` on when they may be remembered) and, when the roll-ups
        were written directly, `(series_id, earliest minute)` of each changed series, so the
        caller can drop the checkpoints late usage invalidates.

        PostgreSQL appends deltas (module docstring). SQLite has one writer at a time, so no
        ingest ever waits on another's rows: it adds the batch to the roll-ups at once, which
        costs less than a delta now and a compaction later."""
        if batch.is_empty:
            return {}, []
        ids = self.series_ids(batch.series_keys(), known_series)
        changed: list[tuple[int, int]] = []
        if batch.partials and self._sqlite:
            earliest: dict[int, int] = {}
            minute_partials = []
            for (key, minute), partial in batch.partials.items():
                series_id = ids[key]
                minute_partials.append((series_id, minute, partial))
                if minute < earliest.get(series_id, minute + 1):
                    earliest[series_id] = minute
            self.upsert(fold_levels(minute_partials))
            changed = sorted(earliest.items())
        elif batch.partials:
            deltas = [
                (ids[key], minute, *partial_values(partial, self._sqlite))
                for (key, minute), partial in batch.partials.items()
            ]
            self._insert_deltas(deltas)
        if batch.distinct:
            self._insert_distinct(_distinct_rows(batch, ids))
        return ids, changed

    def _insert_deltas(self, rows: list[tuple[Any, ...]]) -> None:
        if self._sqlite:
            self.connection.exec_driver_sql(
                f"INSERT INTO usage_deltas (series_id, minute, {AGGREGATE_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            return
        copy_into(self.connection, "usage_deltas", ("series_id", "minute", *_AGGREGATES), rows)

    def _insert_distinct(self, rows: list[tuple[int, int, int, str]]) -> None:
        if self._sqlite:
            self.connection.exec_driver_sql(
                "INSERT INTO usage_distinct (series_id, level, bucket, value_key) "
                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                rows,
            )
            return
        columns = ("series_id", "level", "bucket", "value_key")
        copy_into(self.connection, "staged_distinct", columns, rows)
        self.connection.exec_driver_sql(
            "INSERT INTO usage_distinct (series_id, level, bucket, value_key) "
            "SELECT series_id, level, bucket, value_key FROM staged_distinct "
            "ORDER BY series_id, level, bucket, value_key ON CONFLICT DO NOTHING"
        )

    # -- maintenance ------------------------------------------------------------------------

    def try_lock_maintenance(self) -> bool:
        """Whether this transaction is the one maintenance transaction now (PostgreSQL: a
        transaction-scoped advisory lock; SQLite: the write lock the unit already holds)."""
        if self._sqlite:
            return True
        locked = self.connection.exec_driver_sql(
            "SELECT pg_try_advisory_xact_lock(%s)", (MAINTENANCE_LOCK_KEY,)
        ).scalar()
        return bool(locked)

    def compact(self, limit: int) -> tuple[int, list[tuple[int, int]]]:
        """Fold up to `limit` deltas into the roll-ups; returns how many, and `(series_id,
        earliest minute)` of every series that changed, so the caller can drop the
        checkpoints it invalidates."""
        if self._sqlite:
            taken = self.connection.exec_driver_sql(
                f"DELETE FROM usage_deltas WHERE id IN (SELECT id FROM usage_deltas ORDER BY id "
                f"LIMIT ?) RETURNING series_id, minute, {AGGREGATE_COLUMNS}",
                (limit,),
            ).all()
        else:
            taken = self.connection.exec_driver_sql(
                f"DELETE FROM usage_deltas WHERE id IN (SELECT id FROM usage_deltas ORDER BY id "
                f"LIMIT %s) RETURNING series_id, minute, {AGGREGATE_COLUMNS}",
                (limit,),
            ).all()
        if not taken:
            return 0, []
        earliest: dict[int, int] = {}
        minute_partials = []
        for row in taken:
            series_id, minute = int(row[0]), int(row[1])
            minute_partials.append((series_id, minute, partial_of_row(row[2:])))
            if minute < earliest.get(series_id, minute + 1):
                earliest[series_id] = minute
        self.upsert(fold_levels(minute_partials))
        return len(taken), sorted(earliest.items())

    def upsert(self, partials: Mapping[tuple[int, Level, int], Partial]) -> None:
        """Add `partials` to the roll-ups, creating the buckets that do not exist yet. The
        partials may be merged into (fold_levels makes fresh ones)."""
        if not partials:
            return
        rows = [
            (series_id, int(level), bucket, *partial_values(partial, self._sqlite))
            for (series_id, level, bucket), partial in sorted(partials.items())
        ]
        if self._sqlite:
            self._upsert_sqlite(partials)
            return
        self.connection.exec_driver_sql(
            f"INSERT INTO usage_rollups AS r (series_id, level, bucket, {AGGREGATE_COLUMNS}) "
            "SELECT * FROM unnest(%s::bigint[], %s::smallint[], %s::bigint[], %s::bigint[], "
            "%s::bigint[], %s::bigint[], %s::bigint[], %s::numeric[], %s::numeric[], "
            "%s::numeric[], %s::numeric[], %s::numeric[]) "
            f"ON CONFLICT (series_id, level, bucket) DO UPDATE SET {_MERGE_POSTGRES}",
            tuple(list(column) for column in zip(*rows, strict=True)),
        )

    def _upsert_sqlite(self, partials: Mapping[tuple[int, Level, int], Partial]) -> None:
        """Read the buckets that exist, merge in Python (SQLite's own arithmetic would turn
        the exact decimal texts into floats), write every bucket back in one executemany."""
        keys = sorted((int(level), series_id, bucket) for series_id, level, bucket in partials)
        # Keyed like the rows read back; the partials are merged into in place (callers hand
        # over partials of their own, as fold_levels makes).
        merged = {
            (int(level), series_id, bucket): p for (series_id, level, bucket), p in partials.items()
        }
        for start in range(0, len(keys), 5_000):
            found = self.connection.exec_driver_sql(
                f"SELECT r.level, r.series_id, r.bucket, {_prefixed('r')} "
                "FROM json_each(?) AS k JOIN usage_rollups AS r "
                "ON r.level = k.value ->> 0 AND r.series_id = k.value ->> 1 "
                "AND r.bucket = k.value ->> 2",
                (orjson.dumps(keys[start : start + 5_000]).decode(),),
            )
            for row in found:
                merged[(row[0], row[1], row[2])].merge(partial_of_row(row[3:]))
        # In key order (level first), so the writes walk the index instead of jumping about.
        rows = [(*key, *partial_values(merged[key], True)) for key in keys]
        self.connection.exec_driver_sql(
            f"INSERT INTO usage_rollups (level, series_id, bucket, {AGGREGATE_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            f"ON CONFLICT (level, series_id, bucket) DO UPDATE SET {_SET_EXCLUDED}",
            rows,
        )

    def vacuum_deltas(self) -> None:
        """PostgreSQL: reclaim the rows compaction deleted. Deltas churn constantly, and reads
        that look for pending usage must not wade through dead rows until autovacuum comes by
        (or forever, where it is off). Needs a unit without a transaction (`single_statement`)."""
        if not self._sqlite:
            self.connection.exec_driver_sql("VACUUM (ANALYZE) usage_deltas")

    def pending_backfills(self) -> list[RollupStatus]:
        """Live meters whose roll-ups are not complete yet, oldest work first."""
        rows = self.connection.exec_driver_sql(
            "SELECT r.meter_id, r.generation, r.backfill_until_seq, r.backfill_next_seq "
            "FROM meter_rollups AS r JOIN meters AS m ON m.id = r.meter_id "
            "WHERE m.deleted_at IS NULL AND r.backfill_next_seq <= r.backfill_until_seq "
            "ORDER BY r.meter_id"
        )
        return [RollupStatus(row[0], int(row[1]), int(row[2]), int(row[3])) for row in rows]

    def backfill(self, meter: Meter, status: RollupStatus, seq_span: int) -> RollupStatus:
        """Roll up the meter's events with seq in `[next, next + seq_span)` (and <= until),
        straight into the roll-ups; returns the new status."""
        mark = "?" if self._sqlite else "%s"
        start = status.backfill_next_seq
        stop = min(start + seq_span, status.backfill_until_seq + 1)
        data = "data" if self._sqlite else "data::text"
        rows = self.connection.exec_driver_sql(
            f"SELECT type, subject, time, seq, {data} FROM events WHERE seq >= {mark} "
            f"AND seq < {mark} AND type = {mark} AND excluded_at IS NULL ORDER BY seq",
            (start, stop, meter.event_type),
        )
        events = (
            (event_type, subject, int(time), int(seq), event_data(data))
            for event_type, subject, time, seq, data in rows
        )
        batch = accumulate(RollupBatch(), [RolledMeter(meter, status.generation)], events)
        if not batch.is_empty:
            ids = self.series_ids(batch.series_keys())
            self.upsert(
                fold_levels(
                    (ids[key], minute, partial) for (key, minute), partial in batch.partials.items()
                )
            )
            if batch.distinct:
                self._insert_distinct(
                    sorted(
                        {
                            (ids[key], level, bucket, value)
                            for key, level, bucket, value in batch.distinct
                        }
                    )
                )
        self.connection.exec_driver_sql(
            f"UPDATE meter_rollups SET backfill_next_seq = {mark} WHERE meter_id = {mark} "
            f"AND generation = {mark}",
            (stop, meter.id, status.generation),
        )
        return RollupStatus(meter.id, status.generation, status.backfill_until_seq, stop)

    def drop_stale_series(self, limit: int) -> int:
        """Remove up to `limit` series of old generations (after a group-by change) and of
        deleted meters' roll-ups, with their buckets."""
        rows = self.connection.exec_driver_sql(
            "SELECT s.id FROM usage_series AS s JOIN meter_rollups AS r ON r.meter_id = s.meter_id "
            "WHERE s.generation < r.generation ORDER BY s.id LIMIT " + str(int(limit))
        ).all()
        ids = [int(row[0]) for row in rows]
        if not ids:
            return 0
        marks = ", ".join(["?" if self._sqlite else "%s"] * len(ids))
        # `level IN (...)` lets the keys, which lead with the level, find the rows.
        for table in ("usage_rollups", "usage_distinct"):
            self.connection.exec_driver_sql(
                f"DELETE FROM {table} WHERE level IN (0, 1, 2) AND series_id IN ({marks})",
                tuple(ids),
            )
        self.connection.exec_driver_sql(
            f"DELETE FROM usage_deltas WHERE series_id IN ({marks})", tuple(ids)
        )
        self.connection.exec_driver_sql(
            f"DELETE FROM usage_series WHERE id IN ({marks})", tuple(ids)
        )
        return len(ids)


def _distinct_rows(
    batch: RollupBatch, ids: Mapping[SeriesKey, int]
) -> list[tuple[int, int, int, str]]:
    # Sorted, so that concurrent ingests adding the same values take their locks in one order.
    rows = {(ids[key], level, bucket, value) for key, level, bucket, value in batch.distinct}
    return sorted(rows)


def event_data(value: Any) -> Any:
    """Event data read back as JSON text (`data::text` on PostgreSQL), numbers exact."""
    if value is None:
        return None
    return jiter.from_json(value.encode(), float_mode="decimal")
