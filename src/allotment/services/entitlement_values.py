"""Check access: the value of one entitlement, or of all a customer's entitlements, at a time.

A read never writes. The time asked about (default now) decides which entitlement a feature key
names: the one active then, so a deleted or overridden entitlement still answers for earlier
times. A feature the owner has no entitlement for answers `hasAccess: false`, not 404.

This is the hot path, so a read is built to cost one database round trip:

- The definitions it needs (owner, entitlements of the feature key, grants, resets, feature,
  meter, the newest checkpoint) are cached per process, with the version stamps they were
  loaded at (services/caches.py).
- One statement then checks those stamps, checks that the checkpoint still holds, and reads the
  usage of every window the engine planned from it (storage/rollup_reads.py `read`).
- If a stamp moved, the read loads everything again in one consistent transaction and
  computes there: a few more round trips, once per change. If only the checkpoint fell (late
  usage before it), only the checkpoints are chosen again.

The value is always exactly what a computation from measurement start over every stored event,
grant and reset gives; caches and checkpoints only decide how much has to be read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from allotment.domain.access import (
    NO_ACCESS,
    EntitlementValue,
    boolean_value,
    metered_value,
    plan_metered_read,
    static_value,
)
from allotment.domain.burn import EngineState, UsageWindow
from allotment.domain.customers import Customer
from allotment.domain.entitlements import Entitlement, EntitlementType
from allotment.domain.instants import LATEST, checked_instant
from allotment.domain.time import truncate_to_minute
from allotment.errors import NotFound
from allotment.ids import is_ulid
from allotment.services.answer_cache import ReadScope
from allotment.services.caches import CacheKey
from allotment.services.context import ServiceContext
from allotment.services.customers import resolve_customer
from allotment.services.entitlement_owners import (
    ENTITLEMENT_FIELD,
    Owner,
    find_owner,
)
from allotment.services.metered_inputs import (
    MeteredInputs,
    checkpoint_start,
    fits,
    metered_inputs_of,
    usage_request,
)
from allotment.storage import UnitOfWork
from allotment.storage.repositories.versions import CATALOG
from allotment.storage.rollup_reads import Probe
from allotment.storage.rollups import RollupStatus
from allotment.storage.usage_store import UsageRequest

CHECKPOINT_AGE = timedelta(hours=1)
"""A read of the present that had to start further back than this asks maintenance for a newer
checkpoint (reads resume from the newest valid one). Roll-ups make a long stretch cheap to
read already; checkpoints save the engine the cuts (periods, grants, recurrences) in it."""


@dataclass(frozen=True)
class _Metered:
    inputs: MeteredInputs
    rollups: RollupStatus | None
    """The meter's ready roll-ups; None: its usage is read from the raw events."""
    checkpoint: EngineState | None


@dataclass(frozen=True)
class Definitions:
    """Everything a read needs but usage, as of the stamps it was loaded at."""

    catalog_version: int
    customer: Customer | None
    customer_revision: int | None
    entitlements: tuple[Entitlement, ...]
    """The candidates: the entitlement an id names, or every one ever made for the feature key
    (the one active at the instant asked about answers), or every one of the customer."""
    metered: Mapping[str, _Metered]


@dataclass(frozen=True)
class _Read:
    values: dict[str, EntitlementValue]
    definitions_current: bool
    """The stamps the definitions were loaded at still held in the statement that read usage."""
    checkpoints_valid: bool
    """The checkpoints the read started from still held there too."""
    newer_checkpoint: bool

    @property
    def current(self) -> bool:
        return self.definitions_current and self.checkpoints_valid


def entitlement_value(
    context: ServiceContext, owner: Owner, id_or_feature_key: str, at: datetime | None = None
) -> EntitlementValue:
    """The value of the owner's entitlement (by id, or by feature key) at `at` (default now).

    No entitlement for the feature at that time, or a subject that belongs to no customer, is
    `hasAccess: false`; an id-shaped value that names no entitlement of the owner is NotFound
    (ids are never feature keys). Raises NotFound for an unknown owner.
    """
    return _entitlement_value(context, owner, id_or_feature_key, at)[0]


