"""Wire models of entitlements, their values and history (OpenMeter v1 and v2 shapes).

One create body serves every type: `type` says which rules apply, and fields another type does
not take are refused with a 400 naming them (never silently dropped). Responses differ by
version only in who owns the entitlement: v1 shows `subjectKey`, v2 `customerId`/`customerKey`.
`type` is always present: the official SDK hands entitlements back as plain dicts and clients
branch on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError, field_validator

from allotment.api.schemas.common import (
    AmountValue,
    RequestModel,
    UtcDateTime,
    WireModel,
    exact_amount,
)
from allotment.api.schemas.grants import (
    GrantCreateV2,
    Priority,
    RecurringPeriodCreate,
    RecurringPeriodOut,
)
from allotment.domain import features as feature_rules
from allotment.domain.access import EntitlementValue
from allotment.domain.entitlement_requests import EntitlementRequest, MeasureUsageFromPreset
from allotment.domain.entitlements import EntitlementType
from allotment.domain.history import History
from allotment.domain.periods import Period
from allotment.services.entitlements import EntitlementView

ULID_PATTERN = r"^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$"

_AWARE_TIME = TypeAdapter(UtcDateTime)


# -- requests ---------------------------------------------------------------------------------


class IssueAfterResetCreate(RequestModel):
    """v2 `issue`: the default grant, in place of `issueAfterReset`/`issueAfterResetPriority`."""

    amount: AmountValue = Field(ge=0)
    priority: Priority | None = None


class EntitlementCreate(RequestModel):
    """`EntitlementCreateInputs` (v1): metered, static or boolean, told apart by `type`."""

    type: Literal["metered", "static", "boolean"]
    feature_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=feature_rules.KEY_MAX_LENGTH,
        pattern=feature_rules.KEY_PATTERN,
    )
    feature_id: str | None = Field(default=None, pattern=ULID_PATTERN)
    metadata: dict[str, str] | None = None
    usage_period: RecurringPeriodCreate | None = Field(
        default=None, description="Required for metered; at least one hour"
    )
    is_soft_limit: bool | None = Field(default=None, description="Metered only")
    is_unlimited: bool | None = Field(
        default=None, description="Deprecated and ignored (use isSoftLimit)"
    )
    issue_after_reset: AmountValue | None = Field(
        default=None, ge=0, description="Metered only: a grant of this amount, back at every reset"
    )
    issue_after_reset_priority: Priority | None = Field(
        default=None, description="Metered only; needs issueAfterReset (default 1)"
    )
    preserve_overage_at_reset: bool | None = Field(default=None, description="Metered only")
    measure_usage_from: str | None = Field(
        default=None,
        description="Metered only: CURRENT_PERIOD_START (default), NOW or an RFC 3339 time",
        json_schema_extra={"examples": ["CURRENT_PERIOD_START", "2024-01-01T00:00:00Z"]},
    )
    config: str | None = Field(
        default=None, description="Static only, required: a string holding valid JSON"
    )

    @field_validator("measure_usage_from")
    @classmethod
    def _measure_usage_from(cls, value: str | None) -> str | None:
        if value is None or value in MeasureUsageFromPreset.__members__:
            return value
        try:
            _AWARE_TIME.validate_python(value)
        except ValidationError:
            raise ValueError(
                "must be CURRENT_PERIOD_START, NOW or an RFC 3339 time with an offset"
            ) from None
        return value

    def to_request(self) -> EntitlementRequest:
        return EntitlementRequest(
            type=EntitlementType(self.type),
            feature_key=self.feature_key,
            feature_id=self.feature_id,
            metadata=self.metadata,
            usage_period=None if self.usage_period is None else self.usage_period.to_request(),
            is_soft_limit=self.is_soft_limit,
            issue_after_reset=self.issue_after_reset,
            issue_after_reset_priority=self.issue_after_reset_priority,
            preserve_overage_at_reset=self.preserve_overage_at_reset,
            measure_usage_from=_measure_usage_from(self.measure_usage_from),
            config=self.config,
        )


class EntitlementCreateV2(EntitlementCreate):
    """`EntitlementV2CreateInputs`: v1's fields, plus `issue` and `grants` for metered."""

    issue: IssueAfterResetCreate | None = Field(
        default=None, description="Metered only; takes precedence over issueAfterReset"
    )
    grants: list[GrantCreateV2] | None = Field(
        default=None, description="Metered only: grants made with the entitlement"
    )

    def to_request(self) -> EntitlementRequest:
        request = super().to_request()
        changes: dict[str, Any] = {}
        if self.issue is not None:
            changes["issue_after_reset"] = self.issue.amount
            changes["issue_after_reset_priority"] = self.issue.priority
        if self.grants is not None:
            changes["grants"] = tuple(grant.to_request() for grant in self.grants)
        return replace(request, **changes)


