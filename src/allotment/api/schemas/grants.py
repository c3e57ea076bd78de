"""Wire models of grants (OpenMeter `EntitlementGrant*`, v1 and v2) and recurring periods.

v1 and v2 differ in defaults (the service applies them) and in one response detail: a v1 grant
always shows an expiration, so a grant that never expires reads `{"duration": "YEAR", "count":
100}` with `expiresAt` a hundred years after it takes effect, as OpenMeter shows it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from allotment.api.schemas.common import AmountValue, RequestModel, UtcDateTime, WireModel
from allotment.domain.grant_requests import ExpirationRequest, GrantRequest, RecurrenceRequest
from allotment.domain.grants import PRIORITY_MAX, PRIORITY_MIN
from allotment.domain.periods import Expiration, ExpirationDuration, Recurrence
from allotment.services.grants import GrantView

Priority = Annotated[int, Field(ge=PRIORITY_MIN, le=PRIORITY_MAX)]

# What a v1 response shows for a grant without expiration.
_NEVER = Expiration(ExpirationDuration.YEAR, 100)


class RecurringPeriodCreate(RequestModel):
    """`{interval, anchor?}`: DAY, WEEK, MONTH, YEAR or an ISO 8601 duration such as P2W."""

    interval: str = Field(min_length=1, max_length=64, examples=["MONTH", "P2W", "PT6H"])
    anchor: UtcDateTime | None = Field(default=None, description="Default: now (or effectiveAt)")

    def to_request(self) -> RecurrenceRequest:
        return RecurrenceRequest(interval=self.interval, anchor=self.anchor)


class RecurringPeriodOut(WireModel):
    interval: str = Field(description="DAY, WEEK, MONTH or YEAR when exact, else ISO 8601")
    interval_iso: str = Field(alias="intervalISO")
    anchor: UtcDateTime

    @classmethod
    def of(cls, recurrence: Recurrence) -> RecurringPeriodOut:
        return cls.model_validate(
            {
                "interval": recurrence.interval.api_name,
                "intervalISO": recurrence.interval.iso,
                "anchor": recurrence.anchor,
            }
        )


class ExpirationPeriod(WireModel):
    duration: ExpirationDuration
    count: int = Field(ge=1, le=1000)

    def to_request(self) -> ExpirationRequest:
        return ExpirationRequest(duration=self.duration.value, count=self.count)

    @classmethod
    def of(cls, expiration: Expiration) -> ExpirationPeriod:
        return cls(duration=expiration.duration, count=expiration.count)


class _GrantCreate(RequestModel):
    """What both versions' grant bodies hold; they differ in defaults, not in meaning."""

    amount: AmountValue = Field(gt=0)
    priority: Priority | None = Field(default=None, description="1 burns first; default 1")
    effective_at: UtcDateTime = Field(description="Floored to the minute")
    expiration: ExpirationPeriod | None = None
    max_rollover_amount: AmountValue | None = None
    min_rollover_amount: AmountValue | None = Field(default=None, description="Default 0")
    metadata: dict[str, str] | None = None
    recurrence: RecurringPeriodCreate | None = None

    def to_request(self) -> GrantRequest:
        return GrantRequest(
            amount=self.amount,
            effective_at=self.effective_at,
            priority=self.priority,
            expiration=None if self.expiration is None else self.expiration.to_request(),
            min_rollover_amount=self.min_rollover_amount,
            max_rollover_amount=self.max_rollover_amount,
            recurrence=None if self.recurrence is None else self.recurrence.to_request(),
            metadata=self.metadata,
            annotations=self.annotations_sent(),
        )

    def annotations_sent(self) -> dict[str, Any] | None:
        return None  # only v2 takes annotations; v1 ignores them like any unknown field


class GrantCreateV1(_GrantCreate):
    """`EntitlementGrantCreateInput`: expiration required, rollover amounts default to 0."""

    expiration: ExpirationPeriod
    max_rollover_amount: AmountValue | None = Field(default=None, description="Default 0")


class GrantCreateV2(_GrantCreate):
    """`EntitlementGrantCreateInputV2`: no expiration means never; max rollover defaults to
    the amount."""

    max_rollover_amount: AmountValue | None = Field(default=None, description="Default: the amount")
    annotations: dict[str, Any] | None = None

    def annotations_sent(self) -> dict[str, Any] | None:
        return self.annotations


class _GrantFields(WireModel):
    id: str
    entitlement_id: str
    amount: AmountValue
    priority: int
    effective_at: UtcDateTime
    max_rollover_amount: AmountValue
    min_rollover_amount: AmountValue
    metadata: dict[str, str] | None = None
    annotations: dict[str, Any] | None = None
    recurrence: RecurringPeriodOut | None = None
    next_recurrence: UtcDateTime | None = None
    voided_at: UtcDateTime | None = None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    deleted_at: UtcDateTime | None = None


def _fields(view: GrantView) -> dict[str, Any]:
    g = view.grant
    return {
        "id": g.id,
        "entitlement_id": g.entitlement_id,
        "amount": g.amount,
        "priority": g.priority,
        "effective_at": g.effective_at,
        "max_rollover_amount": g.max_rollover_amount,
        "min_rollover_amount": g.min_rollover_amount,
        "metadata": dict(g.metadata) or None,
        "annotations": dict(g.annotations) or None,
        "recurrence": None if g.recurrence is None else RecurringPeriodOut.of(g.recurrence),
        "next_recurrence": view.next_recurrence,
        "voided_at": g.voided_at,
        "created_at": g.created_at,
        "updated_at": g.updated_at,
        "deleted_at": g.deleted_at,
    }


class GrantV1(_GrantFields):
    """`EntitlementGrant`: `expiration` and `expiresAt` always present."""

    expiration: ExpirationPeriod
    expires_at: UtcDateTime

    @classmethod
    def of(cls, view: GrantView) -> GrantV1:
        g = view.grant
        expires_at: datetime = (
            g.expires_at if g.expires_at is not None else _NEVER.expires_at(g.effective_at)
        )
        return cls(
            **_fields(view),
            expiration=ExpirationPeriod.of(g.expiration or _NEVER),
            expires_at=expires_at,
        )


class GrantV2(_GrantFields):
    """`EntitlementGrantV2`: no expiration shown for a grant that never expires."""

    expiration: ExpirationPeriod | None = None
    expires_at: UtcDateTime | None = None

    @classmethod
    def of(cls, view: GrantView) -> GrantV2:
        g = view.grant
        expiration = None if g.expiration is None else ExpirationPeriod.of(g.expiration)
        return cls(**_fields(view), expiration=expiration, expires_at=g.expires_at)
