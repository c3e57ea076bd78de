"""Maintenance: the work that keeps reads cheap, never the work that keeps them right.

Every read is exact without any of this (roll-ups plus pending deltas, raw events for meters not
backfilled yet, runs from measurement start without checkpoints); maintenance only makes reads
touch fewer rows:

- **compaction** folds pending deltas into the roll-ups at every level and drops the
  checkpoints that late usage among them invalidates;
- **backfill** rolls up the events stored before a meter (or its current group-by) existed;
- **checkpoints** save the engine state of entitlements whose reads asked for one (a read
  resumes from the newest valid checkpoint);
- **clean-up** removes series of old generations.

One maintenance transaction runs at a time across every process (storage/rollups.py). A server
runs a `MaintenanceWorker` thread; `allotment maintenance` runs the same work from the command
line, and tests call `run_until_idle`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from allotment import logs
from allotment.domain.burn import EngineState, UsageWindow, initial_state, plan_usage_windows, run
from allotment.domain.entitlements import Entitlement
from allotment.domain.snapshots import DEFAULT_GRACE, checkpoint_instant, may_save
from allotment.errors import Unavailable
from allotment.services.context import ServiceContext
from allotment.services.metered_inputs import (
    MeteredInputs,
    checkpoint_start,
    metered_inputs_of,
    usage_request,
)
from allotment.services.notification_evaluation import evaluate_pending
from allotment.services.notification_payloads import PayloadRenderer
from allotment.storage import UnitOfWork
from allotment.storage.rollup_reads import Probe
from allotment.storage.rollups import RollupStatus
from allotment.storage.types import to_micros

log = logging.getLogger(__name__)

COMPACT_CHUNK = 5_000
"""Deltas folded per transaction: short enough not to hold SQLite's write lock for long."""
BACKFILL_SEQ_SPAN = 20_000
"""Event seq values a backfill transaction covers."""
STALE_SERIES_CHUNK = 2_000
VACUUM_AFTER_DELTAS = 20_000
"""Deltas folded between two vacuums of their table (PostgreSQL)."""


@dataclass
class MaintenanceReport:
    compacted: int = 0
    backfilled: int = 0
    checkpoints: int = 0
    dropped: int = 0
    notified: int = 0
    """Entitlements the notification evaluator looked at."""

    @property
    def did_work(self) -> bool:
        return bool(
            self.compacted or self.backfilled or self.checkpoints or self.dropped or self.notified
        )

    def add(self, other: MaintenanceReport) -> None:
        self.compacted += other.compacted
        self.backfilled += other.backfilled
        self.checkpoints += other.checkpoints
        self.dropped += other.dropped
        self.notified += other.notified


def compact(context: ServiceContext, limit: int = COMPACT_CHUNK) -> int:
    """Fold up to `limit` pending deltas; returns how many were folded."""
    now = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        if not uow.rollups.try_lock_maintenance():
            return 0
        folded, changed = uow.rollups.compact(limit)
        if not folded:
            return 0
        # Only usage older than the grace window can precede a checkpoint (they are saved at
        # least that far in the past).
        cutoff = to_micros(now - DEFAULT_GRACE)
        late = [(series, minute) for series, minute in changed if minute < cutoff]
        uow.checkpoints.delete_for_late_usage(late)
        uow.commit()
        return folded


def backfill(context: ServiceContext, span: int = BACKFILL_SEQ_SPAN) -> int:
    """One step of the oldest pending backfill; returns how many seq values it covered."""
    with context.database.unit_of_work(write=True) as uow:
        if not uow.rollups.try_lock_maintenance():
            return 0
        pending = uow.rollups.pending_backfills()
        if not pending:
            return 0
        status = pending[0]
        meter = uow.meters.get(status.meter_id)
        assert meter is not None  # meter_rollups rows reference meters, never removed
        done = uow.rollups.backfill(meter, status, span)
        uow.commit()
        if done.ready:
            log.info("roll-ups of meter %s are complete", meter.slug)
        return done.backfill_next_seq - status.backfill_next_seq


def drop_stale_series(context: ServiceContext, limit: int = STALE_SERIES_CHUNK) -> int:
    with context.database.unit_of_work(write=True) as uow:
        if not uow.rollups.try_lock_maintenance():
            return 0
        dropped = uow.rollups.drop_stale_series(limit)
        uow.commit()
        return dropped


CHECKPOINT_CHUNK = 25
"""Entitlements whose checkpoints one transaction saves: a customer's read of 100 features asks
for 100 at once, and a transaction each (a dozen statements and a commit apiece) took most of a
worker's time in bench B7; a chunk is short enough not to hold SQLite's write lock for long."""


