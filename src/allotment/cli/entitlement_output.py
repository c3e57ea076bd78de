"""Entitlements, grants, values and history as documents for scripts (`--json`).

The documents use the v2 (customer-keyed) response shapes field for field, camelCase, unset
fields left out, so a script can switch between `allotment ... --json` and the API. Amounts are
JSON numbers written out exactly (never through a binary float); times are RFC 3339 in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from allotment.cli.output import time_text, without_unset
from allotment.domain.access import EntitlementValue
from allotment.domain.entitlements import EntitlementType
from allotment.domain.history import History
from allotment.domain.periods import Period, Recurrence
from allotment.services.entitlements import EntitlementView
from allotment.services.grants import GrantView

Document = dict[str, Any]


def _period(period: Period | None) -> Document | None:
    if period is None:
        return None
    return {"from": time_text(period.start), "to": time_text(period.end)}


def _recurrence(recurrence: Recurrence | None) -> Document | None:
    if recurrence is None:
        return None
    return {
        "interval": recurrence.interval.api_name,
        "intervalISO": recurrence.interval.iso,
        "anchor": time_text(recurrence.anchor),
    }


def entitlement_document(view: EntitlementView) -> Document:
    """`EntitlementV2`: metered, static or boolean."""
    e = view.entitlement
    document: Document = {
        "id": e.id,
        "type": e.type.value,
        "featureId": e.feature_id,
        "featureKey": e.feature_key,
        "customerId": view.owner.customer_id,
        "customerKey": view.owner.customer_key,
        "metadata": dict(e.metadata) or None,
        "annotations": dict(e.annotations) or None,
        "activeFrom": time_text(e.active_from),
        "activeTo": time_text(e.active_to),
        "createdAt": time_text(e.created_at),
        "updatedAt": time_text(e.updated_at),
        "deletedAt": time_text(e.deleted_at),
        "currentUsagePeriod": _period(view.current_usage_period),
        "usagePeriod": _recurrence(e.usage_period),
    }
    if e.is_metered:
        document.update(
            isSoftLimit=e.is_soft_limit,
            preserveOverageAtReset=e.preserve_overage_at_reset,
            issueAfterReset=e.issue_after_reset,
            issueAfterResetPriority=e.issue_after_reset_priority,
            lastReset=time_text(view.last_reset),
            measureUsageFrom=time_text(e.measure_usage_from),
        )
        if e.issue_after_reset is not None:
            document["issue"] = {
                "amount": e.issue_after_reset,
                "priority": e.issue_after_reset_priority or 1,
            }
    if e.type is EntitlementType.STATIC:
        document["config"] = e.config or ""
    return without_unset(document)


def grant_document(view: GrantView) -> Document:
    """`EntitlementGrantV2`: no expiration shown for a grant that never expires."""
    g = view.grant
    expiration = None
    if g.expiration is not None:
        expiration = {"duration": g.expiration.duration.value, "count": g.expiration.count}
    return without_unset(
        {
            "id": g.id,
            "entitlementId": g.entitlement_id,
            "amount": g.amount,
            "priority": g.priority,
            "effectiveAt": time_text(g.effective_at),
            "expiration": expiration,
            "expiresAt": time_text(g.expires_at),
            "maxRolloverAmount": g.max_rollover_amount,
            "minRolloverAmount": g.min_rollover_amount,
            "metadata": dict(g.metadata) or None,
            "annotations": dict(g.annotations) or None,
            "recurrence": _recurrence(g.recurrence),
            "nextRecurrence": time_text(view.next_recurrence),
            "voidedAt": time_text(g.voided_at),
            "createdAt": time_text(g.created_at),
            "updatedAt": time_text(g.updated_at),
            "deletedAt": time_text(g.deleted_at),
        }
    )


def value_document(value: EntitlementValue, *, grant_balances: bool = True) -> Document:
    """`EntitlementValueV2` (with each grant's balance), or v1's `EntitlementValue`."""
    balances: Mapping[str, Decimal] | None = value.grant_balances if grant_balances else None
    return without_unset(
        {
            "hasAccess": value.has_access,
            "balance": value.balance,
            "usage": value.usage,
            "overage": value.overage,
            "totalAvailableGrantAmount": value.total_available_grant_amount,
            "config": value.config,
            "grantBalances": None if balances is None else dict(balances),
        }
    )


def access_document(values: Mapping[str, EntitlementValue]) -> Document:
    """`GET /api/v1/customers/{customer}/access`: every value by feature key."""
    return {
        "entitlements": {
            key: value_document(value, grant_balances=False) for key, value in values.items()
        }
    }


def history_document(history: History) -> Document:
    """`WindowedBalanceHistory`: the windows, and the burn-down segments behind them."""
    return {
        "windowedHistory": [
            {
                "period": _period(w.full_period),
                "usage": w.usage,
                "balanceAtStart": w.balance_at_start,
            }
            for w in history.windows
        ],
        "burndownHistory": [
            {
                "period": _period(s.period),
                "usage": s.usage,
                "overage": s.overage,
                "balanceAtStart": s.balance_at_start,
                "grantBalancesAtStart": dict(s.grant_balances_at_start),
                "balanceAtEnd": s.balance_at_end,
                "grantBalancesAtEnd": dict(s.grant_balances_at_end),
                "grantUsages": [{"grantId": g.grant_id, "usage": g.usage} for g in s.grant_usages],
            }
            for s in history.segments
        ],
    }
