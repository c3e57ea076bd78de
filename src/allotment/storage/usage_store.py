"""The usage store: ingest of a batch, and every read of usage, behind one narrow interface.

Services and the engine see only this class (as `uow.usage_store`): store a batch of events,
the usage of windows for a meter, its subjects and filters, a meter query, a meter's subjects
and group-by values. This implementation keeps events and roll-ups in the SQL database; a
column store (ClickHouse) would implement the same methods. Meters whose roll-ups are not
complete yet (a backfill in progress) and deleted meters are read from the raw events, which
gives the same answers, only slower.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from allotment.domain.events import Event, StoredEvent
from allotment.domain.group_filters import StringFilter
from allotment.domain.meters import (
    CUSTOMER_GROUP,
    Aggregation,
    Grouping,
    Meter,
    MeterBucket,
    MeterQuery,
)
from allotment.domain.rollups import (
    RolledMeter,
    RollupBatch,
    SeriesKey,
    accumulate,
    renumbered,
)
from allotment.domain.snapshots import DEFAULT_GRACE
from allotment.errors import InvalidInput
from allotment.storage.repositories.checkpoints import CheckpointRepository
from allotment.storage.repositories.events import EventRepository
from allotment.storage.repositories.meters import MeterRepository
from allotment.storage.repositories.usage import UsageRepository, UsageWindow
from allotment.storage.repositories.versions import VersionRepository
from allotment.storage.rollup_reads import (
    Probe,
    ProbeResult,
    RollupReader,
    ScopedRanges,
    SeriesScope,
)
from allotment.storage.rollup_recount import RollupRecount
from allotment.storage.rollups import MAINTENANCE_LOCK_KEY, RollupRepository, RollupStatus
from allotment.storage.types import to_micros


@dataclass(frozen=True)
class UsageRequest:
    """The usage one entitlement needs: windows of a meter over subjects and filters."""

    meter: Meter
    subjects: Sequence[str]
    windows: Sequence[UsageWindow]
    advanced_filters: Mapping[str, StringFilter] | None = None
    status: RollupStatus | None = None
    """The meter's ready roll-ups; None reads the raw events."""


