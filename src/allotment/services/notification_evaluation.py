"""When notifications fire: the evaluator, a maintenance step.

Writes that can change an entitlement's value queue it in their own transaction
(services/notification_queue.py). The evaluator (`evaluate_pending`; maintenance runs it when
ingest wakes it, and at least every maintenance interval) takes the queue, reads each affected
metered entitlement's value now, and writes the events of every rule that fires, one delivery
per channel, and the queue's removal in one short transaction. A crash before that commit
leaves the queue as it was, so nothing a write acknowledged is lost; the fired keys (per rule,
entitlement, period and threshold, in the database) make a second evaluator, another process or
a retry write nothing twice. Usage periods that ended since an entitlement was last evaluated
are evaluated too, which is how reset rules see the automatic period boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from allotment.domain.access import EntitlementValue
from allotment.domain.customers import Customer
from allotment.domain.entitlements import Entitlement
from allotment.domain.notifications import (
    Delivery,
    DeliveryState,
    Rule,
    RuleType,
    Threshold,
    newly_crossed,
)
from allotment.domain.subjects import Subject
from allotment.ids import new_id
from allotment.services.context import ServiceContext
from allotment.services.entitlement_owners import owner_keys
from allotment.services.entitlement_values import values_of_customers
from allotment.services.entitlements import EntitlementView
from allotment.services.entitlements import view_with_resets as view_of
from allotment.services.notification_payloads import PayloadRenderer, Snapshot, payload
from allotment.storage import UnitOfWork
from allotment.storage.repositories.outbox import NewEvent, Pending

PENDING_CHUNK = 20_000
"""Queued rows one evaluator round takes; it evaluates each entitlement once however often it
was queued. Ingest queues a row per subject per batch: a burst of 60,000 events in batches of
1,000 queues about 36,000 rows over 1,000 customers, which took seven rounds over nearly the
same customers at 5,000 rows a round, and takes two at this size. Below SQLite's usual bound
of 32,766 parameters a statement, since the subjects travel as one list."""
ENDED_CHUNK = 5_000
"""Entitlements whose usage period ended that one round evaluates."""
EVALUATOR_TURN = "notification-evaluator"
"""One evaluator at a time across processes: two would read the same queue and every value in
it twice (the fired keys kept that from notifying twice, not from costing twice)."""
RESET_KEY = "reset"
"""The fired key of a reset rule: once per rule, entitlement and new period."""


@dataclass
class EvaluationReport:
    evaluated: int = 0
    events: int = 0


@dataclass(frozen=True)
class _Firing:
    rule: Rule
    view: EntitlementView
    customer: Customer
    period_start: datetime
    keys: tuple[str, ...]
    """Marked fired; the first is the one notified (another evaluator marking it first wins)."""
    value: EntitlementValue
    threshold: Threshold | None


@dataclass
class _Plan:
    """What one round decided while reading, for one short write transaction to apply."""

    pending_ids: list[int]
    ended: list[str]
    evaluated: dict[str, set[str]] = field(default_factory=dict)
    """Entitlement -> the rules that watch it."""
    periods: list[tuple[str, str, datetime, datetime | None]] = field(default_factory=list)
    """Periods to record: only those that changed (most rounds re-evaluate the same period,
    and each write would hold SQLite's write lock, which ingest waits for, a little longer)."""
    unwatched: dict[str, set[str]] = field(default_factory=dict)
    """Entitlement -> rules whose recorded period is to go (they no longer watch it)."""
    firings: list[_Firing] = field(default_factory=list)


@dataclass(frozen=True)
class _Watched:
    """An entitlement some rule watches, as read in the first step of a round."""

    entitlement: Entitlement
    customer: Customer
    view: EntitlementView
    rules: tuple[Rule, ...]
    fired: dict[str, set[str]]
    """Rule id -> the keys fired in the current period."""
    periods: dict[str, tuple[datetime, datetime | None]]
    """Rule id -> the period recorded when the entitlement was last evaluated."""


def evaluate_pending(
    context: ServiceContext, render: PayloadRenderer, limit: int = PENDING_CHUNK
) -> EvaluationReport:
    """One round of the evaluator (see the module docstring).

    Definitions and values are read in one transaction (the definitions of every customer
    together, then usage in one statement per customer: a process's check-access cache would
    miss on most of them), and the outcome written in a short transaction,
    so the evaluation never holds SQLite's write lock (ingest's) for long. A change that lands
    in between is queued and evaluated in the next round; the fired keys keep a threshold that
    two rounds both saw crossed from being notified twice. While another process evaluates,
    this returns at once.
    """
    with context.database.turn(EVALUATOR_TURN) as mine:
        if not mine:
            return EvaluationReport()  # another process is at it: it takes the queue
        return _evaluate_round(context, render, limit)


def _evaluate_round(
    context: ServiceContext, render: PayloadRenderer, limit: int
) -> EvaluationReport:
    now = context.clock()
    with context.database.unit_of_work() as uow:
        pending = uow.outbox.take_pending(limit)
        ended = uow.outbox.ended_periods(now, ENDED_CHUNK)
        if not pending.ids and not ended:
            return EvaluationReport()
        watched = _watched(uow, pending, ended, now)
        by_customer = _by_customer(watched)
        values = values_of_customers(
            uow,
            [(group[0].customer, [item.entitlement for item in group]) for group in by_customer],
            now,
        )
    plan = _Plan(pending_ids=pending.ids, ended=ended)
    for group in by_customer:
        for item in group:
            _plan_entitlement(plan, item, values[item.customer.id][item.entitlement.id])
    report = EvaluationReport(evaluated=len(plan.evaluated))
    with context.database.unit_of_work(write=True) as uow:
        for entitlement_id in plan.unwatched:
            uow.outbox.forget_periods([entitlement_id], keep_rules=plan.evaluated[entitlement_id])
        # Ended, deleted or no longer metered: nothing to watch any more.
        uow.outbox.forget_periods(sorted(set(plan.ended) - set(plan.evaluated)))
        for rule_id, entitlement_id, start, end in plan.periods:
            uow.outbox.set_period(rule_id, entitlement_id, start, end)
        for firing in plan.firings:
            entitlement_id = firing.view.entitlement.id
            if uow.outbox.mark_fired(
                firing.rule.id, entitlement_id, firing.period_start, firing.keys
            ):
                emit(uow, render, firing.rule, _snapshot(uow, firing), now)
                report.events += 1
        uow.outbox.done(plan.pending_ids)
        uow.commit()
    if report.events:
        context.caches.wake_sender()
    return report


def _watched(
    uow: UnitOfWork, pending: Pending, ended: Sequence[str], now: datetime
) -> list[_Watched]:
    """The live metered entitlements, active now, of the queued subjects' customers, the queued
    ids and the ended periods, that an active rule watches; a few queries for all of them."""
    rules = uow.notifications.active_rules()
    if not rules:
        return []
    by_subject = uow.events.customers_by_subject(sorted(pending.subject_keys))
    entitlements = uow.entitlements.metered_active(
        sorted(set(by_subject.values())), sorted(set(pending.entitlement_ids) | set(ended)), now
    )
    customers = uow.customers.get_many({e.customer_id for e in entitlements})
    resets = uow.entitlements.resets_of([e.id for e in entitlements])
    fired = uow.outbox.fired_of([e.id for e in entitlements])
    periods = uow.outbox.periods_of([e.id for e in entitlements])
    watched = []
    for entitlement in entitlements:
        customer = customers.get(entitlement.customer_id)
        applicable = tuple(rule for rule in rules if rule.applies_to(entitlement.feature_id))
        if customer is None or customer.is_deleted or not applicable:
            continue
        view = view_of(entitlement, owner_keys(customer), resets[entitlement.id], now)
        period = view.current_usage_period
        assert period is not None  # metered
        keys = {
            rule.id: fired.get((rule.id, entitlement.id, period.start), set())
            for rule in applicable
        }
        recorded = periods.get(entitlement.id, {})
        watched.append(_Watched(entitlement, customer, view, applicable, keys, recorded))
    return watched


def _by_customer(watched: Sequence[_Watched]) -> list[list[_Watched]]:
    grouped: dict[str, list[_Watched]] = {}
    for item in watched:
        grouped.setdefault(item.customer.id, []).append(item)
    return list(grouped.values())


def _plan_entitlement(plan: _Plan, item: _Watched, value: EntitlementValue) -> None:
    entitlement = item.entitlement
    period = item.view.current_usage_period
    assert period is not None  # metered
    rule_ids = {rule.id for rule in item.rules}
    plan.evaluated[entitlement.id] = rule_ids
    if unwatched := set(item.periods) - rule_ids:
        plan.unwatched[entitlement.id] = unwatched
    for rule in item.rules:
        if item.periods.get(rule.id) != (period.start, period.end):
            plan.periods.append((rule.id, entitlement.id, period.start, period.end))
        firing = _firing(rule, item, period.start, value)
        if firing is not None:
            plan.firings.append(firing)


def _firing(
    rule: Rule, item: _Watched, period_start: datetime, value: EntitlementValue
) -> _Firing | None:
    fired = item.fired[rule.id]
    if rule.type is RuleType.BALANCE_THRESHOLD:
        chosen, fresh = newly_crossed(rule.thresholds, value, fired)
        if chosen is None:
            return None
        keys = (chosen.key, *(t.key for t in fresh if t.key != chosen.key))
        return _Firing(rule, item.view, item.customer, period_start, keys, value, chosen)
    # A reset rule: the current period began with a reset (automatic or manual) after the rule
    # existed. The first period of an entitlement is no reset.
    first = item.entitlement.measure_usage_from
    if first is None or period_start <= first or period_start < rule.created_at:
        return None
    if RESET_KEY in fired:
        return None
    return _Firing(rule, item.view, item.customer, period_start, (RESET_KEY,), value, None)


def _snapshot(uow: UnitOfWork, firing: _Firing) -> Snapshot:
    entitlement = firing.view.entitlement
    feature = uow.features.get(entitlement.feature_id)
    assert feature is not None  # entitlements reference their feature
    return Snapshot(
        view=firing.view,
        feature=feature,
        customer=firing.customer,
        subject=subject_of(uow, firing.customer),
        value=firing.value,
        threshold=firing.threshold,
    )


def subject_of(uow: UnitOfWork, customer: Customer) -> Subject:
    """The subject v1 shows the entitlement under; one made up from the customer when no
    subject record exists (events may name subjects nobody registered)."""
    key = owner_keys(customer).subject_key
    found = uow.subjects.get_live_by_key(key) if key else None
    if found is not None:
        return found
    return Subject(
        id=customer.id,
        key=key,
        display_name=customer.name,
        metadata=None,
        current_period_start=None,
        current_period_end=None,
        stripe_customer_id=None,
        created_at=customer.created_at,
        updated_at=customer.updated_at,
    )


def emit(
    uow: UnitOfWork,
    render: PayloadRenderer,
    rule: Rule,
    snapshot: Snapshot,
    now: datetime,
    *,
    is_test: bool = False,
) -> str:
    """Writes the event and one pending delivery per active channel of the rule; the id."""
    event_id = new_id()
    entitlement = snapshot.view.entitlement
    channels = uow.notifications.channels(rule.channel_ids)
    deliveries = [
        Delivery(
            event_id=event_id,
            channel_id=channel_id,
            message_id=f"msg_{new_id()}",
            state=DeliveryState.PENDING,
            reason="",
            attempt_count=0,
            attempts=(),
            next_attempt_at=now,
            updated_at=now,
        )
        for channel_id in rule.channel_ids
        if channel_id in channels and channels[channel_id].is_active
    ]
    uow.outbox.add_event(
        NewEvent(
            id=event_id,
            type=rule.type,
            rule_id=rule.id,
            entitlement_id=entitlement.id,
            feature_id=snapshot.feature.id,
            feature_key=snapshot.feature.key,
            subject_key=snapshot.subject.key,
            payload=payload(render, event_id, rule.type, now, snapshot),
            is_test=is_test,
            created_at=now,
        ),
        deliveries,
    )
    return event_id