def _measure_usage_from(value: str | None) -> MeasureUsageFromPreset | datetime | None:
    if value is None:
        return None
    if value in MeasureUsageFromPreset.__members__:
        return MeasureUsageFromPreset(value)
    return _AWARE_TIME.validate_python(value)


class ResetBody(RequestModel):
    """`ResetEntitlementUsageInput`: every field optional."""

    effective_at: UtcDateTime | None = Field(
        default=None, description="Default now; floored to the minute; not in the future"
    )
    retain_anchor: bool | None = Field(
        default=None, description="Keep the usage period's anchor (default: it moves here)"
    )
    preserve_overage: bool | None = Field(
        default=None, description="Default: the entitlement's preserveOverageAtReset"
    )


# -- entitlement responses --------------------------------------------------------------------


class PeriodOut(WireModel):
    from_: UtcDateTime = Field(alias="from")
    to: UtcDateTime

    @classmethod
    def of(cls, period: Period) -> PeriodOut:
        return cls.model_validate({"from": period.start, "to": period.end})


class _EntitlementFields(WireModel):
    id: str
    feature_id: str
    feature_key: str
    metadata: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    active_from: UtcDateTime
    active_to: UtcDateTime | None = None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    deleted_at: UtcDateTime | None = None
    current_usage_period: PeriodOut | None = None
    usage_period: RecurringPeriodOut | None = None


class _SubjectOwned(WireModel):
    subject_key: str = Field(description="The owning customer's first subject key")


class _CustomerOwned(WireModel):
    customer_id: str
    customer_key: str | None = None


class IssueAfterResetOut(WireModel):
    amount: AmountValue
    priority: int


class _MeteredFields(WireModel):
    is_soft_limit: bool
    preserve_overage_at_reset: bool
    issue_after_reset: AmountValue | None = None
    issue_after_reset_priority: int | None = None
    last_reset: UtcDateTime
    measure_usage_from: UtcDateTime


class EntitlementMeteredV1(_MeteredFields, _SubjectOwned, _EntitlementFields):
    type: Literal["metered"] = "metered"
    is_unlimited: bool = Field(default=False, description="Deprecated; always false")


class EntitlementStaticV1(_SubjectOwned, _EntitlementFields):
    type: Literal["static"] = "static"
    config: str


class EntitlementBooleanV1(_SubjectOwned, _EntitlementFields):
    type: Literal["boolean"] = "boolean"


class EntitlementMeteredV2(_MeteredFields, _CustomerOwned, _EntitlementFields):
    type: Literal["metered"] = "metered"
    issue: IssueAfterResetOut | None = None


class EntitlementStaticV2(_CustomerOwned, _EntitlementFields):
    type: Literal["static"] = "static"
    config: str


class EntitlementBooleanV2(_CustomerOwned, _EntitlementFields):
    type: Literal["boolean"] = "boolean"


EntitlementV1 = Annotated[
    EntitlementMeteredV1 | EntitlementStaticV1 | EntitlementBooleanV1,
    Field(discriminator="type"),
]
EntitlementV2 = Annotated[
    EntitlementMeteredV2 | EntitlementStaticV2 | EntitlementBooleanV2,
    Field(discriminator="type"),
]


def _common(view: EntitlementView) -> dict[str, Any]:
    e = view.entitlement
    fields: dict[str, Any] = {
        "id": e.id,
        "feature_id": e.feature_id,
        "feature_key": e.feature_key,
        "metadata": dict(e.metadata) or None,
        "annotations": dict(e.annotations) or None,
        "active_from": e.active_from,
        "active_to": e.active_to,
        "created_at": e.created_at,
        "updated_at": e.updated_at,
        "deleted_at": e.deleted_at,
        "current_usage_period": (
            None if view.current_usage_period is None else PeriodOut.of(view.current_usage_period)
        ),
        "usage_period": None if e.usage_period is None else RecurringPeriodOut.of(e.usage_period),
    }
    if e.is_metered:
        assert view.last_reset is not None and e.measure_usage_from is not None
        fields.update(
            is_soft_limit=e.is_soft_limit,
            preserve_overage_at_reset=e.preserve_overage_at_reset,
            issue_after_reset=e.issue_after_reset,
            issue_after_reset_priority=e.issue_after_reset_priority,
            last_reset=view.last_reset,
            measure_usage_from=e.measure_usage_from,
        )
    if e.type is EntitlementType.STATIC:
        fields["config"] = e.config or ""
    return fields


def entitlement_v1(
    view: EntitlementView,
) -> EntitlementMeteredV1 | EntitlementStaticV1 | EntitlementBooleanV1:
    fields = {**_common(view), "subject_key": view.owner.subject_key}
    match view.entitlement.type:
        case EntitlementType.METERED:
            return EntitlementMeteredV1(**fields)
        case EntitlementType.STATIC:
            return EntitlementStaticV1(**fields)
        case EntitlementType.BOOLEAN:
            return EntitlementBooleanV1(**fields)


