"""Subjects: the keys usage events carry in `subject`, optionally enriched with a name and metadata.

Rules:
- A key names at most one live subject; a deleted subject's key may be used again.
- An upsert creates the subject when its key is new and otherwise changes only the fields it
  names (an explicit null clears a field); fields it does not name keep their values.
- `stripeCustomerId`, when set, starts with `cus_` (Stripe's customer id prefix).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from allotment.domain.text import UNSTORABLE_TEXT, is_storable_document, is_storable_text
from allotment.errors import ErrorList

KEY_MAX_LENGTH = 256
DISPLAY_NAME_MAX_LENGTH = 256
STRIPE_CUSTOMER_ID_MAX_LENGTH = 256
STRIPE_CUSTOMER_ID_PREFIX = "cus_"


class Unset(Enum):
    """Marks a field an upsert does not name (as opposed to naming it with null)."""

    UNSET = "unset"


UNSET = Unset.UNSET

V = TypeVar("V")


@dataclass(frozen=True)
class Subject:
    id: str
    key: str
    display_name: str | None
    metadata: Mapping[str, Any] | None
    current_period_start: datetime | None
    current_period_end: datetime | None
    stripe_customer_id: str | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass(frozen=True)
class SubjectUpsert:
    """One entry of an upsert; every field but `key` may be left UNSET."""

    key: str
    display_name: str | Unset | None = UNSET
    metadata: Mapping[str, Any] | Unset | None = UNSET
    current_period_start: datetime | Unset | None = UNSET
    current_period_end: datetime | Unset | None = UNSET
    stripe_customer_id: str | Unset | None = UNSET


def validate_subject_key(key: str, errors: ErrorList, field: str = "key") -> None:
    if not key:
        errors.add(field, "must not be empty")
    elif len(key) > KEY_MAX_LENGTH:
        errors.add(field, f"must be at most {KEY_MAX_LENGTH} characters")
    elif not is_storable_text(key):
        errors.add(field, UNSTORABLE_TEXT)


def validate_upsert(upsert: SubjectUpsert, errors: ErrorList, prefix: str = "") -> None:
    """Adds one error per bad field, each named `prefix` + wire field name."""
    validate_subject_key(upsert.key, errors, f"{prefix}key")
    name = upsert.display_name
    if isinstance(name, str):
        if len(name) > DISPLAY_NAME_MAX_LENGTH:
            errors.add(
                f"{prefix}displayName", f"must be at most {DISPLAY_NAME_MAX_LENGTH} characters"
            )
        elif not is_storable_text(name):
            errors.add(f"{prefix}displayName", UNSTORABLE_TEXT)
    stripe_id = upsert.stripe_customer_id
    if isinstance(stripe_id, str):
        if not stripe_id.startswith(STRIPE_CUSTOMER_ID_PREFIX):
            errors.add(
                f"{prefix}stripeCustomerId", f"must start with '{STRIPE_CUSTOMER_ID_PREFIX}'"
            )
        elif len(stripe_id) > STRIPE_CUSTOMER_ID_MAX_LENGTH:
            errors.add(
                f"{prefix}stripeCustomerId",
                f"must be at most {STRIPE_CUSTOMER_ID_MAX_LENGTH} characters",
            )
        elif not is_storable_text(stripe_id):
            errors.add(f"{prefix}stripeCustomerId", UNSTORABLE_TEXT)
    if not isinstance(upsert.metadata, Unset) and not is_storable_document(upsert.metadata):
        errors.add(f"{prefix}metadata", UNSTORABLE_TEXT)
    start, end = upsert.current_period_start, upsert.current_period_end
    if isinstance(start, datetime) and isinstance(end, datetime) and end < start:
        errors.add(f"{prefix}currentPeriodEnd", "must not be before currentPeriodStart")


def _given(value: V | Unset, current: V) -> V:
    return current if isinstance(value, Unset) else value


def new_subject(upsert: SubjectUpsert, *, subject_id: str, at: datetime) -> Subject:
    return Subject(
        id=subject_id,
        key=upsert.key,
        display_name=_given(upsert.display_name, None),
        metadata=_given(upsert.metadata, None),
        current_period_start=_given(upsert.current_period_start, None),
        current_period_end=_given(upsert.current_period_end, None),
        stripe_customer_id=_given(upsert.stripe_customer_id, None),
        created_at=at,
        updated_at=at,
    )


def apply_upsert(subject: Subject, upsert: SubjectUpsert, *, at: datetime) -> Subject:
    """The subject with the fields the upsert names replaced; the others untouched."""
    return replace(
        subject,
        display_name=_given(upsert.display_name, subject.display_name),
        metadata=_given(upsert.metadata, subject.metadata),
        current_period_start=_given(upsert.current_period_start, subject.current_period_start),
        current_period_end=_given(upsert.current_period_end, subject.current_period_end),
        stripe_customer_id=_given(upsert.stripe_customer_id, subject.stripe_customer_id),
        updated_at=at,
    )
