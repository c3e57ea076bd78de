"""When notifications fire: the evaluator, a maintenance step.

Writes that can change an entitlement's value queue it in their own transaction
(services/notification_queue.py). The evaluator (`evaluate_pending`; maintenance runs it when
ingest wakes it, and at least every maintenance interval) takes the queue, computes each
affected metered entitlement's value now, and writes the events of every rule that fires, with
one delivery per channel, in the same transaction that removes the queued items. A crash before
its commit leaves the queue as it was, so nothing a write acknowledged is lost; the
fired-threshold keys make a second evaluator (or a retry) write nothing twice. Usage periods
that ended since an entitlement was last evaluated are evaluated too, which is how reset rules
see the automatic period boundary.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from allotment.domain.access import EntitlementValue
from allotment.domain.customers import Customer
from allotment.domain.entitlements import Entitlement
from allotment.domain.notifications import (
    Delivery,
    DeliveryState,
    Rule,
    RuleType,
    newly_crossed,
)
from allotment.domain.subjects import Subject
from allotment.ids import new_id
from allotment.services.context import ServiceContext
from allotment.services.entitlement_owners import owner_keys
from allotment.services.entitlement_values import values_at
from allotment.services.entitlements import EntitlementView, view_of_entitlement
from allotment.services.notification_payloads import PayloadRenderer, Snapshot, payload
from allotment.storage import UnitOfWork
from allotment.storage.repositories.outbox import NewEvent

log = logging.getLogger(__name__)

PENDING_CHUNK = 500
"""Queued items one evaluator round takes."""
RESET_KEY = "reset"
"""The fired key of a reset rule: once per rule, entitlement and new period."""


@dataclass
class EvaluationReport:
    evaluated: int = 0
    events: int = 0


@dataclass(frozen=True)
class _Firing:
    rule: Rule
    entitlement_id: str
    period_start: datetime
    keys: tuple[str, ...]
    """Marked fired; the first is the one notified (another evaluator marking it first wins)."""
    snapshot: Snapshot


@dataclass
class _Plan:
    """What one round decided while reading, for one short write transaction to apply."""

    pending_ids: list[int]
    ended: list[str]
    evaluated: dict[str, set[str]] = field(default_factory=dict)
    """Entitlement -> the rules that watch it."""
    periods: list[tuple[str, str, datetime, datetime | None]] = field(default_factory=list)
    firings: list[_Firing] = field(default_factory=list)


def evaluate_pending(
    context: ServiceContext, render: PayloadRenderer, limit: int = PENDING_CHUNK
) -> EvaluationReport:
    """One round of the evaluator (see the module docstring).

    Values are computed in a read transaction and the outcome written in a short one, so the
    evaluation never holds SQLite's write lock (ingest's) for long. A change that lands in
    between is queued and evaluated in the next round; the fired keys keep a threshold that two
    rounds both saw crossed from being notified twice.
    """
    now = context.clock()
    with context.database.unit_of_work() as uow:
        plan = _plan(uow, now, limit)
    if plan is None:
        return EvaluationReport()
    report = EvaluationReport(evaluated=len(plan.evaluated))
    with context.database.unit_of_work(write=True) as uow:
        for entitlement_id, rule_ids in plan.evaluated.items():
            uow.outbox.forget_periods([entitlement_id], keep_rules=rule_ids)
        # Ended, deleted or no longer metered: nothing to watch any more.
        uow.outbox.forget_periods(sorted(set(plan.ended) - set(plan.evaluated)))
        for rule_id, entitlement_id, start, end in plan.periods:
            uow.outbox.set_period(rule_id, entitlement_id, start, end)
        for firing in plan.firings:
            if uow.outbox.mark_fired(
                firing.rule.id, firing.entitlement_id, firing.period_start, firing.keys
            ):
                emit(uow, render, firing.rule, firing.snapshot, now)
                report.events += 1
        uow.outbox.done(plan.pending_ids)
        uow.commit()
    if report.events:
        context.caches.wake_sender()
    return report


def _plan(uow: UnitOfWork, now: datetime, limit: int) -> _Plan | None:
    pending = uow.outbox.take_pending(limit)
    ended = uow.outbox.ended_periods(now, limit)
    if not pending.ids and not ended:
        return None
    plan = _Plan(pending_ids=pending.ids, ended=ended)
    rules = uow.notifications.active_rules()
    if not rules:
        return plan
    by_subject = uow.events.customers_by_subject(sorted(pending.subject_keys))
    wanted = set(pending.entitlement_ids) | set(ended)
    for customer, owned in _entitlements(uow, wanted, set(by_subject.values()), now):
        _plan_customer(uow, plan, rules, customer, owned, now)
    return plan


def _entitlements(
    uow: UnitOfWork, entitlement_ids: set[str], customer_ids: set[str], now: datetime
) -> list[tuple[Customer, list[Entitlement]]]:
    """Live metered entitlements active now, of the customers and by id, grouped by customer."""
    found: dict[str, Entitlement] = {}
    for customer_id in sorted(customer_ids):
        for entitlement in uow.entitlements.of_customer(customer_id):
            found[entitlement.id] = entitlement
    for entitlement_id in sorted(entitlement_ids - set(found)):
        by_id = uow.entitlements.get(entitlement_id)
        if by_id is not None:
            found[by_id.id] = by_id
    grouped: dict[str, list[Entitlement]] = {}
    for entitlement in found.values():
        if entitlement.is_metered and entitlement.active_at(now):
            grouped.setdefault(entitlement.customer_id, []).append(entitlement)
    result = []
    for customer_id, owned in sorted(grouped.items()):
        customer = uow.customers.get(customer_id)
        if customer is not None and not customer.is_deleted:
            result.append((customer, sorted(owned, key=lambda e: e.id)))
    return result


def _plan_customer(
    uow: UnitOfWork,
    plan: _Plan,
    rules: Sequence[Rule],
    customer: Customer,
    entitlements: Sequence[Entitlement],
    now: datetime,
) -> None:
    values = values_at(uow, customer, entitlements, now)
    features = uow.features.get_many([e.feature_id for e in entitlements])
    subject = subject_of(uow, customer)
    for entitlement in entitlements:
        view = view_of_entitlement(uow, entitlement, customer, now)
        period = view.current_usage_period
        assert period is not None  # metered
        value = values[entitlement.id]
        applicable = [rule for rule in rules if rule.applies_to(entitlement.feature_id)]
        plan.evaluated[entitlement.id] = {rule.id for rule in applicable}
        snapshot = Snapshot(view, features[entitlement.feature_id], customer, subject, value)
        for rule in applicable:
            plan.periods.append((rule.id, entitlement.id, period.start, period.end))
            fired = uow.outbox.fired(rule.id, entitlement.id, period.start)
            firing = _firing(rule, view, period.start, value, fired, snapshot)
            if firing is not None:
                plan.firings.append(firing)


def _firing(
    rule: Rule,
    view: EntitlementView,
    period_start: datetime,
    value: EntitlementValue,
    fired: set[str],
    snapshot: Snapshot,
) -> _Firing | None:
    entitlement = view.entitlement
    if rule.type is RuleType.BALANCE_THRESHOLD:
        chosen, fresh = newly_crossed(rule.thresholds, value, fired)
        if chosen is None:
            return None
        keys = (chosen.key, *(t.key for t in fresh if t.key != chosen.key))
        return _Firing(
            rule, entitlement.id, period_start, keys, replace(snapshot, threshold=chosen)
        )
    # A reset rule: the current period began with a reset (automatic or manual) after the rule
    # existed. The first period of an entitlement is no reset.
    first = entitlement.measure_usage_from
    if first is None or period_start <= first or period_start < rule.created_at:
        return None
    if RESET_KEY in fired:
        return None
    return _Firing(rule, entitlement.id, period_start, (RESET_KEY,), snapshot)


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