def entitlement_v2(
    view: EntitlementView,
) -> EntitlementMeteredV2 | EntitlementStaticV2 | EntitlementBooleanV2:
    fields = {
        **_common(view),
        "customer_id": view.owner.customer_id,
        "customer_key": view.owner.customer_key,
    }
    e = view.entitlement
    match e.type:
        case EntitlementType.METERED:
            issue = None
            if e.issue_after_reset is not None:
                issue = IssueAfterResetOut(
                    amount=e.issue_after_reset, priority=e.issue_after_reset_priority or 1
                )
            return EntitlementMeteredV2(**fields, issue=issue)
        case EntitlementType.STATIC:
            return EntitlementStaticV2(**fields)
        case EntitlementType.BOOLEAN:
            return EntitlementBooleanV2(**fields)


# -- values -----------------------------------------------------------------------------------


class EntitlementValueOut(WireModel):
    """`EntitlementValue`: `hasAccess` always, the rest where the type has it."""

    has_access: bool
    balance: AmountValue | None = None
    usage: AmountValue | None = None
    overage: AmountValue | None = None
    total_available_grant_amount: AmountValue | None = None
    config: str | None = None

    @classmethod
    def of(cls, value: EntitlementValue) -> EntitlementValueOut:
        return cls(
            has_access=value.has_access,
            balance=value.balance,
            usage=value.usage,
            overage=value.overage,
            total_available_grant_amount=value.total_available_grant_amount,
            config=value.config,
        )


class EntitlementValueV2Out(EntitlementValueOut):
    """`EntitlementValueV2`: v1's value plus each active grant's balance (metered)."""

    grant_balances: dict[str, AmountValue] | None = None

    @classmethod
    def of(cls, value: EntitlementValue) -> EntitlementValueV2Out:
        balances: Mapping[str, Decimal] | None = value.grant_balances
        return cls(
            **EntitlementValueOut.of(value).model_dump(),
            grant_balances=None if balances is None else dict(balances),
        )


def value_document(value: EntitlementValue, *, with_grant_balances: bool) -> dict[str, Any]:
    """`EntitlementValueOut` (or `EntitlementValueV2Out`) as a JSON document with exact
    amounts, built directly: this is the check-access hot path."""
    document: dict[str, Any] = {"hasAccess": value.has_access}
    for name, amount in (
        ("balance", value.balance),
        ("usage", value.usage),
        ("overage", value.overage),
        ("totalAvailableGrantAmount", value.total_available_grant_amount),
    ):
        if amount is not None:
            document[name] = exact_amount(amount)
    if value.config is not None:
        document["config"] = value.config
    if with_grant_balances and value.grant_balances is not None:
        document["grantBalances"] = {k: exact_amount(v) for k, v in value.grant_balances.items()}
    return document


class CustomerAccessOut(WireModel):
    entitlements: dict[str, EntitlementValueOut] = Field(
        description="The value of every entitlement the customer holds, by feature key"
    )


# -- history ----------------------------------------------------------------------------------


class BalanceHistoryWindowOut(WireModel):
    period: PeriodOut
    usage: AmountValue
    balance_at_start: AmountValue


class GrantUsageOut(WireModel):
    grant_id: str
    usage: AmountValue


class BurndownSegmentOut(WireModel):
    period: PeriodOut
    usage: AmountValue
    overage: AmountValue
    balance_at_start: AmountValue
    grant_balances_at_start: dict[str, AmountValue]
    balance_at_end: AmountValue
    grant_balances_at_end: dict[str, AmountValue]
    grant_usages: list[GrantUsageOut]


class WindowedBalanceHistoryOut(WireModel):
    windowed_history: list[BalanceHistoryWindowOut]
    burndown_history: list[BurndownSegmentOut]

    @classmethod
    def of(cls, history: History) -> WindowedBalanceHistoryOut:
        return cls(
            windowed_history=[
                BalanceHistoryWindowOut(
                    # Whole windows as OpenMeter reports them; usage counts inside the range.
                    period=PeriodOut.of(w.full_period),
                    usage=w.usage,
                    balance_at_start=w.balance_at_start,
                )
                for w in history.windows
            ],
            burndown_history=[
                BurndownSegmentOut(
                    period=PeriodOut.of(s.period),
                    usage=s.usage,
                    overage=s.overage,
                    balance_at_start=s.balance_at_start,
                    grant_balances_at_start=dict(s.grant_balances_at_start),
                    balance_at_end=s.balance_at_end,
                    grant_balances_at_end=dict(s.grant_balances_at_end),
                    grant_usages=[
                        GrantUsageOut(grant_id=g.grant_id, usage=g.usage) for g in s.grant_usages
                    ],
                )
                for s in history.segments
            ],
        )
