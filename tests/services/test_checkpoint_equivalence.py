"""Checkpoints never change a value, on both databases.

Random histories of usage (late events included, and events excluded and restored by
corrections), grants, voids and resets, with checkpoints
saved at random points, compaction at random points and random subsets of the checkpoints
thrown away: after every step, the value read through the check-access service (caches,
checkpoints, roll-ups and all) equals the value computed from measurement start over the raw
events with no checkpoint at all, at the present and at earlier instants. The same history is
read once more with every checkpoint kept and once with none left.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from allotment.domain.access import metered_value, plan_metered_read
from allotment.domain.corrections import CorrectionAction, EventRef
from allotment.domain.grant_requests import GrantDefaults
from allotment.errors import InvalidInput
from allotment.services import (
    corrections,
    entitlement_resets,
    entitlement_values,
    entitlements,
    grants,
    maintenance,
)
from allotment.services.caches import ServiceCaches
from allotment.services.context import ServiceContext
from allotment.services.entitlement_owners import CustomerOwner
from allotment.services.metered_inputs import metered_inputs
from allotment.storage import Database
from tests.conftest import SettableClock, _clean
from tests.factories import grant, make_customer, make_feature, make_meter, metered, send_usage

START = datetime(2024, 5, 1, tzinfo=UTC)
ACME = CustomerOwner("acme")
EXAMPLES = int(os.environ.get("ALLOTMENT_CHECKPOINT_EXAMPLES", "10"))


@dataclass(frozen=True)
class Usage:
    minutes_ago: int
    tenths: int


@dataclass(frozen=True)
class AddGrant:
    amount: int
    priority: int
    delay_minutes: int
    expires_hours: int | None
    back_minutes: int  # effective in the past (within the period), which invalidates


@dataclass(frozen=True)
class Void:
    pick: int
    back_minutes: int


@dataclass(frozen=True)
class Reset:
    back_minutes: int


@dataclass(frozen=True)
class SaveCheckpoint:
    pass


@dataclass(frozen=True)
class Compact:
    limit: int


@dataclass(frozen=True)
class DropSome:
    seed: int


@dataclass(frozen=True)
class Correct:
    """Exclude a stored event (or restore an excluded one): a repair of earlier usage."""

    pick: int
    restore: bool


Step = Usage | AddGrant | Void | Reset | SaveCheckpoint | Compact | DropSome | Correct

step_strategy = st.one_of(
    st.builds(Usage, st.integers(0, 400), st.integers(0, 500)),
    st.builds(
        AddGrant,
        st.integers(1, 200),
        st.integers(1, 3),
        st.integers(0, 30),
        st.none() | st.integers(1, 5),
        st.integers(0, 120),
    ),
    st.builds(Void, st.integers(0, 9), st.integers(0, 60)),
    st.builds(Reset, st.integers(0, 60)),
    st.just(SaveCheckpoint()),
    st.just(SaveCheckpoint()),
    st.builds(Compact, st.integers(1, 20)),
    st.builds(DropSome, st.integers(0, 10**6)),
    st.builds(Correct, st.integers(0, 10**6), st.booleans()),
)
histories = st.lists(st.tuples(st.integers(1, 120), step_strategy), min_size=1, max_size=16)


def _from_scratch(context: ServiceContext, at: datetime) -> tuple[object, ...]:
    """The value at `at` from measurement start over raw events, no checkpoint."""
    with context.database.unit_of_work() as uow:
        customer = uow.customers.get_live_by_key("acme")
        assert customer is not None
        entitlement = uow.entitlements.for_customer_feature_at(customer.id, "ai_tokens", at)
        assert entitlement is not None
        inputs = metered_inputs(uow, customer, [entitlement])[entitlement.id]
        windows = plan_metered_read(inputs.terms, inputs.grants, at)
        values = uow.usage.usage_in_windows(
            inputs.meter,
            inputs.subject_keys,
            {},
            [(w.start, w.end, w.period_start) for w in windows],
            advanced_filters=inputs.group_filters,
        )
        value, _run = metered_value(
            inputs.terms, inputs.grants, at, dict(zip(windows, values, strict=True))
        )
    return _shape(value)


def _shape(value: entitlement_values.EntitlementValue) -> tuple[object, ...]:
    return (
        value.has_access,
        value.balance,
        value.usage,
        value.overage,
        value.total_available_grant_amount,
        dict(value.grant_balances or {}),
    )


def _served(context: ServiceContext, at: datetime) -> tuple[object, ...]:
    return _shape(entitlement_values.entitlement_value(context, ACME, "ai_tokens", at))


def _check(context: ServiceContext, clock: SettableClock) -> None:
    with context.database.unit_of_work() as uow:
        stored = uow.connection.exec_driver_sql("SELECT count(*) FROM balance_checkpoints").scalar()
    event(f"checkpoints stored when read: {min(int(stored or 0), 3)}")
    now = clock()
    for at in {now, now - timedelta(minutes=7), now - timedelta(hours=3, seconds=20)}:
        if at < START:
            continue
        expected = _from_scratch(context, at)
        assert _served(context, at) == expected, at
        # A customer's access (every entitlement in one read) starts from checkpoints too.
        access = entitlement_values.customer_access(context, "acme", at)
        assert _shape(access["ai_tokens"])[:5] == expected[:5], at


def _apply(context: ServiceContext, clock: SettableClock, step: Step, live: list[str]) -> None:
    now = clock().replace(second=0, microsecond=0)
    period_start = max(START, now - timedelta(hours=24))
    if isinstance(step, Usage):
        at = max(START, now - timedelta(minutes=step.minutes_ago)) + timedelta(seconds=13)
        send_usage(context, str(Decimal(step.tenths) / 10), at)
    elif isinstance(step, AddGrant):
        effective = max(period_start, now - timedelta(minutes=step.back_minutes))
        effective += timedelta(minutes=step.delay_minutes)
        expiration = None if step.expires_hours is None else ("HOUR", step.expires_hours)
        request = grant(step.amount, effective, expiration=expiration, priority=step.priority)
        try:
            view = grants.create_grant(context, ACME, "ai_tokens", request, GrantDefaults.V2)
        except InvalidInput:
            return  # before the current period (a reset moved it): refused, nothing changes
        live.append(view.grant.id)
    elif isinstance(step, Void) and live:
        grant_id = live.pop(step.pick % len(live))
        try:
            grants.void_grant(context, grant_id, now - timedelta(minutes=step.back_minutes))
        except InvalidInput:
            return
    elif isinstance(step, Reset):
        try:
            entitlement_resets.reset_entitlement(
                context, ACME, "ai_tokens", effective_at=now - timedelta(minutes=step.back_minutes)
            )
        except InvalidInput:
            return
    elif isinstance(step, SaveCheckpoint):
        with context.database.unit_of_work() as uow:
            customer = uow.customers.get_live_by_key("acme")
            assert customer is not None
            entitlement = uow.entitlements.live_for_customer_feature(customer.id, "ai_tokens")
            assert entitlement is not None
        saved = maintenance.save_checkpoints(context, [entitlement.id])
        event(f"checkpoint saved: {bool(saved)}")
    elif isinstance(step, Compact):
        maintenance.compact(context, limit=step.limit)
    elif isinstance(step, Correct):
        with context.database.unit_of_work() as uow:
            candidates = uow.connection.exec_driver_sql(
                "SELECT source, id FROM events WHERE excluded_at IS "
                + ("NOT NULL" if step.restore else "NULL")
                + " ORDER BY seq"
            ).all()
        if not candidates:
            return
        source, event_id = candidates[step.pick % len(candidates)]
        action = CorrectionAction.RESTORE if step.restore else CorrectionAction.EXCLUDE
        corrections.correct(context, EventRef(source, event_id), action, "test repair", None)
        event(f"corrected: {action.value}")
    elif isinstance(step, DropSome):
        chooser = random.Random(step.seed)
        with context.database.unit_of_work(write=True) as uow:
            rows = uow.connection.exec_driver_sql(
                "SELECT entitlement_id, at FROM balance_checkpoints"
            ).all()
            doomed = [row for row in rows if chooser.random() < 0.5]
            for entitlement_id, at in doomed:
                uow.connection.exec_driver_sql(
                    "DELETE FROM balance_checkpoints WHERE entitlement_id = "
                    + ("?" if uow.dialect == "sqlite" else "%s")
                    + " AND at = "
                    + ("?" if uow.dialect == "sqlite" else "%s"),
                    (entitlement_id, at),
                )
            uow.commit()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories, issue=st.none() | st.integers(1, 300))
def test_values_with_and_without_checkpoints_are_identical(
    database: Database, history: list[tuple[int, Step]], issue: int | None
) -> None:
    _clean(database)
    clock = SettableClock(START)
    context = ServiceContext(database=database, clock=clock)
    make_meter(context)
    make_feature(context)
    make_customer(context)
    entitlements.create_entitlement(
        context,
        ACME,
        metered(interval="DAY", anchor=START, issue_after_reset=issue, measure_usage_from=START),
    )
    live: list[str] = []
    for advance, step in history:
        clock.advance(timedelta(minutes=advance))
        _apply(context, clock, step, live)
        _check(context, clock)
        # A second process (empty caches) over the same database reads the same.
        other = ServiceContext(database=database, clock=clock, caches=ServiceCaches())
        _check(other, clock)
    # Every checkpoint the rules allow, then none at all: still the same values.
    _apply(context, clock, SaveCheckpoint(), live)
    maintenance.run_until_idle(context)
    _check(context, clock)
    with database.unit_of_work(write=True) as uow:
        uow.connection.exec_driver_sql("DELETE FROM balance_checkpoints")
        uow.commit()
    _check(context, clock)
    _check(ServiceContext(database=database, clock=clock), clock)


def _six_hours_in(database: Database) -> tuple[ServiceContext, SettableClock]:
    """A context six hours after START, with the tokens meter."""
    clock = SettableClock(START + timedelta(hours=6))
    context = ServiceContext(database=database, clock=clock)
    make_meter(context)
    return context, clock


def test_a_late_event_before_a_checkpoint_counts_at_once_and_after_compaction(
    database: Database,
) -> None:
    context, clock = _six_hours_in(database)
    make_feature(context)
    make_customer(context)
    entitlements.create_entitlement(
        context, ACME, metered(interval="DAY", anchor=START, issue_after_reset=1000)
    )
    send_usage(context, 100, START + timedelta(hours=1))
    assert entitlement_values.entitlement_value(context, ACME, "ai_tokens").balance == 900
    with database.unit_of_work() as uow:
        entitlement_id = uow.connection.exec_driver_sql("SELECT id FROM entitlements").scalar()
    assert maintenance.save_checkpoints(context, [entitlement_id]) == 1
    with database.unit_of_work() as uow:
        [at] = [
            row[0] for row in uow.connection.exec_driver_sql("SELECT at FROM balance_checkpoints")
        ]
    # The checkpoint sits five minutes back (the grace window) and holds the 100 used.
    assert at == int((START + timedelta(hours=5, minutes=55)).timestamp() * 1_000_000)
    # An event three hours late lands before the checkpoint: the very next read counts it.
    send_usage(context, 50, START + timedelta(hours=3))
    assert entitlement_values.entitlement_value(context, ACME, "ai_tokens").balance == 850
    # The checkpoint it invalidated goes: at once where ingest writes the roll-ups (SQLite),
    # when compaction folds the event in (PostgreSQL). Still 850.
    maintenance.run_until_idle(context)
    with database.unit_of_work() as uow:
        states = [
            uow.checkpoints.get(entitlement_id, at)
            for at in uow.checkpoints.at_or_before(entitlement_id, clock())
        ]
    # Any checkpoint left (maintenance may have saved a new one) counts the late event.
    assert all(state is not None and state.period_usage == 150 for state in states)
    assert entitlement_values.entitlement_value(context, ACME, "ai_tokens").balance == 850


def test_many_checkpoints_asked_at_once_are_saved_in_chunks_and_resumed_exactly(
    database: Database,
) -> None:
    # A customer's read of many features asks for all their checkpoints at once; maintenance
    # saves them a chunk per transaction, several customers mixed in one chunk.
    context, clock = _six_hours_in(database)
    count = maintenance.CHECKPOINT_CHUNK + 5
    for f in range(count):
        make_feature(context, f"f{f}")
    for who in ("acme", "beta"):
        make_customer(context, who, (who,))
        for f in range(count):
            entitlements.create_entitlement(
                context,
                CustomerOwner(who),
                metered(feature_key=f"f{f}", interval="DAY", anchor=START, issue_after_reset=1000),
            )
    send_usage(context, 100, START + timedelta(hours=1), subject="acme")
    send_usage(context, 7, START + timedelta(hours=2), subject="beta")
    before = {who: entitlement_values.customer_access(context, who) for who in ("acme", "beta")}
    with database.unit_of_work() as uow:
        ids = [row[0] for row in uow.connection.exec_driver_sql("SELECT id FROM entitlements")]
    assert len(ids) == 2 * count
    assert maintenance.save_checkpoints(context, ids) == 2 * count
    with database.unit_of_work() as uow:
        saved = uow.checkpoints.newest_of(ids)
    assert set(saved) == set(ids)
    # Reads now resume from them: the same values, and later usage still counts.
    send_usage(context, 1, START + timedelta(hours=5, minutes=59), subject="beta")
    fresh = ServiceContext(database=database, clock=clock, caches=ServiceCaches())
    for who, used in (("acme", 100), ("beta", 8)):
        values = entitlement_values.customer_access(fresh, who)
        assert {v.usage for v in values.values()} == {used}
        assert {v.balance for v in values.values()} == {1000 - used}
    assert before["acme"] == entitlement_values.customer_access(fresh, "acme")
