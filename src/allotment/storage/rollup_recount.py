"""Recounting the roll-ups an excluded (or restored) event belongs to.

Excluding an event cannot be undone by subtracting it: MIN, MAX, LATEST and UNIQUE_COUNT have
no inverse. So its buckets are counted again: the minute from the raw events of that subject and
minute (a handful), the hour from the hour's minute buckets, the day from the day's hour buckets.
That is exact for every aggregation, because each level is by definition the merge of the level
below (`fold_levels` builds them the same way), and it costs a few indexed statements per meter
whatever the history.

The caller makes sure nothing else writes these rows meanwhile (`UsageStore.lock_for_correction`):
no ingest (a delta appended between the fold below and the raw scan would count twice) and no
maintenance (a backfill moving its boundary, a compaction folding the same deltas).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from sqlalchemy import Connection

from allotment.domain.meters import Aggregation
from allotment.domain.rollups import (
    LEVELS,
    MINUTE_MICROSECONDS,
    Level,
    Partial,
    RolledMeter,
    RollupBatch,
    SeriesKey,
    accumulate,
    bucket_start,
    fold_levels,
    merge_all,
)
from allotment.storage.repositories.base import Repository
from allotment.storage.rollups import (
    AGGREGATE_COLUMNS,
    RollupRepository,
    RollupStatus,
    event_data,
    partial_of_row,
    partial_values,
)


class RollupRecount(Repository):
    def __init__(self, connection: Connection, rollups: RollupRepository) -> None:
        super().__init__(connection)
        self._rollups = rollups
        self._mark = "?" if self.dialect == "sqlite" else "%s"

    def recount(
        self,
        meters: Sequence[tuple[RolledMeter, RollupStatus]],
        event: tuple[str, str, int, int, Any],
    ) -> list[tuple[int, int]]:
        """Count again the buckets of `event` — `(type, subject, time µs, seq, data)` — in the
        roll-ups of each of `meters` (those of its type that keep roll-ups). Returns `(series
        id, minute)` of every series it belongs to, whose checkpoints from that minute on no
        longer hold."""
        changed: list[tuple[int, int]] = []
        event_type, subject, time, _seq, _data = event
        minute = time - time % MINUTE_MICROSECONDS
        for rolled, status in meters:
            # The event's own series (none if the meter cannot count it).
            own = accumulate(RollupBatch(), [rolled], [event])
            keys = own.series_keys()
            if not keys:
                continue
            ids = self._rollups.series_ids(keys)
            self._fold_deltas(sorted(ids.values()))
            counted = accumulate(
                RollupBatch(), [rolled], self._minute_events(event_type, subject, minute, status)
            )
            for key, series_id in ids.items():
                self._replace_minute(series_id, minute, key, counted)
                self._rebuild_above(series_id, minute)
                if rolled.meter.aggregation is Aggregation.UNIQUE_COUNT:
                    self._rebuild_distinct(series_id, minute, key, counted)
                changed.append((series_id, minute))
        return changed

    def _minute_events(
        self, event_type: str, subject: str, minute: int, status: RollupStatus
    ) -> list[tuple[str, str, int, int, Any]]:
        """The counted events of the minute that the roll-ups hold: not excluded, and not among
        those the backfill has still to read (it reads them, exclusions applied, later)."""
        m = self._mark
        data = "data" if self.dialect == "sqlite" else "data::text"
        rows = self.connection.exec_driver_sql(
            f"SELECT type, subject, time, seq, {data} FROM events WHERE type = {m} "
            f"AND subject = {m} AND time >= {m} AND time < {m} AND excluded_at IS NULL "
            f"AND (seq < {m} OR seq > {m})",
            (
                event_type,
                subject,
                minute,
                minute + MINUTE_MICROSECONDS,
                status.backfill_next_seq,
                status.backfill_until_seq,
            ),
        )
        return [(t, s, int(time), int(seq), event_data(d)) for t, s, time, seq, d in rows]

    def _fold_deltas(self, series_ids: list[int]) -> None:
        """Move the series' pending deltas into the roll-ups first, so that the buckets rebuilt
        below are the whole of their usage (PostgreSQL; SQLite writes no deltas)."""
        marks = ", ".join([self._mark] * len(series_ids))
        taken = self.connection.exec_driver_sql(
            f"DELETE FROM usage_deltas WHERE series_id IN ({marks}) "
            f"RETURNING series_id, minute, {AGGREGATE_COLUMNS}",
            tuple(series_ids),
        ).all()
        self._rollups.upsert(
            fold_levels((int(row[0]), int(row[1]), partial_of_row(row[2:])) for row in taken)
        )

    def _replace_minute(
        self, series_id: int, minute: int, key: SeriesKey, counted: RollupBatch
    ) -> None:
        partial = counted.partials.get((key, minute))
        self._replace(series_id, Level.MINUTE, minute, partial)

    def _rebuild_above(self, series_id: int, minute: int) -> None:
        for finer, level in pairwise(LEVELS):
            bucket = bucket_start(minute, level)
            rows = self.connection.exec_driver_sql(
                f"SELECT {AGGREGATE_COLUMNS} FROM usage_rollups WHERE level = {self._mark} "
                f"AND series_id = {self._mark} AND bucket >= {self._mark} "
                f"AND bucket < {self._mark}",
                (int(finer), series_id, bucket, bucket + level.microseconds),
            ).all()
            self._replace(series_id, level, bucket, merge_all([partial_of_row(r) for r in rows]))

    def _replace(self, series_id: int, level: Level, bucket: int, partial: Partial | None) -> None:
        m = self._mark
        self.connection.exec_driver_sql(
            f"DELETE FROM usage_rollups WHERE level = {m} AND series_id = {m} AND bucket = {m}",
            (int(level), series_id, bucket),
        )
        if partial is not None:
            self.connection.exec_driver_sql(
                f"INSERT INTO usage_rollups (level, series_id, bucket, {AGGREGATE_COLUMNS}) "
                f"VALUES ({', '.join([m] * 12)})",
                (int(level), series_id, bucket, *partial_values(partial, self.dialect == "sqlite")),
            )

    def _rebuild_distinct(
        self, series_id: int, minute: int, key: SeriesKey, counted: RollupBatch
    ) -> None:
        """UNIQUE_COUNT: the minute's set from the raw events, each coarser set as the union of
        the sets one level finer."""
        m = self._mark
        values = sorted(
            {v for k, level, bucket, v in counted.distinct if k == key and level == Level.MINUTE}
        )
        self._delete_distinct(series_id, Level.MINUTE, minute)
        if values:
            self.connection.exec_driver_sql(
                "INSERT INTO usage_distinct (level, series_id, bucket, value_key) "
                f"VALUES ({m}, {m}, {m}, {m})",
                [(int(Level.MINUTE), series_id, minute, value) for value in values],
            )
        for finer, level in pairwise(LEVELS):
            bucket = bucket_start(minute, level)
            self._delete_distinct(series_id, level, bucket)
            self.connection.exec_driver_sql(
                # Integers of ours as literals: PostgreSQL cannot type a parameter in a select list.
                "INSERT INTO usage_distinct (level, series_id, bucket, value_key) "
                f"SELECT DISTINCT {int(level)}, series_id, {int(bucket)}, value_key "
                f"FROM usage_distinct WHERE level = {m} AND series_id = {m} AND bucket >= {m} "
                f"AND bucket < {m}",
                (int(finer), series_id, bucket, bucket + level.microseconds),
            )

    def _delete_distinct(self, series_id: int, level: Level, bucket: int) -> None:
        m = self._mark
        self.connection.exec_driver_sql(
            f"DELETE FROM usage_distinct WHERE level = {m} AND series_id = {m} AND bucket = {m}",
            (int(level), series_id, bucket),
        )
