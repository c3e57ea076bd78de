"""A subscription's items and the entitlements they stand for, inside the caller's unit.

`materialise` creates every phase's items, and an entitlement (through the entitlement create
rules, `entitlements.add_entitlement`) for each templated one, with its phase's window; usage
and top-ups of the entitlements the previous subscription ended at the start carry over.
`end_at` ends them at an instant; `restore` undoes that as far as the plan allows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from allotment.domain.customers import Customer
from allotment.domain.entitlement_requests import ISSUE_AFTER_RESET_ANNOTATION, check_request
from allotment.domain.entitlements import Entitlement
from allotment.domain.grant_requests import with_prefix
from allotment.domain.plans import RateCard, rate_card_field, template_request
from allotment.domain.subscriptions import SUBSCRIPTION_FIELD, Subscription, SubscriptionItem
from allotment.errors import Conflict, InvalidInput
from allotment.ids import new_id
from allotment.services.entitlements import add_entitlement
from allotment.storage import UnitOfWork

CARRIED_FROM_ANNOTATION = "carriedFromGrantId"
SUBSCRIPTION_ANNOTATION = "subscription.id"
"""On a subscription's entitlements, as OpenMeter annotates them."""


def materialise(
    uow: UnitOfWork,
    customer: Customer,
    subscription: Subscription,
    now: datetime,
    carried: Mapping[str, Entitlement],
) -> None:
    """Items and entitlements of every phase. `carried`: the entitlements the previous
    subscription ended at this one's start, by feature key (usage and top-ups carry over)."""
    before = dict(carried)
    for window in subscription.phase_windows():
        phase = subscription.terms.phases[window.index]
        for card_index, card in enumerate(phase.rate_cards):
            entitlement_id = None
            if card.entitlement_template is not None and not window.is_empty:
                assert card.feature_key is not None
                where = f"{rate_card_field(window.index, card_index)}.entitlementTemplate."
                previous = before.get(card.feature_key)
                if previous is not None and previous.ends_at != window.start:
                    previous = None
                entitlement = _entitlement_for(
                    uow,
                    customer,
                    subscription,
                    card,
                    window.start,
                    window.end,
                    previous,
                    now,
                    where,
                )
                entitlement_id = entitlement.id
                before[card.feature_key] = entitlement
            uow.subscriptions.add_item(
                SubscriptionItem(
                    id=new_id(),
                    subscription_id=subscription.id,
                    phase_index=window.index,
                    rate_card_key=card.key,
                    entitlement_id=entitlement_id,
                    active_from=window.start,
                    active_to=window.end,
                    created_at=now,
                    updated_at=now,
                )
            )


def _entitlement_for(
    uow: UnitOfWork,
    customer: Customer,
    subscription: Subscription,
    card: RateCard,
    start: datetime,
    end: datetime | None,
    previous: Entitlement | None,
    now: datetime,
    where: str,
) -> Entitlement:
    request = template_request(card, anchor=subscription.billing_anchor)
    carry = previous is not None and previous.is_metered and request.usage_period is not None
    if request.usage_period is not None:
        if carry:
            assert previous is not None
            timeline = previous.timeline(uow.entitlements.resets(previous.id))
            measure_from = timeline.current_period_at(start).start
        else:
            measure_from = start
        request = replace(request, measure_usage_from=measure_from)
    try:
        check_request(request)
    except InvalidInput as error:
        raise with_prefix(error, where) from error
    entitlement = add_entitlement(
        uow,
        customer,
        request,
        now,
        active_from=start,
        active_to=end,
        annotations={SUBSCRIPTION_ANNOTATION: subscription.id},
    )
    if carry:
        assert previous is not None
        _carry_grants(uow, previous, entitlement, start, now)
    return entitlement


def _carry_grants(
    uow: UnitOfWork, previous: Entitlement, entitlement: Entitlement, at: datetime, now: datetime
) -> None:
    for grant in uow.grants.for_entitlements([previous.id])[previous.id]:
        if grant.annotations.get(ISSUE_AFTER_RESET_ANNOTATION):
            continue
        if grant.voided_at is not None or grant.deleted_at is not None:
            continue
        if grant.expires_at is not None and grant.expires_at <= at:
            continue
        uow.grants.add(
            replace(
                grant,
                id=new_id(),
                entitlement_id=entitlement.id,
                created_at=now,
                updated_at=now,
                annotations={**grant.annotations, CARRIED_FROM_ANNOTATION: grant.id},
            )
        )


def end_at(
    uow: UnitOfWork, subscription: Subscription, at: datetime, now: datetime
) -> dict[str, Entitlement]:
    """Ends the subscription and its items at `at`; items that would start later never
    start. Returns the entitlements running up to `at`, by feature key."""
    uow.subscriptions.set_active_to(subscription.id, at, now)
    running: dict[str, Entitlement] = {}
    for item in uow.subscriptions.items_of(subscription.id):
        if item.active_from >= at:
            end = item.active_from
        elif item.active_to is None or item.active_to > at:
            end = at
        else:
            continue
        uow.subscriptions.set_item_active_to(item.id, end, now)
        if item.entitlement_id is None:
            continue
        uow.entitlements.lock(item.entitlement_id)
        entitlement = uow.entitlements.get(item.entitlement_id)
        if entitlement is None or entitlement.deleted_at is not None:
            continue
        uow.entitlements.set_active_to(entitlement.id, end, now)
        if end == at and entitlement.active_from < at:
            running[entitlement.feature_key] = replace(entitlement, active_to=at)
    return running


def restore(uow: UnitOfWork, subscription: Subscription, now: datetime) -> None:
    windows = {w.index: w for w in subscription.phase_windows()}
    for item in uow.subscriptions.items_of(subscription.id):
        end = windows[item.phase_index].end
        uow.subscriptions.set_item_active_to(item.id, end, now)
        if item.entitlement_id is None:
            continue
        uow.entitlements.lock(item.entitlement_id)
        entitlement = uow.entitlements.get(item.entitlement_id)
        if entitlement is None or entitlement.deleted_at is not None:
            continue
        clash = uow.entitlements.overlapping(
            entitlement.customer_id,
            entitlement.feature_key,
            entitlement.active_from,
            end,
            excluding=entitlement.id,
        )
        if clash is not None:
            raise Conflict(
                f"entitlement {clash.id} for '{entitlement.feature_key}' was created since the "
                "cancelation; delete it first",
                field=SUBSCRIPTION_FIELD,
                conflicting_entity_id=clash.id,
            )
        uow.entitlements.set_active_to(entitlement.id, end, now)
