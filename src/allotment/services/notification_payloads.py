"""What a notification event says: a snapshot of the entitlement at the moment it fired.

Services gather the snapshot (domain objects); the wire shapes of its parts are the API's own
(`Entitlement`, `Feature`, `Subject`, `Customer`, `EntitlementValue`), so the client layer that
starts the evaluator hands in a `PayloadRenderer` that writes them (api/notification_payloads.py).
The rendered payload is stored with the event and sent byte for byte on every attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from allotment.domain.access import EntitlementValue
from allotment.domain.customers import Customer
from allotment.domain.features import Feature
from allotment.domain.notifications import RuleType, Threshold
from allotment.domain.subjects import Subject
from allotment.domain.time import rfc3339
from allotment.services.entitlements import EntitlementView


@dataclass(frozen=True)
class Snapshot:
    view: EntitlementView
    feature: Feature
    customer: Customer
    subject: Subject
    value: EntitlementValue
    threshold: Threshold | None = None
    """Balance threshold events only: the threshold crossed."""


PayloadRenderer = Callable[[Snapshot], Mapping[str, Any]]
"""The `data` of a payload: `{entitlement, feature, subject, customer, value[, threshold]}`."""


def payload(
    render: PayloadRenderer, event_id: str, rule_type: RuleType, at: datetime, snapshot: Snapshot
) -> dict[str, Any]:
    """`NotificationEventBalanceThresholdPayload` or `NotificationEventResetPayload`."""
    return {
        "id": event_id,
        "type": rule_type.value,
        "timestamp": rfc3339(at),
        "data": dict(render(snapshot)),
    }