def entitlement_value_now(
    context: ServiceContext, owner: Owner, id_or_feature_key: str
) -> tuple[EntitlementValue, ReadScope | None]:
    """`entitlement_value` now, and what it depends on (services/answer_cache.py)."""
    value, definitions, t = _entitlement_value(context, owner, id_or_feature_key, None)
    return value, _scope(definitions, t)


def _entitlement_value(
    context: ServiceContext, owner: Owner, id_or_feature_key: str, at: datetime | None
) -> tuple[EntitlementValue, Definitions, datetime]:
    now = context.clock()
    t = checked_instant(at or now, "time")
    key: CacheKey = ("value", owner, id_or_feature_key)
    definitions, values = _read(
        context, key, t, now, lambda uow: _load_for_key(uow, owner, id_or_feature_key)
    )
    return _choose(definitions, values, id_or_feature_key, t), definitions, t


def customer_access(
    context: ServiceContext,
    customer_id_or_key: str,
    at: datetime | None = None,
) -> dict[str, EntitlementValue]:
    """Every entitlement the customer holds at `at` (default now), by feature key."""
    return _customer_access(context, customer_id_or_key, at)[0]


def customer_access_now(
    context: ServiceContext, customer_id_or_key: str
) -> tuple[dict[str, EntitlementValue], ReadScope | None]:
    """`customer_access` now, and what it depends on (services/answer_cache.py)."""
    values, definitions, t = _customer_access(context, customer_id_or_key, None)
    return values, _scope(definitions, t)


def _customer_access(
    context: ServiceContext, customer_id_or_key: str, at: datetime | None
) -> tuple[dict[str, EntitlementValue], Definitions, datetime]:
    now = context.clock()
    t = checked_instant(at or now, "time")
    key: CacheKey = ("access", customer_id_or_key)
    definitions, values = _read(
        context,
        key,
        t,
        now,
        lambda uow: _load_customer(uow, customer_id_or_key),
    )
    active = sorted(
        (e for e in definitions.entitlements if e.active_at(t)),
        key=lambda e: (e.feature_key, e.created_at),
    )
    return {e.feature_key: values[e.id] for e in active}, definitions, t


def _scope(definitions: Definitions, t: datetime) -> ReadScope | None:
    """What a read at `t` from `definitions` depends on, for answers kept for later reads."""
    customer = definitions.customer
    if customer is None:
        return None
    boundaries = [
        instant
        for entitlement in definitions.entitlements
        for instant in (entitlement.active_from, entitlement.ends_at)
        if instant is not None and instant > t
    ]
    return ReadScope(customer.id, customer.attribution_keys, min(boundaries, default=None))


def values_at(
    uow: UnitOfWork, customer: Customer, entitlements: Sequence[Entitlement], at: datetime
) -> dict[str, EntitlementValue]:
    """The value of each of the customer's `entitlements` at `at`, by entitlement id, inside
    the caller's unit (no caches): for other use cases that need values."""
    return values_of_customers(uow, [(customer, entitlements)], at)[customer.id]


def values_of_customers(
    uow: UnitOfWork, owned: Sequence[tuple[Customer, Sequence[Entitlement]]], at: datetime
) -> dict[str, dict[str, EntitlementValue]]:
    """Customer id -> entitlement id -> value at `at`, for each customer's `entitlements`,
    inside the caller's unit (no caches). The definitions of all of them are read together
    (a few queries however many customers), then usage in one statement per customer: for
    background readers of many customers, whose reads would each miss a process's cache."""
    version = uow.versions.get(CATALOG)
    revisions = uow.customers.revisions([customer.id for customer, _ in owned])
    loaded = _definitions_of(uow, [(c, tuple(e), revisions.get(c.id)) for c, e in owned], version)
    return {
        definitions.customer.id: _evaluate_loaded(uow, definitions, at).values
        for definitions in loaded
        if definitions.customer is not None
    }