def save_checkpoints(context: ServiceContext, entitlement_ids: Iterable[str]) -> int:
    """Save, for each entitlement, the newest checkpoint the rules allow; returns how many."""
    wanted = list(dict.fromkeys(entitlement_ids))
    saved = 0
    for i in range(0, len(wanted), CHECKPOINT_CHUNK):
        chunk = wanted[i : i + CHECKPOINT_CHUNK]
        now = context.clock()
        with context.database.unit_of_work(write=True) as uow:
            if not uow.rollups.try_lock_maintenance():
                for entitlement_id in chunk:
                    context.caches.request_checkpoint(entitlement_id)  # try again later
                continue
            count = _save_checkpoints(uow, chunk, now)
            if count:
                uow.commit()
                saved += count
    return saved


@dataclass(frozen=True)
class _Planned:
    entitlement: Entitlement
    inputs: MeteredInputs
    start: EngineState
    instant: datetime
    windows: list[UsageWindow]


def _save_checkpoints(uow: UnitOfWork, entitlement_ids: list[str], now: datetime) -> int:
    # Held until commit: every write that invalidates checkpoints takes one of these locks
    # first (lock_entitlement, lock_attribution), so none can slip in between this read of
    # grants, resets and attribution and the saves.
    uow.customers.hold_attribution()
    held = uow.entitlements.held(entitlement_ids)
    metered = [e for e in held.values() if e.is_metered]
    owners = uow.customers.get_many({e.customer_id for e in metered})
    owned = [(owners[e.customer_id], [e]) for e in metered if e.customer_id in owners]
    tracked: dict[str, bool] = {}
    statuses: dict[str, RollupStatus | None] = {}
    planned: list[_Planned] = []
    for entitlement_id, inputs in metered_inputs_of(uow, owned).items():
        meter = inputs.meter
        if meter.id not in tracked:
            tracked[meter.id] = uow.usage_store.tracks_late_usage(meter)
            statuses[meter.id] = uow.usage_store.status(meter)
        if not tracked[meter.id]:
            continue  # late events of the meter would go unseen: never checkpoint it
        entitlement = held[entitlement_id]
        terms, grants = inputs.terms, inputs.grants
        until = _last_active_minute(entitlement, now)
        start = checkpoint_start(uow, inputs, until) or initial_state(terms, grants)
        instant = checkpoint_instant(terms, start_at=start.at, until=until, now=now)
        if instant is not None:
            windows = plan_usage_windows(terms, grants, start, instant)
            planned.append(_Planned(entitlement, inputs, start, instant, windows))
    if not planned:
        return 0
    # The usage of every planned run in one statement, as check access reads a customer's.
    _, usage = uow.usage_store.read(
        Probe(customer_id=None),
        [usage_request(p.inputs, p.windows, statuses[p.inputs.meter.id]) for p in planned],
    )
    saved = 0
    for p, found in zip(planned, usage, strict=True):
        terms, grants = p.inputs.terms, p.inputs.grants
        by_window = dict(zip(p.windows, found, strict=True))
        state = run(terms, grants, p.start, p.instant, by_window).state
        if may_save(terms, state, now):
            uow.checkpoints.save(p.entitlement.id, state, now)
            saved += 1
    return saved


def _last_active_minute(entitlement: Entitlement, now: datetime) -> datetime:
    end = entitlement.ends_at
    return now if end is None or end > now else end


def vacuum_deltas(context: ServiceContext) -> None:
    with context.database.single_statement() as uow:
        uow.rollups.vacuum_deltas()


def run_once(context: ServiceContext, render: PayloadRenderer | None = None) -> MaintenanceReport:
    """One round of every step; notifications are evaluated only with a `render` (the client
    layer's payload shapes), else they wait in their queue for a process that has one."""
    report = MaintenanceReport(compacted=compact(context))
    if render is not None:
        report.notified = evaluate_pending(context, render).evaluated
    if context.caches.count_compacted(report.compacted) >= VACUUM_AFTER_DELTAS:
        vacuum_deltas(context)
        context.caches.count_compacted(reset=True)
    report.backfilled = backfill(context)
    requested = context.caches.take_checkpoint_requests()
    if requested:
        report.checkpoints = save_checkpoints(context, requested)
    if not report.did_work:
        report.dropped = drop_stale_series(context)
    return report


def run_until_idle(
    context: ServiceContext, render: PayloadRenderer | None = None, rounds_max: int = 100_000
) -> MaintenanceReport:
    """Maintenance until nothing is left to do (tests, `allotment maintenance`)."""
    total = MaintenanceReport()
    for _ in range(rounds_max):
        report = run_once(context, render)
        total.add(report)
        if not report.did_work:
            break
    return total


