"""Customers: who usage and entitlements belong to.

Rules:
- A customer has a `key`, a non-empty `usageAttribution.subjectKeys`, or both.
- Its usage is that of the events whose `subject` is its key or one of its subject keys: its
  *attribution keys*.
- Attribution keys of live customers never overlap: a string is the key or a subject key of at
  most one live customer, so every event subject maps to at most one customer. (A customer may
  list its own key among its subject keys.) A key also may not be the id of another customer,
  because `{customerIdOrKey}` paths try the id first.
- A deleted customer frees its key and subject keys for others.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from allotment.domain.listing import SortOrder
from allotment.domain.subjects import validate_subject_key
from allotment.domain.text import UNSTORABLE_TEXT, is_storable_document, is_storable_text
from allotment.errors import ErrorList

KEY_MAX_LENGTH = 256
NAME_MAX_LENGTH = 256
DESCRIPTION_MAX_LENGTH = 1024
PRIMARY_EMAIL_MAX_LENGTH = 256
CURRENCY_PATTERN = r"^[A-Z]{3}$"
COUNTRY_PATTERN = r"^[A-Z]{2}$"

# Marks customers created on the fly for a subject that had none (see `details_for_subject`).
PROVISIONED_ANNOTATION = "allotment.provisionedFor"


@dataclass(frozen=True)
class Address:
    country: str | None = None
    postal_code: str | None = None
    state: str | None = None
    city: str | None = None
    line1: str | None = None
    line2: str | None = None
    phone_number: str | None = None

    def lines(self) -> dict[str, str | None]:
        """Every field by its wire name, for validation messages and storage."""
        return {
            "country": self.country,
            "postalCode": self.postal_code,
            "state": self.state,
            "city": self.city,
            "line1": self.line1,
            "line2": self.line2,
            "phoneNumber": self.phone_number,
        }


@dataclass(frozen=True)
class CustomerDetails:
    """Everything a client sets on a customer; create and full replace take the same."""

    name: str
    key: str | None = None
    subject_keys: tuple[str, ...] = ()
    description: str | None = None
    primary_email: str | None = None
    currency: str | None = None
    billing_address: Address | None = None
    metadata: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    key: str | None
    # Sorted: the table keeps a set, and a stable order makes responses comparable.
    subject_keys: tuple[str, ...]
    description: str | None
    primary_email: str | None
    currency: str | None
    billing_address: Address | None
    metadata: Mapping[str, str] | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
    annotations: Mapping[str, Any] | None = field(default=None)
    # Read-time: the subscription active now, filled in by the customer reads that show it.
    current_subscription_id: str | None = field(default=None, compare=False)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def attribution_keys(self) -> tuple[str, ...]:
        """The event subjects whose usage is this customer's: its key and subject keys, sorted."""
        return tuple(sorted(_attribution(self.key, self.subject_keys)))


def normalised(details: CustomerDetails) -> CustomerDetails:
    """Subject keys as a sorted set: repeating a key in the request means the same as once."""
    return replace(details, subject_keys=tuple(sorted(set(details.subject_keys))))


def validate_details(details: CustomerDetails) -> None:
    """Raises InvalidInput naming every bad field (wire names)."""
    errors = ErrorList()
    _check_text(errors, "name", details.name, NAME_MAX_LENGTH, required=True)
    _check_text(errors, "key", details.key, KEY_MAX_LENGTH, required=True)
    _check_text(errors, "description", details.description, DESCRIPTION_MAX_LENGTH)
    _check_text(errors, "primaryEmail", details.primary_email, PRIMARY_EMAIL_MAX_LENGTH)
    if details.key is None and not details.subject_keys:
        message = "either key or usageAttribution.subjectKeys must be provided"
        errors.add("key", message, code="required")
        errors.add("usageAttribution.subjectKeys", message, code="required")
    for index, subject_key in enumerate(details.subject_keys):
        validate_subject_key(subject_key, errors, f"usageAttribution.subjectKeys.{index}")
    if details.currency is not None and not re.match(CURRENCY_PATTERN, details.currency):
        errors.add("currency", "must be a three-letter ISO 4217 code in capitals, e.g. USD")
    if details.billing_address is not None:
        _check_address(errors, details.billing_address)
    if details.metadata is not None and not is_storable_document(details.metadata):
        errors.add("metadata", UNSTORABLE_TEXT)
    errors.raise_if_any("invalid customer")


def _check_text(
    errors: ErrorList, name: str, value: str | None, max_length: int, *, required: bool = False
) -> None:
    if value is None:
        return
    if required and not value:
        errors.add(name, "must not be empty")
    elif len(value) > max_length:
        errors.add(name, f"must be at most {max_length} characters")
    elif not is_storable_text(value):
        errors.add(name, UNSTORABLE_TEXT)


def _check_address(errors: ErrorList, address: Address) -> None:
    if address.country is not None and not re.match(COUNTRY_PATTERN, address.country):
        errors.add("billingAddress.country", "must be a two-letter ISO 3166-1 code, e.g. US")
    for name, value in address.lines().items():
        if value is not None and not is_storable_text(value):
            errors.add(f"billingAddress.{name}", UNSTORABLE_TEXT)


def new_customer(details: CustomerDetails, *, customer_id: str, at: datetime) -> Customer:
    return Customer(id=customer_id, created_at=at, updated_at=at, **_client_fields(details))


def replaced(customer: Customer, details: CustomerDetails, *, at: datetime) -> Customer:
    """Full replace: every client-set field takes the new value, absent ones become empty."""
    return replace(customer, updated_at=at, **_client_fields(details))


def _client_fields(details: CustomerDetails) -> dict[str, Any]:
    """Every field a client sets, by name: the fields of `CustomerDetails`, which `Customer`
    shares."""
    return {each.name: getattr(details, each.name) for each in fields(CustomerDetails)}


def details_for_subject(subject_key: str) -> CustomerDetails:
    """The customer created on the fly when a subject with no customer gets an entitlement."""
    return CustomerDetails(name=subject_key, key=subject_key, subject_keys=(subject_key,))


def claims_of(details: CustomerDetails) -> frozenset[str]:
    """The attribution keys a customer with these details would hold."""
    return frozenset(_attribution(details.key, details.subject_keys))


def _attribution(key: str | None, subject_keys: tuple[str, ...]) -> set[str]:
    """A customer's attribution keys: its subject keys, and its key when it has one."""
    return set(subject_keys) | ({key} if key is not None else set())


class CustomerOrderBy(StrEnum):
    ID = "id"
    NAME = "name"
    CREATED_AT = "createdAt"


@dataclass(frozen=True)
class CustomerFilter:
    """List filters; text filters are case-insensitive "contains" matches."""

    key: str | None = None
    name: str | None = None
    primary_email: str | None = None
    subject: str | None = None
    # Plans are out of scope, so no customer is on one: filtering by plan finds nobody.
    plan_key: str | None = None
    include_deleted: bool = False
    order_by: CustomerOrderBy = CustomerOrderBy.NAME
    order: SortOrder = SortOrder.ASC