# -- reading ------------------------------------------------------------------------------------


def _read(
    context: ServiceContext,
    key: CacheKey,
    t: datetime,
    now: datetime,
    load: Callable[[UnitOfWork], Definitions],
) -> tuple[Definitions, dict[str, EntitlementValue]]:
    caches = context.caches
    cached = caches.definitions(key)
    if cached is not None:
        with context.database.single_statement() as uow:
            read = _evaluate(uow, cached, t, probe_newer=now - t <= CHECKPOINT_AGE)
        if read.current:
            if read.newer_checkpoint:
                # Maintenance saved a newer checkpoint: later reads start from it.
                with context.database.single_statement() as uow:
                    caches.remember_definitions(key, _with_newest_checkpoints(uow, cached))
            else:
                _ask_for_checkpoints(context, cached, t, now)
            return cached, read.values
        if read.definitions_current:
            # Only a checkpoint fell (late usage before it): the definitions still hold, so
            # only the checkpoints are chosen again, not everything loaded anew.
            with context.database.unit_of_work() as uow:
                again = _with_checkpoints_rechosen(uow, cached, t)
            if again.current:
                caches.remember_definitions(key, again.definitions)
                _ask_for_checkpoints(context, again.definitions, t, now)
                return again.definitions, again.values
    with context.database.unit_of_work() as uow:
        loaded = _evaluate_loaded(uow, load(uow), t)
    caches.remember_definitions(key, loaded.definitions)
    _ask_for_checkpoints(context, loaded.definitions, t, now)
    return loaded.definitions, loaded.values


@dataclass(frozen=True)
class _Loaded:
    definitions: Definitions
    """As read with, the checkpoints the statement refused replaced."""
    values: dict[str, EntitlementValue]
    current: bool


def _evaluate_loaded(uow: UnitOfWork, definitions: Definitions, t: datetime) -> _Loaded:
    """Values from definitions loaded in this very unit (snapshot)."""
    read = _evaluate(uow, definitions, t)
    if read.current:
        return _Loaded(definitions, read.values, current=True)
    # Loaded in this very snapshot, so only a checkpoint can fail: one that late usage
    # waiting in the deltas predates.
    return _with_checkpoints_rechosen(uow, definitions, t)


def _with_checkpoints_rechosen(uow: UnitOfWork, definitions: Definitions, t: datetime) -> _Loaded:
    """The values with each entitlement's newest checkpoint that still holds, each checked on
    its own in this unit."""
    definitions = _with_checked_checkpoints(uow, definitions)
    read = _evaluate(uow, definitions, t)
    return _Loaded(definitions, read.values, read.current)


def _with_newest_checkpoints(uow: UnitOfWork, definitions: Definitions) -> Definitions:
    """The definitions with each entitlement's newest checkpoint (unchecked: each read's
    statement checks the one it starts from)."""
    newest = uow.checkpoints.newest_of(list(definitions.metered))
    metered = {}
    for entitlement_id, m in definitions.metered.items():
        checkpoint = newest.get(entitlement_id)
        if checkpoint is None or not fits(m.inputs, checkpoint):
            checkpoint = m.checkpoint
        metered[entitlement_id] = replace(m, checkpoint=checkpoint)
    return replace(definitions, metered=metered)


def _with_checked_checkpoints(uow: UnitOfWork, definitions: Definitions) -> Definitions:
    metered = {
        entitlement_id: replace(m, checkpoint=checkpoint_start(uow, m.inputs, LATEST))
        for entitlement_id, m in definitions.metered.items()
    }
    return replace(definitions, metered=metered)