EVALUATION_PACE = 19
"""How much longer than its last round the notification evaluator rests: light load (rounds
of milliseconds) is still evaluated within a fraction of a second, heavy ingest pays about a
twentieth of a thread per server process for it (a tenth for the default two workers, which
take turns), at the price of later deliveries while it lasts. At 9, ingest with a rule active
lost 11 % on PostgreSQL (bench N1)."""
FEW_QUEUED = 50
"""A rest ends early while at most this many items are queued: it is there to coalesce heavy
ingest (a batch of 1,000 events queues hundreds of subjects), and evaluating a few customers
costs little, so after a burst the next crossing waits no rest (the burst's last round of t
seconds made it wait up to 9 t, 17 s in bench N2)."""
WRITES_PAUSED = 2.0
"""A rest ends early too once nothing new was queued for this many seconds, by any process:
the burst is over and its last items need not wait out the rest (a minute after a burst on
PostgreSQL). Well above the gap between two commits of a busy writer (an overloaded SQLite
commits 1,000-event batches every 0.1 to 0.8 s; at 0.5 s this ended rests mid-burst)."""

BURST_SETTLE = 5.0
"""Seconds at most that a round over many queued items waits, from when this worker first saw
them, before it starts; it starts sooner once nothing new was queued for `WRITES_PAUSED` (the
burst is over) or few items are left. A burst that begins after a quiet spell (a batch of 1,000
events queues hundreds of subjects) is then evaluated once, when it ends, instead of a round
over its first batches competing with the rest of it and another round after: on PostgreSQL a
round of 1,000 customers takes 1.5 to 2 s, as long as bench N1's bursts of 60,000 events. Under
ingest that goes on, the rounds after the first are paced by `EVALUATION_PACE`. A crossing among
a few queued items waits for none of it.
"""


def queue_state(context: ServiceContext) -> tuple[bool, tuple[int, datetime] | None]:
    """Whether few items are queued, and the newest one's id and time."""
    with context.database.unit_of_work() as uow:
        few = uow.outbox.count_pending(FEW_QUEUED + 1) <= FEW_QUEUED
        return few, uow.outbox.newest_pending()


class MaintenanceWorker:
    """A daemon thread running maintenance: at once after ingests wake it, else every
    `interval` seconds."""

    def __init__(
        self,
        context: ServiceContext,
        interval: timedelta,
        render: PayloadRenderer | None = None,
    ) -> None:
        self._context = context
        self._render = render
        self._evaluate_after = 0.0
        self._settled = False
        """Whether the many items queued now have waited their `BURST_SETTLE`."""
        self._skipped = False
        """After a round with the evaluator that took t seconds, the next evaluation waits
        `EVALUATION_PACE` times t more: it takes at most a twentieth of this thread's time, so heavy
        ingest coalesces into fewer, larger rounds instead of losing throughput to them (with
        t more, ingest lost a third of its throughput on two cores once rules existed)."""
        self._newest_seen: tuple[int, datetime] | None = None
        self._newest_since = 0.0
        """The newest queued item seen while resting, and since when (time.monotonic)."""
        self._interval = interval.total_seconds()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="allotment-maintenance", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._context.caches.wake_maintenance()
        self._thread.join(timeout)

    def _round(self) -> MaintenanceReport:
        started = time.monotonic()
        evaluate = self._render is not None and self._evaluation_due(started)
        self._skipped = self._render is not None and not evaluate
        report = run_once(self._context, self._render if evaluate else None)
        if evaluate:
            self._settled = False
            finished = time.monotonic()
            # A round of a few items leaves a heavy round's rest in force (max): else the
            # moment the queue is empty after each round under heavy ingest would end it.
            self._evaluate_after = max(
                self._evaluate_after, finished + EVALUATION_PACE * (finished - started)
            )
        return report

    def _evaluation_due(self, now: float) -> bool:
        if now < self._evaluate_after:
            return self._rest_over(now)
        if self._settled or queue_state(self._context)[0]:
            return True
        self._settled = True
        self._evaluate_after = now + BURST_SETTLE
        return False

    def _rest_over(self, now: float) -> bool:
        few, newest = queue_state(self._context)
        if few:
            return True
        if newest != self._newest_seen:
            self._newest_seen, self._newest_since = newest, now
            return False
        return now - self._newest_since >= WRITES_PAUSED

    def _loop(self) -> None:
        wake = self._context.caches.maintenance_wanted
        paused = False
        while not self._stop.is_set():
            try:
                report = self._round()
            except Unavailable as error:
                # Down or hung: one line when it starts and one when it ends, not one a round.
                if not paused:
                    log.warning(
                        "maintenance paused: database unavailable", extra={"reason": error.reason}
                    )
                paused = True
                report = MaintenanceReport()
            except Exception as error:  # a failing step must not end the thread; it retries
                log.error("maintenance step failed", extra=logs.exception_fields(error))
                report = MaintenanceReport()
            else:
                if paused:
                    log.info("maintenance resumed: the database answers again")
                paused = False
            if report.did_work:
                continue
            # An evaluation skipped this round is due soon, or once writes pause: wait no
            # longer than either. (A write that queues items wakes this thread itself.)
            due = self._evaluate_after - time.monotonic() if self._skipped else 0.0
            if due > 0:
                due = min(due, WRITES_PAUSED / 4)
            wake.wait(min(self._interval, due) if due > 0 else self._interval)
            wake.clear()