class UsageStore:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.events = EventRepository(connection)
        self.rollups = RollupRepository(connection)
        self.reader = RollupReader(connection)
        self._raw_meters = MeterRepository(connection)
        self._raw_usage = UsageRepository(connection)

    # -- ingest -----------------------------------------------------------------------------

    def ingest(
        self,
        batch: Sequence[Event],
        received_at: datetime,
        *,
        meters: Sequence[RolledMeter] | None = None,
        data_texts: Sequence[str | None] | None = None,
        known_series: Mapping[SeriesKey, int] | None = None,
        learned_series: MutableMapping[SeriesKey, int] | None = None,
        prepared: RollupBatch | None = None,
    ) -> int:
        """Store `batch` (duplicates skipped) and its roll-ups; returns how many were new.

        `meters` are the rolled-up live meters; None reads them (callers that cache them pass
        the list they hold for the version `hold_meters_for_ingest` returned). `known_series`:
        series ids of committed series; `learned_series` receives this batch's, which the
        caller may remember once the transaction has committed. `prepared`: the batch
        accumulated for `meters` beforehand with positions as seqs, used when every event
        turns out to be new."""
        if meters is None:
            VersionRepository(self.connection).hold_meters_for_ingest()
            live = self._raw_meters.list_live_for_event_types(sorted({e.type for e in batch}))
            meters = self.rollups.rolled_meters(live)
        stored = self.events.add_many(batch, received_at, data_texts)
        if meters and prepared is not None and len(stored) == len(batch):
            rollup_batch = renumbered(prepared, [seq for _index, seq in stored])
            self._add(rollup_batch, received_at, known_series, learned_series)
        elif meters and stored:
            received = to_micros(received_at)

            def readings() -> Iterator[tuple[str, str, int, int, Any]]:
                for index, seq in stored:
                    event = batch[index]
                    time = received if event.time is None else to_micros(event.time)
                    yield event.type, event.subject, time, seq, event.data

            rollup_batch = accumulate(RollupBatch(), meters, readings())
            self._add(rollup_batch, received_at, known_series, learned_series)
        return len(stored)

    def _add(
        self,
        batch: RollupBatch,
        received_at: datetime,
        known_series: Mapping[SeriesKey, int] | None,
        learned_series: MutableMapping[SeriesKey, int] | None,
    ) -> None:
        ids, changed = self.rollups.add(batch, known_series)
        if learned_series is not None:
            learned_series.update(ids)
        # Roll-ups written directly (SQLite): late usage drops the checkpoints it invalidates
        # in this same transaction (only usage older than the grace window can precede one).
        cutoff = to_micros(received_at - DEFAULT_GRACE)
        late = [(series, minute) for series, minute in changed if minute < cutoff]
        if late:
            CheckpointRepository(self.connection).delete_for_late_usage(late)

    # -- corrections ------------------------------------------------------------------------

    def lock_for_correction(self) -> None:
        """Hold back ingest and maintenance until this transaction ends, so a recount sees
        every row it rebuilds still (`storage/rollup_recount.py`). SQLite: the unit already
        holds the one write lock."""
        if self.events.dialect == "sqlite":
            return
        self.connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (MAINTENANCE_LOCK_KEY,))
        VersionRepository(self.connection).hold_meters_for_change()

    def find_event(self, source: str, id_: str) -> StoredEvent | None:
        """The stored event named `(source, id)`."""
        return self.events.find(source, id_)

    def set_excluded(self, stored: StoredEvent, excluded_at: datetime | None) -> None:
        """Exclude the event (or, with None, count it again) in every later read: its roll-up
        buckets are counted again, and the checkpoints it invalidates are dropped. Call after
        `lock_for_correction` in the same transaction."""
        self.events.set_excluded(stored.seq, excluded_at)
        event = stored.event
        live = self._raw_meters.list_live_for_event_types([event.type])
        statuses = self.rollups.statuses([meter.id for meter in live])
        rolled = [
            (RolledMeter(meter, statuses[meter.id].generation), statuses[meter.id])
            for meter in live
            if meter.id in statuses
        ]
        reading = (event.type, event.subject, to_micros(stored.time), stored.seq, event.data)
        changed = RollupRecount(self.connection, self.rollups).recount(rolled, reading)
        CheckpointRepository(self.connection).delete_for_late_usage(changed)

    # -- reads ------------------------------------------------------------------------------

    def status(self, meter: Meter) -> RollupStatus | None:
        """The meter's roll-ups if they can answer reads (complete, meter live), else None."""
        if meter.is_deleted:
            return None
        status = self.rollups.statuses([meter.id]).get(meter.id)
        return status if status is not None and status.ready else None

    def usage_in_windows(
        self,
        meter: Meter,
        subjects: Sequence[str],
        windows: Sequence[UsageWindow],
        advanced_filters: Mapping[str, StringFilter] | None = None,
        *,
        status: RollupStatus | None = None,
    ) -> list[Decimal]:
        """The usage an entitlement counts in each `(start, end, period_start)` window (see
        `UsageRepository.usage_in_windows` for each aggregation's rule). `status`: the
        meter's ready roll-ups, if the caller has read them already."""
        if not windows:
            return []
        unknown = sorted(set(advanced_filters or {}) - set(meter.group_by))
        if unknown:
            raise InvalidInput(
                f"meter {meter.slug} has no group-by key {', '.join(map(repr, unknown))}",
                field="meterGroupByFilters",
            )
        if not subjects:
            return [Decimal(0)] * len(windows)
        status = status or self.status(meter)
        if status is None:
            return self._raw_usage.usage_in_windows(
                meter, subjects, {}, windows, advanced_filters=advanced_filters
            )
        scope = SeriesScope(
            meter,
            status.generation,
            list(dict.fromkeys(subjects)),
            advanced_filters=advanced_filters,
        )
        return _per_window(meter, self.reader.usage_in_ranges(scope, _ranges(meter, windows)))

    def read(
        self, probe: Probe, requests: Sequence[UsageRequest]
    ) -> tuple[ProbeResult, list[list[Decimal]]]:
        """The probe's stamps and every request's usage per window: one statement when every
        meter's roll-ups are ready (the check-access hot path), one more per meter that is
        read from raw events."""
        scoped: list[ScopedRanges] = []
        placed: list[int | None] = []
        for request in requests:
            if request.status is None or not request.subjects or not request.windows:
                placed.append(None)
                continue
            placed.append(len(scoped))
            scope = SeriesScope(
                request.meter,
                request.status.generation,
                list(dict.fromkeys(request.subjects)),
                advanced_filters=request.advanced_filters,
            )
            scoped.append(ScopedRanges(scope, _ranges(request.meter, request.windows)))
        result, found = self.reader.read(probe, scoped)
        usage: list[list[Decimal]] = []
        for request, position in zip(requests, placed, strict=True):
            if position is not None:
                usage.append(_per_window(request.meter, found[position]))
            else:
                usage.append(
                    self.usage_in_windows(
                        request.meter,
                        request.subjects,
                        request.windows,
                        request.advanced_filters,
                        status=request.status,
                    )
                )
        return result, usage

    def tracks_late_usage(self, meter: Meter) -> bool:
        """Whether every event of the meter that arrives from now on is written to the deltas
        (a live meter with roll-ups, complete or not), so late usage is seen and checkpoints
        of its entitlements can be trusted."""
        return not meter.is_deleted and meter.id in self.rollups.statuses([meter.id])

    def has_pending_usage_before(
        self,
        meter: Meter,
        subjects: Sequence[str],
        advanced_filters: Mapping[str, StringFilter] | None,
        before: datetime,
    ) -> bool:
        """Whether usage of these series before `before` has arrived but is not in the
        roll-ups yet (a checkpoint at `before` may not include it)."""
        status = self.rollups.statuses([meter.id]).get(meter.id)
        if status is None or not subjects:
            return False
        scope = SeriesScope(
            meter, status.generation, list(subjects), advanced_filters=advanced_filters
        )
        return self.reader.has_pending_usage_before(scope, before)

    def aggregate(
        self,
        meter: Meter,
        query: MeterQuery,
        grouping: Grouping,
        customer_subjects: Mapping[str, Sequence[str]] | None = None,
    ) -> list[MeterBucket]:
        """A meter query's aggregates per window and group (only groups with data)."""
        status = self.status(meter)
        if status is not None:
            subjects = _subject_filter(query.subjects, customer_subjects)
            scope = SeriesScope(
                meter,
                status.generation,
                subjects,
                group_filters=query.filter_group_by or None,
                advanced_filters=query.advanced_filters or None,
            )
            customer_of = None
            if customer_subjects is not None:
                customer_of = {
                    subject: customer_id
                    for customer_id, group in customer_subjects.items()
                    for subject in group
                }
            buckets = self.reader.aggregate(scope, query, grouping, customer_of)
            if buckets is not None:
                return buckets
        return self._raw_meters.aggregate(meter, query, grouping, customer_subjects)

    def subjects(
        self, meter: Meter, from_time: datetime | None, to_time: datetime | None
    ) -> list[str]:
        """Distinct subjects with events the meter counts in `[from_time, to_time)`."""
        if self.status(meter) is None:
            return self._raw_meters.subjects(meter, from_time, to_time)
        buckets = self.aggregate(
            meter,
            MeterQuery(from_time=from_time, to_time=to_time),
            Grouping(by_subject=True, by_customer=False, keys=()),
        )
        return sorted({b.subject for b in buckets if b.subject is not None})

    def group_values(
        self, meter: Meter, key: str, from_time: datetime | None, to_time: datetime | None
    ) -> list[str]:
        """Distinct non-null values of group-by `key` among the meter's countable events."""
        if self.status(meter) is None or key == CUSTOMER_GROUP:
            return self._raw_meters.group_values(meter, key, from_time, to_time)
        buckets = self.aggregate(
            meter,
            MeterQuery(from_time=from_time, to_time=to_time),
            Grouping(by_subject=False, by_customer=False, keys=(key,)),
        )
        return sorted({b.group_values[0] for b in buckets if b.group_values[0] is not None})