def _choose(
    definitions: Definitions,
    values: Mapping[str, EntitlementValue],
    id_or_feature_key: str,
    t: datetime,
) -> EntitlementValue:
    if definitions.customer is None:
        return NO_ACCESS
    if is_ulid(id_or_feature_key):
        found = [e for e in definitions.entitlements if e.id == id_or_feature_key]
        if not found:
            raise NotFound(f"entitlement not found: {id_or_feature_key}", field=ENTITLEMENT_FIELD)
        return values[found[0].id]
    for entitlement in definitions.entitlements:
        if entitlement.active_at(t):
            return values[entitlement.id]
    return NO_ACCESS


def _evaluate(
    uow: UnitOfWork, definitions: Definitions, t: datetime, *, probe_newer: bool = False
) -> _Read:
    """Every candidate's value at `t`, in one statement when the meters' roll-ups are ready.
    With `probe_newer` (reads of the present, the ones that ask for checkpoints), the statement
    also says whether maintenance has saved a newer checkpoint for any of them since."""
    values: dict[str, EntitlementValue] = {}
    requests: list[UsageRequest] = []
    runs: list[tuple[Entitlement, _Metered, EngineState | None, list[UsageWindow]]] = []
    # In feature key order, not the order they were loaded in: the statement's text follows
    # the order of its reads, and customers of the same features then share one compiled
    # statement (compiling one of a hundred features costs far more than running it).
    for entitlement in sorted(definitions.entitlements, key=_read_order):
        ends = entitlement.ends_at
        if entitlement.type is EntitlementType.BOOLEAN:
            values[entitlement.id] = boolean_value(entitlement.active_from, ends, t)
        elif entitlement.type is EntitlementType.STATIC:
            values[entitlement.id] = static_value(
                entitlement.config or "", entitlement.active_from, ends, t
            )
        elif not entitlement.active_at(t):
            values[entitlement.id] = NO_ACCESS
        else:
            metered = definitions.metered[entitlement.id]
            inputs = metered.inputs
            start = _usable(metered.checkpoint, inputs, t)
            windows = plan_metered_read(inputs.terms, inputs.grants, t, start)
            runs.append((entitlement, metered, start, windows))
            requests.append(usage_request(inputs, windows, metered.rollups))
    probe = Probe(
        customer_id=definitions.customer.id if definitions.customer else None,
        checkpoints=tuple(
            (entitlement.id, start) if start is not None else None
            for entitlement, _metered, start, _windows in runs
        ),
        newer_than=tuple(
            (entitlement.id, start.at if start is not None else None)
            for entitlement, _metered, start, _windows in runs
        )
        if probe_newer
        else (),
        at=t,
    )
    result, usage = uow.usage_store.read(probe, requests)
    definitions_current = (
        result.catalog_version == definitions.catalog_version
        and result.customer_revision == definitions.customer_revision
    )
    for (entitlement, metered, start, windows), found in zip(runs, usage, strict=True):
        inputs = metered.inputs
        by_window = dict(zip(windows, found, strict=True))
        value, _run = metered_value(inputs.terms, inputs.grants, t, by_window, start_state=start)
        values[entitlement.id] = value
    return _Read(values, definitions_current, result.checkpoint_valid, result.newer_checkpoint)


def _read_order(entitlement: Entitlement) -> tuple[str, datetime, str]:
    return entitlement.feature_key, entitlement.created_at, entitlement.id


def _usable(
    checkpoint: EngineState | None, inputs: MeteredInputs, t: datetime
) -> EngineState | None:
    """The cached checkpoint, if a read at `t` may start from it."""
    if checkpoint is None:
        return None
    if checkpoint.at > truncate_to_minute(t) or t < inputs.terms.timeline.measure_usage_from:
        return None
    return checkpoint


