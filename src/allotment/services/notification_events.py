"""Notification events: list, read, resend, and a rule's test event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from allotment.domain.instants import OUT_OF_RANGE, is_client_instant
from allotment.domain.listing import ListResult, Window
from allotment.domain.notifications import (
    DeliveryState,
    EventFilter,
    Rule,
    RuleType,
    StoredEvent,
)
from allotment.errors import ErrorList, NotFound, PreconditionFailed
from allotment.ids import is_ulid
from allotment.services.context import ServiceContext
from allotment.services.entitlement_values import values_at
from allotment.services.entitlements import view_of_entitlement
from allotment.services.notification_definitions import find_rule
from allotment.services.notification_evaluation import emit, subject_of
from allotment.services.notification_examples import example_snapshot
from allotment.services.notification_payloads import PayloadRenderer, Snapshot
from allotment.storage import UnitOfWork
from allotment.storage.repositories.outbox import EventRow

EVENT_FIELD = "eventId"


def list_events(
    context: ServiceContext, criteria: EventFilter, window: Window
) -> ListResult[StoredEvent]:
    errors = ErrorList()
    for instant, name in ((criteria.time_from, "from"), (criteria.time_to, "to")):
        if instant is not None and not is_client_instant(instant):
            errors.add(name, OUT_OF_RANGE)
    if criteria.time_from and criteria.time_to and criteria.time_to < criteria.time_from:
        errors.add("to", "must not be before from")
    errors.raise_if_any("invalid notification event query")
    with context.database.unit_of_work() as uow:
        rows, total = uow.outbox.list_events(criteria, window)
        return ListResult(items=_stored(uow, rows), total_count=total)


def get_event(context: ServiceContext, event_id: str) -> StoredEvent:
    with context.database.unit_of_work() as uow:
        return _stored(uow, [_event(uow, event_id)])[0]


def resend_event(context: ServiceContext, event_id: str, channel_ids: Sequence[str] = ()) -> None:
    """Sends the event again to its channels (or those of `channel_ids`), with the same
    `webhook-id` as before, whatever became of the earlier attempts."""
    now = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        event = _event(uow, event_id)
        deliveries = uow.outbox.deliveries_of([event.id])[event.id]
        known = {d.channel_id for d in deliveries}
        errors = ErrorList()
        for index, channel_id in enumerate(channel_ids):
            if channel_id not in known:
                errors.add(f"channels[{index}]", "the event was not sent to this channel")
        errors.raise_if_any("invalid resend")
        wanted = set(channel_ids) or known
        if not wanted:
            raise PreconditionFailed("the event has no channel to send to", field=EVENT_FIELD)
        for delivery in deliveries:
            if delivery.channel_id in wanted:
                uow.outbox.save_delivery(
                    replace(
                        delivery,
                        state=DeliveryState.RESENDING,
                        reason="resend requested",
                        attempt_count=0,
                        next_attempt_at=now,
                        updated_at=now,
                    )
                )
        uow.commit()
    context.caches.wake_sender()


def send_test_event(context: ServiceContext, rule_id: str, render: PayloadRenderer) -> StoredEvent:
    """A real event of the rule, marked as a test, delivered like any other: its payload is the
    present value of the newest live metered entitlement the rule covers (and, for threshold
    rules, its first threshold), or a made-up one when there is none."""
    now = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        rule = find_rule(uow, rule_id)
        if rule.deleted_at is not None:
            raise PreconditionFailed("the notification rule is deleted", field="ruleId")
        snapshot = _real_snapshot(uow, rule, now) or example_snapshot(rule, now)
        event_id = emit(uow, render, rule, snapshot, now, is_test=True)
        uow.commit()
    context.caches.wake_sender()
    return get_event(context, event_id)


def _real_snapshot(uow: UnitOfWork, rule: Rule, now: datetime) -> Snapshot | None:
    entitlement = uow.entitlements.newest_live_metered(
        None if rule.features is None else [f.id for f in rule.features], now
    )
    if entitlement is None:
        return None
    customer = uow.customers.get(entitlement.customer_id)
    feature = uow.features.get(entitlement.feature_id)
    assert customer is not None and feature is not None  # entitlements reference both
    return Snapshot(
        view=view_of_entitlement(uow, entitlement, customer, now),
        feature=feature,
        customer=customer,
        subject=subject_of(uow, customer),
        value=values_at(uow, customer, [entitlement], now)[entitlement.id],
        threshold=rule.thresholds[0] if rule.type is RuleType.BALANCE_THRESHOLD else None,
    )


def _event(uow: UnitOfWork, event_id: str) -> EventRow:
    event = uow.outbox.get_event(event_id) if is_ulid(event_id) else None
    if event is None:
        raise NotFound(f"notification event not found: {event_id}", field=EVENT_FIELD)
    return event


def _stored(uow: UnitOfWork, rows: Sequence[EventRow]) -> list[StoredEvent]:
    rules = uow.notifications.rules([row.rule_id for row in rows])
    deliveries = uow.outbox.deliveries_of([row.id for row in rows])
    return [
        StoredEvent(
            id=row.id,
            type=row.type,
            rule=rules[row.rule_id],
            created_at=row.created_at,
            payload=row.payload,
            is_test=row.is_test,
            deliveries=tuple(deliveries[row.id]),
        )
        for row in rows
    ]
