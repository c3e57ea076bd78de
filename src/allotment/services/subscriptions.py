"""Subscriptions: create, read, list, change (upgrade or downgrade), cancel, undo a cancel.

Each use case is one transaction, and the entitlements follow the subscription inside it: a
create makes every templated entitlement of every phase (each with its phase's window) through
the entitlement create rules (`subscription_items.materialise`); a change or cancel moves the
end of the entitlements it cuts, and a change starts the next plan's at the same instant.

Better than OpenMeter (its issue #3293, discussion #4394):

- A change keeps the usage already counted this period for every feature that stays metered:
  the next entitlement measures usage from the start of the old one's current usage period (a
  change at a period boundary therefore starts at zero). 800 used of Free's 1,000, then Pro's
  10,000,000: 9,999,200 left, not a reset.
- Top-ups survive a change: the old entitlement's grants other than its `issueAfterReset` grant
  that have not expired by the change are copied to the next one, as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from allotment.domain.customers import Customer
from allotment.domain.features import Feature
from allotment.domain.grant_requests import with_prefix
from allotment.domain.instants import checked_instant
from allotment.domain.listing import ListResult, SortOrder, Window
from allotment.domain.plans import (
    PlanStatus,
    PlanTerms,
    RateCard,
    check_terms,
)
from allotment.domain.subscriptions import (
    SUBSCRIPTION_FIELD,
    PlanReference,
    Subscription,
    SubscriptionItem,
    SubscriptionStatus,
    Timing,
    TimingPreset,
    normalised_anchor,
    resolve_timing,
    starting_phase_terms,
)
from allotment.domain.text import UNSTORABLE_TEXT, is_storable_document, is_storable_text
from allotment.errors import Conflict, ErrorList, InvalidInput, NotFound
from allotment.ids import is_ulid, new_id
from allotment.services import idempotency
from allotment.services.context import ServiceContext
from allotment.services.customers import resolve_customer
from allotment.services.entitlements import EntitlementView, views_of
from allotment.services.plans import check_features, resolve_plan
from allotment.services.subscription_items import end_at, materialise, restore
from allotment.storage import UnitOfWork


@dataclass(frozen=True)
class PlanChoice:
    """A published plan by key (and version), or a custom plan's terms."""

    plan_key: str | None = None
    plan_version: int | None = None
    custom: PlanTerms | None = None


@dataclass(frozen=True)
class SubscriptionRequest:
    plan: PlanChoice
    customer_id: str | None = None
    customer_key: str | None = None
    timing: Timing = TimingPreset.IMMEDIATE
    billing_anchor: datetime | None = None
    name: str | None = None
    description: str | None = None
    metadata: Mapping[str, str] | None = None
    starting_phase: str | None = None


@dataclass(frozen=True)
class ChangeRequest:
    plan: PlanChoice
    timing: Timing
    billing_anchor: datetime | None = None
    name: str | None = None
    description: str | None = None
    metadata: Mapping[str, str] | None = None
    starting_phase: str | None = None


@dataclass(frozen=True)
class ItemView:
    item: SubscriptionItem
    card: RateCard
    feature: Feature | None
    entitlement: EntitlementView | None


@dataclass(frozen=True)
class SubscriptionView:
    subscription: Subscription
    items: Sequence[ItemView]


@dataclass(frozen=True)
class ChangeResult:
    current: Subscription
    next: SubscriptionView


def create_subscription(
    context: ServiceContext,
    request: SubscriptionRequest,
    idempotency_claim: idempotency.IdempotencyClaim[SubscriptionView] | None = None,
) -> SubscriptionView:
    """Subscribes a customer from now (or a later time) and creates the entitlements. Raises
    NotFound for an unknown customer or plan, InvalidInput for a plan that is not active or a
    custom plan that breaks a rule, Conflict when the customer has a subscription then, or an
    entitlement of its own for one of the plan's features."""
    _check_request(request)
    now = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        idempotency.check(uow, idempotency_claim, now)
        customer = _customer(uow, request)
        terms, plan = _terms(uow, request.plan, now)
        terms = starting_phase_terms(terms, request.starting_phase)
        start = resolve_timing(request.timing, now, None)
        uow.subscriptions.lock_customer(customer.id)
        for other in uow.subscriptions.of_customer(customer.id):
            if other.active_to is None or other.active_to > start:
                raise Conflict(
                    f"customer {customer.id} already has subscription {other.id} then; change "
                    "it instead",
                    field="customerId" if request.customer_id else "customerKey",
                    conflicting_entity_id=other.id,
                )
        subscription = _new_subscription(
            customer.id, terms, plan, start, now, request.billing_anchor or start, request
        )
        uow.subscriptions.add(subscription)
        materialise(uow, customer, subscription, now, {})
        view = _view(uow, subscription, now)
        idempotency.remember(uow, idempotency_claim, view, now)
        uow.commit()
    return view


