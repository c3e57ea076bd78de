"""Turning a grant request into a stored grant: validation and the per-API-version defaults.

Rules (spec, "Grants"):

- `amount` > 0; `priority` 1..255, default 1 (lower burns first); `effectiveAt` floored to the
  minute and not before the start of the usage period current now.
- `expiration {duration, count}` gives `expiresAt = effectiveAt + count·duration`.
- The defaults differ by API version and change balances at every reset: **v1** requires an
  expiration and defaults both rollover amounts to 0; **v2** makes the expiration optional (none:
  never expires) and defaults `maxRolloverAmount` to the amount, `minRolloverAmount` to 0.
- A recurrence's anchor defaults to `effectiveAt`; its interval is at least an hour.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from allotment.domain.amounts import checked_amount
from allotment.domain.entitlements import GrantRecord
from allotment.domain.grants import validate_new_grant
from allotment.domain.instants import checked_instant, checked_interval
from allotment.domain.periods import Expiration, Interval, Recurrence
from allotment.domain.text import UNSTORABLE_TEXT, is_storable_document
from allotment.errors import AllotmentError, ErrorList, FieldError, InvalidInput

DEFAULT_PRIORITY = 1


class GrantDefaults(StrEnum):
    """Which API version's defaults a grant request gets."""

    V1 = "v1"
    V2 = "v2"


@dataclass(frozen=True)
class RecurrenceRequest:
    """`{interval, anchor?}` as sent: a usage period or a grant recurrence."""

    interval: str
    anchor: datetime | None = None


@dataclass(frozen=True)
class ExpirationRequest:
    duration: str
    count: int


@dataclass(frozen=True)
class GrantRequest:
    """A grant as a client asks for it; None means "not sent"."""

    amount: Decimal
    effective_at: datetime
    priority: int | None = None
    expiration: ExpirationRequest | None = None
    min_rollover_amount: Decimal | None = None
    max_rollover_amount: Decimal | None = None
    recurrence: RecurrenceRequest | None = None
    metadata: Mapping[str, str] | None = None
    annotations: Mapping[str, Any] | None = None


def with_prefix(error: AllotmentError, prefix: str) -> InvalidInput:
    """The same field errors, their fields nested under `prefix` (e.g. `grants.0.`)."""
    errors = [FieldError(prefix + e.field, e.message, e.code) for e in error.errors]
    return InvalidInput(error.message, errors=errors)


def new_grant(
    request: GrantRequest,
    *,
    grant_id: str,
    entitlement_id: str,
    current_period_start: datetime,
    now: datetime,
    defaults: GrantDefaults,
) -> GrantRecord:
    """The grant to store for `request`, or InvalidInput naming every bad field.

    `current_period_start` is the start of the entitlement's usage period current at `now`;
    `effectiveAt` may not precede it (a grant never rewrites a closed period).
    """
    errors = ErrorList()
    amount = _amount(errors, request.amount, "amount", positive=True)
    # Negative bounds are accepted as OpenMeter accepts them (Grant.rollover says what they do).
    minimum = _amount(errors, request.min_rollover_amount, "minRolloverAmount", signed=True)
    maximum = _amount(errors, request.max_rollover_amount, "maxRolloverAmount", signed=True)
    expiration = None
    if request.expiration is not None:
        with errors.collecting():
            expiration = Expiration.parse(request.expiration.duration, request.expiration.count)
    elif defaults is GrantDefaults.V1:
        errors.add("expiration", "is required", code="required")
    with errors.collecting():
        checked_instant(request.effective_at, "effectiveAt")
    recurrence_interval = None
    if request.recurrence is not None:
        with errors.collecting():
            if request.recurrence.anchor is not None:
                checked_instant(request.recurrence.anchor, "recurrence.anchor")
            recurrence_interval = checked_interval(
                Interval.parse(request.recurrence.interval, field="recurrence.interval"),
                "recurrence.interval",
            )
    for name, document in (("metadata", request.metadata), ("annotations", request.annotations)):
        if document is not None and not is_storable_document(document):
            errors.add(name, UNSTORABLE_TEXT)
    errors.raise_if_any("invalid grant")
    assert amount is not None  # a positive amount was required above
    priority = DEFAULT_PRIORITY if request.priority is None else request.priority
    recurrence = None
    if recurrence_interval is not None and request.recurrence is not None:
        anchor = request.recurrence.anchor or request.effective_at
        recurrence = Recurrence(recurrence_interval, anchor)
    effective_at = validate_new_grant(
        request.effective_at, current_period_start, priority=priority, recurrence=recurrence
    )
    if maximum is None:
        maximum = amount if defaults is GrantDefaults.V2 else Decimal(0)
    return GrantRecord(
        id=grant_id,
        entitlement_id=entitlement_id,
        amount=amount,
        priority=priority,
        effective_at=effective_at,
        min_rollover_amount=minimum if minimum is not None else Decimal(0),
        max_rollover_amount=maximum,
        created_at=now,
        updated_at=now,
        expiration=expiration,
        expires_at=None if expiration is None else expiration.expires_at(effective_at),
        recurrence=recurrence,
        metadata=dict(request.metadata or {}),
        annotations=dict(request.annotations or {}),
    )


def _amount(
    errors: ErrorList,
    value: Decimal | None,
    field: str,
    *,
    positive: bool = False,
    signed: bool = False,
) -> Decimal | None:
    if value is None:
        return None
    with errors.collecting():
        return checked_amount(value, field, positive=positive, signed=signed)
    return None
