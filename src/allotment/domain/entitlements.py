"""Entitlements and stored grants as records: what the database holds, in domain terms.

The engine (`burn.py`, `access.py`) works on `grants.Grant` and `usage_periods.UsagePeriodTimeline`;
these records carry everything else the API shows (metadata, expiration as requested, deletion)
and know how to turn themselves into the engine's inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from allotment.domain.grants import Grant
from allotment.domain.periods import Expiration, Recurrence
from allotment.domain.usage_periods import ManualReset, UsagePeriodTimeline
from allotment.errors import Conflict


class EntitlementType(StrEnum):
    METERED = "metered"
    STATIC = "static"
    BOOLEAN = "boolean"


@dataclass(frozen=True)
class Entitlement:
    """One entitlement of one customer to one feature.

    Active on `[active_from, ends_at)`, where `ends_at` is the earlier of `active_to` and
    `deleted_at`: deleting ends an entitlement but keeps it for history and past reads.
    Metered-only fields are None (or False) for boolean and static entitlements.
    """

    id: str
    type: EntitlementType
    customer_id: str
    feature_id: str
    feature_key: str
    active_from: datetime
    created_at: datetime
    updated_at: datetime
    usage_period: Recurrence | None = None
    measure_usage_from: datetime | None = None
    is_soft_limit: bool = False
    issue_after_reset: Decimal | None = None
    issue_after_reset_priority: int | None = None
    preserve_overage_at_reset: bool = False
    config: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    active_to: datetime | None = None
    deleted_at: datetime | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    """Set by Allotment, never by clients: `subscription.id` names the subscription that
    created it, as OpenMeter annotates a subscription's entitlements."""

    @property
    def ends_at(self) -> datetime | None:
        ends = [t for t in (self.active_to, self.deleted_at) if t is not None]
        return min(ends) if ends else None

    def active_at(self, t: datetime) -> bool:
        end = self.ends_at
        return self.active_from <= t and (end is None or t < end)

    @property
    def is_metered(self) -> bool:
        return self.type is EntitlementType.METERED

    def timeline(self, resets: Sequence[ManualReset]) -> UsagePeriodTimeline:
        """The usage-period timeline of a metered entitlement, given its manual resets."""
        if self.usage_period is None or self.measure_usage_from is None:
            raise ValueError(f"entitlement {self.id} is not metered")
        return UsagePeriodTimeline(
            measure_usage_from=self.measure_usage_from,
            recurrence=self.usage_period,
            manual_resets=tuple(resets),
        )


@dataclass(frozen=True)
class GrantRecord:
    """A grant as stored and shown: the engine's `Grant` plus what only the API needs."""

    id: str
    entitlement_id: str
    amount: Decimal
    priority: int
    effective_at: datetime
    min_rollover_amount: Decimal
    max_rollover_amount: Decimal
    created_at: datetime
    updated_at: datetime
    expiration: Expiration | None = None
    expires_at: datetime | None = None
    recurrence: Recurrence | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, Any] = field(default_factory=dict)
    voided_at: datetime | None = None
    deleted_at: datetime | None = None

    def to_engine(self) -> Grant:
        """Deleting a grant (with its entitlement) ends it like a void does."""
        ends = [t for t in (self.voided_at, self.deleted_at) if t is not None]
        return Grant(
            id=self.id,
            amount=self.amount,
            priority=self.priority,
            effective_at=self.effective_at,
            created_at=self.created_at,
            expires_at=self.expires_at,
            voided_at=min(ends) if ends else None,
            min_rollover_amount=self.min_rollover_amount,
            max_rollover_amount=self.max_rollover_amount,
            recurrence=self.recurrence,
        )


@dataclass(frozen=True)
class OwnerKeys:
    """Who owns an entitlement, as responses show it: the customer's id and key, and the
    subject keys v1 responses pick their `subjectKey` from."""

    customer_id: str
    customer_key: str | None
    subject_keys: tuple[str, ...]

    @property
    def subject_key(self) -> str:
        """v1 `subjectKey`: the lexicographically first subject key; a customer with none
        falls back to its key (which attributes usage too), then to ""."""
        if self.subject_keys:
            return min(self.subject_keys)
        return self.customer_key or ""


def already_entitled(feature_key: str, existing_id: str) -> Conflict:
    """One live entitlement per customer and feature key: the error a second one gets, whether
    the service sees the first one or the database's unique index refuses the insert."""
    return Conflict(
        f"customer already has an active entitlement for feature '{feature_key}': {existing_id}",
        field="featureKey",
        conflicting_entity_id=existing_id,
    )


class EntitlementOrderBy(StrEnum):
    CREATED_AT = "createdAt"
    UPDATED_AT = "updatedAt"


@dataclass(frozen=True)
class EntitlementFilter:
    """Filters of the global and per-customer entitlement lists; empty means "any"."""

    customer_ids: Sequence[str] = ()
    customer_keys: Sequence[str] = ()
    subject_keys: Sequence[str] = ()
    features: Sequence[str] = ()  # ids or keys
    types: Sequence[EntitlementType] = ()
    include_deleted: bool = False
    active_at: datetime | None = None  # exclude entitlements not active at this instant


class GrantOrderBy(StrEnum):
    ID = "id"
    CREATED_AT = "createdAt"
    UPDATED_AT = "updatedAt"
    EFFECTIVE_AT = "effectiveAt"
    EXPIRES_AT = "expiresAt"


@dataclass(frozen=True)
class GrantFilter:
    """Filters of the grant lists; empty means "any"."""

    entitlement_ids: Sequence[str] = ()
    features: Sequence[str] = ()  # ids or keys
    customers: Sequence[str] = ()  # ids or keys
    subject_keys: Sequence[str] = ()
    include_deleted: bool = False