def change_subscription(
    context: ServiceContext,
    subscription_id: str,
    request: ChangeRequest,
    idempotency_claim: idempotency.IdempotencyClaim[ChangeResult] | None = None,
) -> ChangeResult:
    """Ends the subscription at the timing's instant and starts the new plan's there, with the
    same billing anchor unless one is given. Usage this period and top-ups carry over."""
    _check_request(request)
    now = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        idempotency.check(uow, idempotency_claim, now)
        current = _require(uow, subscription_id)
        customer = resolve_customer(uow, current.customer_id, include_deleted=True)
        uow.subscriptions.lock_customer(customer.id)
        current = _require(uow, subscription_id)
        status = current.status(now)
        if status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELED):
            raise Conflict(
                f"subscription {current.id} is {status.value}; only a running one can change",
                field=SUBSCRIPTION_FIELD,
            )
        at = resolve_timing(request.timing, now, current.billing)
        # At its very end is allowed: a change scheduled there is replaced by this one.
        if current.active_to is not None and at > current.active_to:
            raise InvalidInput(
                f"subscription {current.id} ends at {current.active_to.isoformat()}, before "
                "the change would take effect",
                field="timing",
            )
        terms, plan = _terms(uow, request.plan, now)
        terms = starting_phase_terms(terms, request.starting_phase)
        _cancel_successors(uow, current, now)
        cut = end_at(uow, current, at, now)
        anchor = request.billing_anchor or current.billing_anchor
        following = _new_subscription(customer.id, terms, plan, at, now, anchor, request)
        uow.subscriptions.add(following)
        materialise(uow, customer, following, now, cut)
        ended = replace(current, active_to=at, updated_at=now)
        result = ChangeResult(ended, _view(uow, following, now))
        idempotency.remember(uow, idempotency_claim, result, now)
        uow.commit()
    return result


def cancel_subscription(
    context: ServiceContext, subscription_id: str, timing: Timing = TimingPreset.IMMEDIATE
) -> Subscription:
    """Ends the subscription (and its entitlements) at the timing's instant; a change scheduled
    after it is cancelled with it. A scheduled subscription cancelled before it starts never
    starts."""
    if isinstance(timing, datetime):
        checked_instant(timing, "timing")
    now = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        subscription = _require(uow, subscription_id)
        uow.subscriptions.lock_customer(subscription.customer_id)
        subscription = _require(uow, subscription_id)
        if subscription.status(now) is SubscriptionStatus.INACTIVE:
            raise Conflict(
                f"subscription {subscription.id} has already ended", field=SUBSCRIPTION_FIELD
            )
        at = max(resolve_timing(timing, now, subscription.billing), subscription.active_from)
        if subscription.active_to is not None and at > subscription.active_to:
            raise InvalidInput(
                f"subscription {subscription.id} already ends at "
                f"{subscription.active_to.isoformat()}",
                field="timing",
            )
        _cancel_successors(uow, subscription, now)
        end_at(uow, subscription, at, now)
        uow.commit()
    return replace(subscription, active_to=at, updated_at=now)


def unschedule_cancelation(context: ServiceContext, subscription_id: str) -> Subscription:
    """Undoes a cancel that has not taken effect: the subscription and its entitlements run
    as their plan says again. Conflict when it is not cancelled, or a change follows it."""
    now = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        subscription = _require(uow, subscription_id)
        uow.subscriptions.lock_customer(subscription.customer_id)
        subscription = _require(uow, subscription_id)
        end = subscription.active_to
        if end is None or end <= now or end == subscription.natural_end:
            raise Conflict(
                f"subscription {subscription.id} has no cancelation to undo",
                field=SUBSCRIPTION_FIELD,
            )
        for other in uow.subscriptions.of_customer(subscription.customer_id):
            if other.id != subscription.id and other.active_from >= end:
                raise Conflict(
                    f"subscription {other.id} follows it from {end.isoformat()} (a change); "
                    "cancel that one instead",
                    field=SUBSCRIPTION_FIELD,
                    conflicting_entity_id=other.id,
                )
        restored = replace(subscription, active_to=subscription.natural_end, updated_at=now)
        uow.subscriptions.set_active_to(subscription.id, restored.active_to, now)
        restore(uow, restored, now)
        uow.commit()
    return restored


def get_subscription(context: ServiceContext, subscription_id: str) -> SubscriptionView:
    now = context.clock()
    with context.database.unit_of_work() as uow:
        return _view(uow, _require(uow, subscription_id), now)


def list_customer_subscriptions(
    context: ServiceContext,
    customer_id_or_key: str,
    *,
    statuses: Sequence[SubscriptionStatus] = (),
    window: Window | None = None,
    order: SortOrder = SortOrder.ASC,
    order_by: str = "activeFrom",
) -> ListResult[Subscription]:
    now = context.clock()
    with context.database.unit_of_work() as uow:
        customer = resolve_customer(uow, customer_id_or_key)
        return uow.subscriptions.search_customer(
            customer.id, now, statuses=statuses, order_by=order_by, order=order, window=window
        )


