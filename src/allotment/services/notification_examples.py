"""The made-up entitlement a rule's test event shows when no real one fits: a monthly allowance
of 100 with 75 used, for an example customer, feature and subject (OpenMeter's test events
carry made-up data too)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from allotment.domain.access import EntitlementValue
from allotment.domain.customers import Customer
from allotment.domain.entitlements import Entitlement, EntitlementType
from allotment.domain.features import Feature
from allotment.domain.notifications import Rule, RuleType
from allotment.domain.periods import Interval, Recurrence
from allotment.domain.subjects import Subject
from allotment.domain.time import truncate_to_minute
from allotment.ids import new_id
from allotment.services.entitlement_owners import owner_keys
from allotment.services.entitlements import view_with_resets
from allotment.services.notification_payloads import Snapshot

EXAMPLE_VALUE = EntitlementValue(
    has_access=True,
    balance=Decimal(25),
    usage=Decimal(75),
    overage=Decimal(0),
    total_available_grant_amount=Decimal(100),
)


def example_snapshot(rule: Rule, now: datetime) -> Snapshot:
    at = truncate_to_minute(now)
    named = rule.features[0] if rule.features else None
    feature = Feature(
        id=named.id if named else new_id(),
        key=named.key if named else "example_feature",
        name="Example feature",
        meter_slug="example_meter",
        group_by_filters={},
        metadata=None,
        created_at=at,
        updated_at=at,
    )
    customer = Customer(
        id=new_id(),
        name="Example customer",
        key="example_customer",
        subject_keys=("example_subject",),
        description=None,
        primary_email=None,
        currency=None,
        billing_address=None,
        metadata=None,
        created_at=at,
        updated_at=at,
    )
    entitlement = Entitlement(
        id=new_id(),
        type=EntitlementType.METERED,
        customer_id=customer.id,
        feature_id=feature.id,
        feature_key=feature.key,
        active_from=at,
        created_at=at,
        updated_at=at,
        usage_period=Recurrence(Interval.parse("MONTH"), at),
        measure_usage_from=at,
        issue_after_reset=Decimal(100),
        issue_after_reset_priority=1,
    )
    subject = Subject(
        id=new_id(),
        key="example_subject",
        display_name="Example subject",
        metadata=None,
        current_period_start=None,
        current_period_end=None,
        stripe_customer_id=None,
        created_at=at,
        updated_at=at,
    )
    return Snapshot(
        view=view_with_resets(entitlement, owner_keys(customer), [], now),
        feature=feature,
        customer=customer,
        subject=subject,
        value=EXAMPLE_VALUE,
        threshold=rule.thresholds[0] if rule.type is RuleType.BALANCE_THRESHOLD else None,
    )
