"""Turning an entitlement request into a stored entitlement: the create rules of every type.

Rules (spec, "Entitlements" and "Usage periods"):

- A usage period, when given, is at least one hour; its anchor defaults to now, floored to the
  minute.
- **metered** needs a usage period and a feature with a meter. `measureUsageFrom` is a time
  (floored), `NOW`, or `CURRENT_PERIOD_START` (the start of the usage period containing now); a
  create defaults to `CURRENT_PERIOD_START`, an override to `NOW` (it starts fresh).
  `issueAfterReset` (≥ 0) creates the default grant; `issueAfterResetPriority` (1..255, default
  1) needs it; v2 `grants` are created along but may not be combined with `issueAfterReset`.
- **static** needs `config`: a string holding valid JSON, kept exactly as sent.
- **boolean** and **static** refuse every metered-only field; only metered takes `grants`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from allotment.domain.amounts import checked_amount
from allotment.domain.entitlements import Entitlement, EntitlementType, GrantRecord
from allotment.domain.features import Feature
from allotment.domain.grant_requests import DEFAULT_PRIORITY, GrantRequest, RecurrenceRequest
from allotment.domain.grants import PRIORITY_MAX, PRIORITY_MIN
from allotment.domain.instants import checked_instant, checked_interval
from allotment.domain.periods import Interval, Recurrence
from allotment.domain.text import UNSTORABLE_TEXT, is_storable_document, is_storable_text
from allotment.domain.time import truncate_to_minute
from allotment.errors import ErrorList, InvalidInput

ISSUE_AFTER_RESET_ANNOTATION = "issueAfterReset"
GRANTS_NEED_METERED = "entitlement_grants_only_supported_for_metered_entitlements"


class MeasureUsageFromPreset(StrEnum):
    CURRENT_PERIOD_START = "CURRENT_PERIOD_START"
    NOW = "NOW"


@dataclass(frozen=True)
class EntitlementRequest:
    """An entitlement as a client asks for it; None means "not sent"."""

    type: EntitlementType
    feature_key: str | None = None
    feature_id: str | None = None
    metadata: Mapping[str, str] | None = None
    usage_period: RecurrenceRequest | None = None
    is_soft_limit: bool | None = None
    issue_after_reset: Decimal | None = None
    issue_after_reset_priority: int | None = None
    preserve_overage_at_reset: bool | None = None
    measure_usage_from: MeasureUsageFromPreset | datetime | None = None
    config: str | None = None
    grants: tuple[GrantRequest, ...] | None = None

    @property
    def feature_field(self) -> str:
        """The field that named the feature: the id wins when both are sent."""
        return "featureId" if self.feature_id is not None else "featureKey"


_METERED_ONLY = (
    ("isSoftLimit", "is_soft_limit"),
    ("issueAfterReset", "issue_after_reset"),
    ("issueAfterResetPriority", "issue_after_reset_priority"),
    ("preserveOverageAtReset", "preserve_overage_at_reset"),
    ("measureUsageFrom", "measure_usage_from"),
)


def check_request(request: EntitlementRequest) -> None:
    """The rules that need nothing but the request; InvalidInput names every bad field."""
    errors = ErrorList()
    if request.feature_id is None and request.feature_key is None:
        message = "either featureKey or featureId is required"
        errors.add("featureKey", message, code="required")
        errors.add("featureId", message, code="required")
    if request.metadata is not None and not is_storable_document(request.metadata):
        errors.add("metadata", UNSTORABLE_TEXT)
    if request.usage_period is not None:
        _check_usage_period(errors, request.usage_period)
    if request.type is EntitlementType.METERED:
        _check_metered(errors, request)
    else:
        for wire_name, attribute in _METERED_ONLY:
            if getattr(request, attribute) is not None:
                errors.add(
                    wire_name,
                    f"only metered entitlements take {wire_name}, not {request.type.value} ones",
                    code="not_allowed",
                )
        if request.grants is not None:
            errors.add("grants", "only metered entitlements take grants", code=GRANTS_NEED_METERED)
    if request.type is EntitlementType.STATIC:
        _check_config(errors, request.config)
    elif request.config is not None:
        errors.add(
            "config",
            f"only static entitlements take a config, not {request.type.value} ones",
            code="not_allowed",
        )
    errors.raise_if_any("invalid entitlement")


def _check_usage_period(errors: ErrorList, period: RecurrenceRequest) -> None:
    with errors.collecting():
        if period.anchor is not None:
            checked_instant(period.anchor, "usagePeriod.anchor")
        interval = Interval.parse(period.interval, field="usagePeriod.interval")
        checked_interval(interval, "usagePeriod.interval")
        if not interval.is_at_least_one_hour():
            errors.add("usagePeriod.interval", "a usage period must be at least one hour")


def _check_metered(errors: ErrorList, request: EntitlementRequest) -> None:
    if request.usage_period is None:
        errors.add("usagePeriod", "a metered entitlement needs a usage period", code="required")
    if isinstance(request.measure_usage_from, datetime):
        with errors.collecting():
            checked_instant(request.measure_usage_from, "measureUsageFrom")
    if request.issue_after_reset is not None:
        with errors.collecting():
            checked_amount(request.issue_after_reset, "issueAfterReset")
    priority = request.issue_after_reset_priority
    if priority is not None:
        if request.issue_after_reset is None:
            errors.add(
                "issueAfterResetPriority",
                "needs issueAfterReset",
                code="requires_issue_after_reset",
            )
        elif not PRIORITY_MIN <= priority <= PRIORITY_MAX:
            errors.add("issueAfterResetPriority", f"must be from {PRIORITY_MIN} to {PRIORITY_MAX}")
    if request.grants is not None and request.issue_after_reset is not None:
        errors.add("grants", "issueAfterReset and grants cannot be used together")


def _check_config(errors: ErrorList, config: str | None) -> None:
    if config is None:
        errors.add("config", "a static entitlement needs a config", code="required")
        return
    if not is_storable_text(config):
        errors.add("config", UNSTORABLE_TEXT)
        return
    try:
        json.loads(config)
    except ValueError:
        errors.add("config", "must be a string holding valid JSON, e.g. '{\"seats\": 5}'")


def new_entitlement(
    request: EntitlementRequest,
    feature: Feature,
    *,
    entitlement_id: str,
    customer_id: str,
    now: datetime,
    measure_usage_default: MeasureUsageFromPreset = MeasureUsageFromPreset.CURRENT_PERIOD_START,
    active_from: datetime | None = None,
    active_to: datetime | None = None,
) -> Entitlement:
    """The entitlement to store; call `check_request` first.

    `feature` is the live feature the request names. Active from `active_from` (default now)
    until `active_to` (default: no end); the presets of `measureUsageFrom` are taken at
    `active_from`. Raises InvalidInput when a metered entitlement names a feature without a
    meter.
    """
    starts = now if active_from is None else active_from
    if request.type is EntitlementType.METERED and not feature.is_metered:
        raise InvalidInput(
            f"feature '{feature.key}' has no meter, so it cannot back a metered entitlement",
            field=request.feature_field,
        )
    usage_period = None
    if request.usage_period is not None:
        usage_period = Recurrence(
            Interval.parse(request.usage_period.interval, field="usagePeriod.interval"),
            request.usage_period.anchor or starts,
        )
    measure_usage_from = None
    if request.type is EntitlementType.METERED:
        assert usage_period is not None  # check_request refuses a metered one without it
        measure_usage_from = _measure_usage_from(
            request.measure_usage_from or measure_usage_default, usage_period, starts
        )
    issue_priority = request.issue_after_reset_priority
    if request.issue_after_reset is not None and issue_priority is None:
        issue_priority = DEFAULT_PRIORITY
    return Entitlement(
        id=entitlement_id,
        type=request.type,
        customer_id=customer_id,
        feature_id=feature.id,
        feature_key=feature.key,
        active_from=starts,
        active_to=active_to,
        created_at=now,
        updated_at=now,
        usage_period=usage_period,
        measure_usage_from=measure_usage_from,
        is_soft_limit=bool(request.is_soft_limit),
        issue_after_reset=(
            None
            if request.issue_after_reset is None
            else checked_amount(request.issue_after_reset, "issueAfterReset")
        ),
        issue_after_reset_priority=issue_priority,
        preserve_overage_at_reset=bool(request.preserve_overage_at_reset),
        config=request.config,
        metadata=dict(request.metadata or {}),
    )


def _measure_usage_from(
    choice: MeasureUsageFromPreset | datetime, usage_period: Recurrence, now: datetime
) -> datetime:
    if isinstance(choice, datetime):
        return truncate_to_minute(choice)
    if choice is MeasureUsageFromPreset.NOW:
        return truncate_to_minute(now)
    return usage_period.period_containing(truncate_to_minute(now)).start


def default_grant(entitlement: Entitlement, *, grant_id: str, now: datetime) -> GrantRecord | None:
    """The grant `issueAfterReset` stands for, or None (not set, or 0).

    Effective from measurement start, never expiring, with min = max rollover = amount, so every
    reset (automatic or manual) brings it back to the amount. It is made with the entitlement,
    so it is not held to the "not before the current period" rule: there is no closed period
    yet whose history it could rewrite.
    """
    amount = entitlement.issue_after_reset
    if amount is None or amount == 0 or entitlement.measure_usage_from is None:
        return None
    return GrantRecord(
        id=grant_id,
        entitlement_id=entitlement.id,
        amount=amount,
        priority=entitlement.issue_after_reset_priority or DEFAULT_PRIORITY,
        effective_at=entitlement.measure_usage_from,
        min_rollover_amount=amount,
        max_rollover_amount=amount,
        created_at=now,
        updated_at=now,
        annotations={ISSUE_AFTER_RESET_ANNOTATION: True},
    )