def current_subscription_ids(
    uow: UnitOfWork, customer_ids: Sequence[str], now: datetime
) -> dict[str, str]:
    """Each customer's subscription active now (customer responses show it)."""
    return uow.subscriptions.current_ids(customer_ids, now)


# -- helpers ----------------------------------------------------------------------------------


def _customer(uow: UnitOfWork, request: SubscriptionRequest) -> Customer:
    """customerId wins over customerKey, as in OpenMeter."""
    if request.customer_id is not None:
        wanted, field = request.customer_id, "customerId"
    elif request.customer_key is not None:
        wanted, field = request.customer_key, "customerKey"
    else:
        message = "either customerId or customerKey is required"
        raise InvalidInput(message, field="customerId")
    try:
        return resolve_customer(uow, wanted)
    except NotFound as error:
        raise NotFound(error.message, field=field) from error


def _terms(
    uow: UnitOfWork, choice: PlanChoice, now: datetime
) -> tuple[PlanTerms, PlanReference | None]:
    if choice.custom is not None:
        try:
            check_terms(choice.custom)
        except InvalidInput as error:
            raise with_prefix(error, "customPlan.") from error
        check_features(uow, choice.custom, prefix="customPlan.")
        return choice.custom, None
    assert choice.plan_key is not None
    plan = resolve_plan(uow, choice.plan_key, now, version=choice.plan_version, field="plan.key")
    status = plan.status(now)
    if status is not PlanStatus.ACTIVE:
        raise InvalidInput(
            f"plan '{plan.key}' version {plan.version} is {status.value}; only an active "
            "(published) plan takes subscriptions",
            field="plan.version" if choice.plan_version is not None else "plan.key",
        )
    check_features(uow, plan.terms)
    return plan.terms, PlanReference(plan.id, plan.key, plan.version)


def _check_request(request: SubscriptionRequest | ChangeRequest) -> None:
    errors = ErrorList()
    for name, value in (
        ("name", request.name),
        ("description", request.description),
        ("metadata", request.metadata),
        ("startingPhase", request.starting_phase),
    ):
        if value is not None and not is_storable_document(value):
            errors.add(name, UNSTORABLE_TEXT)
    for name, instant in (("billingAnchor", request.billing_anchor), ("timing", request.timing)):
        if isinstance(instant, datetime):
            with errors.collecting():
                checked_instant(instant, name)
    errors.raise_if_any("invalid subscription")


def _new_subscription(
    customer_id: str,
    terms: PlanTerms,
    plan: PlanReference | None,
    start: datetime,
    now: datetime,
    anchor: datetime,
    request: SubscriptionRequest | ChangeRequest,
) -> Subscription:
    subscription = Subscription(
        id=new_id(),
        customer_id=customer_id,
        name=request.name or terms.name,
        description=request.description or terms.description,
        metadata=request.metadata,
        plan=plan,
        terms=terms,
        phase_ids=tuple(new_id() for _ in terms.phases),
        billing_anchor=normalised_anchor(terms.billing_cadence, anchor, start),
        active_from=start,
        created_at=now,
        updated_at=now,
    )
    return replace(subscription, active_to=subscription.natural_end)


def _require(uow: UnitOfWork, subscription_id: str) -> Subscription:
    found = None
    if is_storable_text(subscription_id) and is_ulid(subscription_id):
        found = uow.subscriptions.get(subscription_id)
    if found is None or found.deleted_at is not None:
        raise NotFound(f"subscription not found: {subscription_id}", field=SUBSCRIPTION_FIELD)
    return found


def _cancel_successors(uow: UnitOfWork, subscription: Subscription, now: datetime) -> None:
    """A change scheduled after this subscription (its successor) goes when this one changes
    or is cancelled again: it would otherwise start regardless."""
    end = subscription.active_to
    if end is None:
        return
    for other in uow.subscriptions.of_customer(subscription.customer_id):
        if other.id != subscription.id and other.active_from >= end:
            end_at(uow, other, other.active_from, now)


def _view(uow: UnitOfWork, subscription: Subscription, now: datetime) -> SubscriptionView:
    items = uow.subscriptions.items_of(subscription.id)
    entitlements = [
        e
        for e in (uow.entitlements.get(i.entitlement_id) for i in items if i.entitlement_id)
        if e is not None
    ]
    views = {v.entitlement.id: v for v in views_of(uow, entitlements, now)}
    features: dict[str, Feature | None] = {}
    result = []
    for item in items:
        phase = subscription.terms.phases[item.phase_index]
        card = next(c for c in phase.rate_cards if c.key == item.rate_card_key)
        feature = None
        if card.feature_key is not None:
            if card.feature_key not in features:
                features[card.feature_key] = uow.features.get_by_key(
                    card.feature_key, include_archived=True
                )
            feature = features[card.feature_key]
        entitlement = views.get(item.entitlement_id) if item.entitlement_id else None
        result.append(ItemView(item, card, feature, entitlement))
    return SubscriptionView(subscription, result)
