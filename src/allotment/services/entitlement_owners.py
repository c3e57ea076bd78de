"""Who an entitlement request is about, and which entitlement it names.

Entitlements belong to customers. The v2 paths name the customer (`{customerIdOrKey}`); the v1
paths name a subject (`{subjectIdOrKey}`), which maps to the customer whose key or subject keys
hold it. Creating an entitlement for a subject that has no customer yet creates one on the fly
(key = name = the subject key), as OpenMeter does; reads never create anything.

`{entitlementIdOrFeatureKey}` shaped like a ULID is an entitlement id of that customer (no
feature key has that shape); anything else is a feature key: for a read at time t the entitlement
active at t (so a deleted entitlement still answers for earlier times), for a write the live one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from allotment.domain.customers import Customer
from allotment.domain.entitlements import Entitlement, OwnerKeys
from allotment.domain.text import is_storable_text
from allotment.errors import InvalidInput, NotFound
from allotment.ids import is_ulid
from allotment.services.customers import (
    customer_for_subject,
    ensure_customer_for_subject,
    resolve_customer,
)
from allotment.services.subjects import find_subject
from allotment.storage import UnitOfWork

ENTITLEMENT_FIELD = "entitlementIdOrFeatureKey"


@dataclass(frozen=True)
class CustomerOwner:
    """`/api/v2/customers/{customerIdOrKey}/...` and the v1 customer routes."""

    customer_id_or_key: str


@dataclass(frozen=True)
class SubjectOwner:
    """`/api/v1/subjects/{subjectIdOrKey}/...`."""

    subject_id_or_key: str


Owner = CustomerOwner | SubjectOwner


def owner_keys(customer: Customer) -> OwnerKeys:
    return OwnerKeys(customer.id, customer.key, customer.subject_keys)


def find_owner(uow: UnitOfWork, owner: Owner) -> Customer | None:
    """The customer `owner` names; None for a known subject that has no customer yet.

    Raises NotFound for an unknown customer or a subject nobody has heard of, and
    PreconditionFailed for a deleted customer named by id.
    """
    if isinstance(owner, CustomerOwner):
        return resolve_customer(uow, owner.customer_id_or_key)
    subject_key = _subject_key(uow, owner)
    customer = customer_for_subject(uow, subject_key)
    if customer is None and find_subject(uow, subject_key) is None:
        raise NotFound(f"subject not found: {subject_key}", field="subjectIdOrKey")
    return customer


def require_owner(uow: UnitOfWork, owner: Owner) -> Customer:
    """`find_owner`, with NotFound for a subject that has no customer."""
    customer = find_owner(uow, owner)
    if customer is None:
        assert isinstance(owner, SubjectOwner)
        raise NotFound(
            f"subject {owner.subject_id_or_key} has no entitlements (it belongs to no customer)",
            field="subjectIdOrKey",
        )
    return customer


def provision_owner(uow: UnitOfWork, owner: Owner, at: datetime) -> Customer:
    """The owning customer, created on the fly for a subject that has none (write units)."""
    if isinstance(owner, CustomerOwner):
        return resolve_customer(uow, owner.customer_id_or_key)
    return ensure_customer_for_subject(uow, _subject_key(uow, owner), at)


def _subject_key(uow: UnitOfWork, owner: SubjectOwner) -> str:
    """The key a `{subjectIdOrKey}` stands for: a subject's id is replaced by its key."""
    value = owner.subject_id_or_key
    if not value or not is_storable_text(value):
        raise NotFound(f"subject not found: {value!r}", field="subjectIdOrKey")
    if is_ulid(value):
        subject = find_subject(uow, value)
        if subject is not None:
            return subject.key
    return value


def find_entitlement(
    uow: UnitOfWork,
    customer: Customer,
    id_or_feature_key: str,
    *,
    at: datetime | None,
    now: datetime | None = None,
) -> Entitlement | None:
    """The customer's entitlement with this id, or the one for this feature key: active at
    `at` for reads, the live (not deleted) one for writes (`at=None`), preferring the one active
    `now` (a subscription's entitlements follow one another)."""
    if not is_storable_text(id_or_feature_key):
        return None
    if is_ulid(id_or_feature_key):
        by_id = uow.entitlements.get(id_or_feature_key)
        return by_id if by_id is not None and by_id.customer_id == customer.id else None
    if at is None:
        return uow.entitlements.live_for_customer_feature(customer.id, id_or_feature_key, now)
    return uow.entitlements.for_customer_feature_at(customer.id, id_or_feature_key, at)


def resolve_entitlement(
    uow: UnitOfWork,
    customer: Customer,
    id_or_feature_key: str,
    *,
    at: datetime | None = None,
    now: datetime | None = None,
    field: str = ENTITLEMENT_FIELD,
) -> Entitlement:
    """`find_entitlement`, raising NotFound naming `field`."""
    entitlement = find_entitlement(uow, customer, id_or_feature_key, at=at, now=now)
    if entitlement is None:
        raise NotFound(f"entitlement not found: {id_or_feature_key}", field=field)
    return entitlement


def lock_entitlement(uow: UnitOfWork, entitlement: Entitlement) -> Entitlement:
    """Takes the entitlement's write lock and reads it again.

    Every write about an entitlement (grant, void, reset, delete, override) calls this before
    validating, so it validates against the state no other writer can change until commit.
    What was read before the lock may be stale (a concurrent delete, say).
    """
    uow.entitlements.lock(entitlement.id)
    current = uow.entitlements.get(entitlement.id)
    assert current is not None  # entitlements are never removed
    return current


def require_metered(entitlement: Entitlement, what_only_metered_do: str) -> None:
    """InvalidInput naming the path's entitlement unless it is metered; the message ends "only
    metered entitlements <what_only_metered_do>" (take grants, have usage to reset, ...)."""
    if not entitlement.is_metered:
        raise InvalidInput(
            f"entitlement {entitlement.id} is {entitlement.type.value}; only metered "
            f"entitlements {what_only_metered_do}",
            field=ENTITLEMENT_FIELD,
        )


def require_live(entitlement: Entitlement, consequence: str = "") -> None:
    """InvalidInput naming the path's entitlement when it is deleted (ended or overridden);
    `consequence`, when given, follows as "...is deleted; <consequence>"."""
    if entitlement.deleted_at is not None:
        suffix = f"; {consequence}" if consequence else ""
        raise InvalidInput(
            f"entitlement {entitlement.id} is deleted{suffix}", field=ENTITLEMENT_FIELD
        )