def _ranges(meter: Meter, windows: Sequence[UsageWindow]) -> list[tuple[datetime, datetime]]:
    """The ranges whose usage gives each window's: UNIQUE_COUNT counts the values first seen
    in the window within its period, `uniq(period_start, end) - uniq(period_start, start)`."""
    if meter.aggregation is Aggregation.UNIQUE_COUNT:
        ranges = []
        for start, end, period_start in windows:
            ranges.append((period_start, end))
            ranges.append((period_start, start))
        return ranges
    return [(start, end) for start, end, _period_start in windows]


def _per_window(meter: Meter, values: Sequence[Decimal]) -> list[Decimal]:
    if meter.aggregation is Aggregation.UNIQUE_COUNT:
        return [values[2 * i] - values[2 * i + 1] for i in range(len(values) // 2)]
    return list(values)


def _subject_filter(
    subjects: Sequence[str], customer_subjects: Mapping[str, Sequence[str]] | None
) -> list[str] | None:
    """The subjects a query may read: those asked for, within the customers' if any asked."""
    allowed: list[str] | None = list(dict.fromkeys(subjects)) if subjects else None
    if customer_subjects is not None:
        of_customers = [s for group in customer_subjects.values() for s in group]
        allowed = of_customers if allowed is None else [s for s in allowed if s in of_customers]
    return allowed
