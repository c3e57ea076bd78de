"""Customers: create, list, read, replace, delete; and resolving subjects to customers.

The functions taking a `UnitOfWork` work inside the caller's transaction, for other use cases:
- `resolve_customer(uow, id_or_key)`: the customer a `{customerIdOrKey}` path names.
- `customer_for_subject(uow, subject_key)`: the live customer an event subject belongs to.
- `ensure_customer_for_subject(uow, subject_key, at)`: that customer, created on the fly when the
  subject has none (v1 subject-keyed entitlement routes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from allotment.domain.customers import (
    PROVISIONED_ANNOTATION,
    Customer,
    CustomerDetails,
    CustomerFilter,
    claims_of,
    details_for_subject,
    new_customer,
    normalised,
    replaced,
    validate_details,
)
from allotment.domain.listing import ListResult, Window
from allotment.domain.text import UNSTORABLE_TEXT, is_storable_text
from allotment.errors import Conflict, ErrorList, InvalidInput, NotFound, PreconditionFailed
from allotment.ids import is_ulid, new_id
from allotment.services.context import ServiceContext
from allotment.services.subjects import ensure_subjects
from allotment.storage import UnitOfWork


def create_customer(context: ServiceContext, details: CustomerDetails) -> Customer:
    """Creates the customer and a subject for each of its subject keys that has none."""
    details = normalised(details)
    validate_details(details)
    at = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        _check_attribution_is_free(uow, details, customer_id=None)
        customer = new_customer(details, customer_id=new_id(), at=at)
        uow.customers.add(customer)
        ensure_subjects(uow, customer.subject_keys, at)
        uow.commit()
    return customer


def list_customers(
    context: ServiceContext, criteria: CustomerFilter, window: Window
) -> ListResult[Customer]:
    errors = ErrorList()
    for name, value in (
        ("key", criteria.key),
        ("name", criteria.name),
        ("primaryEmail", criteria.primary_email),
        ("subject", criteria.subject),
    ):
        if value is not None and not is_storable_text(value):
            errors.add(name, UNSTORABLE_TEXT)
    errors.raise_if_any("invalid customer filter")
    now = context.clock()
    with context.database.unit_of_work() as uow:
        result = uow.customers.list_matching(criteria, window)
        return ListResult(with_subscriptions(uow, result.items, now), result.total_count)


def search_customers(context: ServiceContext, text: str, window: Window) -> ListResult[Customer]:
    """Live customers whose name, key, email or a subject key contains `text` (any case)."""
    text = text.strip()
    if not is_storable_text(text):
        raise InvalidInput(f"q {UNSTORABLE_TEXT}", field="q")
    with context.database.unit_of_work() as uow:
        return uow.customers.search_live(text, window)


def get_customer(context: ServiceContext, id_or_key: str) -> Customer:
    """A deleted customer is still readable by id (with `deleted_at`); keys name live ones."""
    now = context.clock()
    with context.database.unit_of_work() as uow:
        customer = resolve_customer(uow, id_or_key, include_deleted=True)
        return with_subscriptions(uow, [customer], now)[0]


def replace_customer(context: ServiceContext, id_or_key: str, details: CustomerDetails) -> Customer:
    """Full replace: fields left out are cleared. Subject keys dropped stop attributing usage."""
    details = normalised(details)
    validate_details(details)
    at = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        uow.customers.lock_attribution()
        current = resolve_customer(uow, id_or_key)
        _check_attribution_is_free(uow, details, customer_id=current.id)
        customer = replaced(current, details, at=at)
        uow.customers.replace(customer)
        ensure_subjects(uow, customer.subject_keys, at)
        if customer.attribution_keys != current.attribution_keys:
            # Another set of subjects: every past balance of its entitlements may differ.
            uow.checkpoints.delete_for_customer(customer.id)
        customer = with_subscriptions(uow, [customer], at)[0]
        uow.commit()
    return customer


def with_subscriptions(
    uow: UnitOfWork, customers: Sequence[Customer], now: datetime
) -> list[Customer]:
    """The customers with the id of the subscription each has now (`currentSubscriptionId`)."""
    current = uow.subscriptions.current_ids([c.id for c in customers], now)
    return [replace(c, current_subscription_id=current.get(c.id)) for c in customers]


def delete_customer(context: ServiceContext, id_or_key: str) -> None:
    """Soft delete, refused while the customer has entitlements or subscriptions that have not
    ended."""
    at = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        uow.customers.lock_attribution()
        customer = resolve_customer(uow, id_or_key, include_deleted=True)
        if customer.is_deleted:
            raise NotFound(f"customer {id_or_key} is already deleted", field="customerIdOrKey")
        active = uow.customers.active_entitlement_ids(customer.id, at)
        if active:
            raise Conflict(
                f"customer {id_or_key} has {len(active)} active entitlement(s); "
                "delete them before deleting the customer",
                conflicting_entity_id=active[0],
            )
        running = [
            s.id
            for s in uow.subscriptions.of_customer(customer.id)
            if s.active_to is None or s.active_to > at
        ]
        if running:
            raise Conflict(
                f"customer {id_or_key} has subscription {running[0]} that has not ended; "
                "cancel it before deleting the customer",
                conflicting_entity_id=running[0],
            )
        uow.customers.delete(customer.id, at)
        uow.commit()


def resolve_customer(uow: UnitOfWork, id_or_key: str, *, include_deleted: bool = False) -> Customer:
    """The customer with this id (tried first when it looks like a ULID) or live key.

    Raises NotFound when nothing matches, and PreconditionFailed when the id names a deleted
    customer (unless `include_deleted`), as OpenMeter answers 412 for deleted customers.
    """
    if is_storable_text(id_or_key):
        if is_ulid(id_or_key):
            by_id = uow.customers.get(id_or_key)
            if by_id is not None:
                if by_id.is_deleted and not include_deleted:
                    raise PreconditionFailed(
                        f"customer {id_or_key} is deleted", field="customerIdOrKey"
                    )
                return by_id
        by_key = uow.customers.get_live_by_key(id_or_key)
        if by_key is not None:
            return by_key
    raise NotFound(f"customer not found: {id_or_key}", field="customerIdOrKey")


def customer_for_subject(uow: UnitOfWork, subject_key: str) -> Customer | None:
    """The live customer whose key or one of whose subject keys is `subject_key`, if any."""
    if not is_storable_text(subject_key):
        return None
    return uow.customers.find_live_by_attribution(subject_key)


def ensure_customer_for_subject(uow: UnitOfWork, subject_key: str, at: datetime) -> Customer:
    """The subject's customer, created when it has none: key and name = the subject key,
    subject keys = [subject key] (and a subject record for it). Needs a write unit of work.

    A subject key that happens to be another customer's id cannot become a key (ids are looked
    up first), so that customer is created with the subject key only.
    """
    existing = customer_for_subject(uow, subject_key)
    if existing is not None:
        return existing
    uow.customers.lock_attribution()
    # Checked again under the lock: a concurrent writer may have created it meanwhile.
    existing = customer_for_subject(uow, subject_key)
    if existing is not None:
        return existing
    details = details_for_subject(subject_key)
    if uow.customers.existing_ids({subject_key}):
        details = replace(details, key=None)
    validate_details(details)
    customer = replace(
        new_customer(details, customer_id=new_id(), at=at),
        annotations={PROVISIONED_ANNOTATION: subject_key},
    )
    uow.customers.add(customer)
    ensure_subjects(uow, customer.subject_keys, at)
    return customer


def _check_attribution_is_free(
    uow: UnitOfWork, details: CustomerDetails, *, customer_id: str | None
) -> None:
    """Raises Conflict when another live customer holds the key or a subject key.

    Takes the attribution lock first, so the answer holds until this transaction ends.
    """
    uow.customers.lock_attribution()
    claims = uow.customers.live_claims(claims_of(details), excluding_customer_id=customer_id)
    # Report a clash of the key itself first: it is the field most likely mistyped.
    claims.sort(key=lambda claim: claim.value != details.key)
    for claim in claims:
        held_as = "a subject key" if claim.as_subject_key else "the key"
        field = "key" if claim.value == details.key else "usageAttribution.subjectKeys"
        raise Conflict(
            f"'{claim.value}' is already {held_as} of customer {claim.customer_id}",
            field=field,
            conflicting_entity_id=claim.customer_id,
        )
    if details.key is not None and uow.customers.existing_ids({details.key}) - {customer_id}:
        raise Conflict(
            f"key '{details.key}' is the id of another customer; ids are looked up first",
            field="key",
            conflicting_entity_id=details.key,
        )
