"""The `data` of notification payloads, in the API's own wire shapes (OpenMeter's
`NotificationEventBalanceThresholdPayloadData` / `NotificationEventEntitlementValuePayloadBase`).

Handed to the evaluator by whoever runs it (the app's maintenance worker, `allotment worker`,
the rule test route), since services cannot import the wire models.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from allotment.api.schemas.customers import CustomerResponse
from allotment.api.schemas.entitlements import EntitlementValueOut, entitlement_v1
from allotment.api.schemas.features import FeatureResponse
from allotment.api.schemas.notifications import ThresholdBody
from allotment.api.schemas.subjects import SubjectResponse
from allotment.services.notification_payloads import Snapshot


def _document(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def render_payload_data(snapshot: Snapshot) -> dict[str, Any]:
    data = {
        "entitlement": _document(entitlement_v1(snapshot.view)),
        "feature": _document(FeatureResponse.of(snapshot.feature)),
        "subject": _document(SubjectResponse.of(snapshot.subject)),
        "customer": _document(CustomerResponse.of(snapshot.customer)),
        "value": _document(EntitlementValueOut.of(snapshot.value)),
    }
    if snapshot.threshold is not None:
        data["threshold"] = _document(ThresholdBody.of(snapshot.threshold))
    return data