def _ask_for_checkpoints(
    context: ServiceContext, definitions: Definitions, t: datetime, now: datetime
) -> None:
    """Reads of the present that start far back ask maintenance for a newer checkpoint.

    Not the notification evaluator's (`values_of_customers` asks for none): it reads every
    customer an ingest touched, and the checkpoints it would ask for are saved in write
    transactions (SQLite's write lock, which ingest waits for); with its reads asking, ingest
    with a rule active lost about half its throughput on SQLite (bench N1). Roll-ups keep its
    reads cheap without them."""
    if now - t > CHECKPOINT_AGE:
        return
    for entitlement_id, metered in definitions.metered.items():
        checkpoint = metered.checkpoint
        start = (
            checkpoint.at
            if checkpoint is not None
            else metered.inputs.terms.timeline.measure_usage_from
        )
        if t - start > CHECKPOINT_AGE:
            context.caches.request_checkpoint(entitlement_id)


# -- loading ------------------------------------------------------------------------------------


def _load_for_key(uow: UnitOfWork, owner: Owner, id_or_feature_key: str) -> Definitions:
    version = uow.versions.get(CATALOG)
    customer = find_owner(uow, owner)
    if customer is None:
        return Definitions(version, None, None, (), {})
    if is_ulid(id_or_feature_key):
        found = uow.entitlements.get(id_or_feature_key)
        owned = found is not None and found.customer_id == customer.id
        candidates: tuple[Entitlement, ...] = (found,) if found is not None and owned else ()
    else:
        candidates = tuple(uow.entitlements.for_customer_feature(customer.id, id_or_feature_key))
    return _definitions(uow, customer, candidates, version)


def _load_customer(uow: UnitOfWork, customer_id_or_key: str) -> Definitions:
    version = uow.versions.get(CATALOG)
    customer = resolve_customer(uow, customer_id_or_key)
    candidates = tuple(uow.entitlements.of_customer(customer.id))
    return _definitions(uow, customer, candidates, version)


def _definitions(
    uow: UnitOfWork, customer: Customer, candidates: tuple[Entitlement, ...], version: int
) -> Definitions:
    revision = uow.customers.revision(customer.id)
    return _definitions_of(uow, [(customer, candidates, revision)], version)[0]


def _definitions_of(
    uow: UnitOfWork,
    owned: Sequence[tuple[Customer, tuple[Entitlement, ...], int | None]],
    version: int,
) -> list[Definitions]:
    """Definitions of each customer's candidates (with its revision), with each metered one's
    newest checkpoint (reads of an earlier time start from measurement start; they are rare);
    the same few queries however many customers there are."""
    inputs = metered_inputs_of(uow, [(customer, candidates) for customer, candidates, _ in owned])
    statuses = uow.rollups.statuses(sorted({i.meter.id for i in inputs.values()}))
    # The newest checkpoint of each, unchecked: the read's statement checks them, and a
    # checkpoint it refuses is replaced (`_with_checked_checkpoints`).
    newest = uow.checkpoints.newest_of([i for i in inputs if _tracked(inputs[i], statuses)])
    loaded = []
    for customer, candidates, revision in owned:
        metered: dict[str, _Metered] = {}
        for entitlement in candidates:
            entitlement_inputs = inputs.get(entitlement.id)
            if entitlement_inputs is None:
                continue
            meter = entitlement_inputs.meter
            status = statuses.get(meter.id)
            ready = status if status is not None and status.ready and not meter.is_deleted else None
            checkpoint = newest.get(entitlement.id)
            if checkpoint is not None and not fits(entitlement_inputs, checkpoint):
                checkpoint = None
            metered[entitlement.id] = _Metered(entitlement_inputs, ready, checkpoint)
        loaded.append(Definitions(version, customer, revision, candidates, metered))
    return loaded


def _tracked(inputs: MeteredInputs, statuses: Mapping[str, RollupStatus]) -> bool:
    """Whether the meter's late usage is tracked (storage/usage_store.py `tracks_late_usage`):
    only then may a read start from a checkpoint of the entitlement."""
    return not inputs.meter.is_deleted and inputs.meter.id in statuses
