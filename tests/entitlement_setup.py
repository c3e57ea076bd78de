"""Small factories for entitlement tests: a meter, features, a customer, usage events.

They go through the services (or, for meters and events, the repositories) so every test sees
data exactly as the API would have stored it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

from allotment.domain.customers import CustomerDetails
from allotment.domain.entitlement_requests import EntitlementRequest, MeasureUsageFromPreset
from allotment.domain.entitlements import EntitlementType
from allotment.domain.events import Event
from allotment.domain.features import NewFeature, group_by_filters_from_wire
from allotment.domain.grant_requests import (
    ExpirationRequest,
    GrantRequest,
    RecurrenceRequest,
)
from allotment.domain.meters import Aggregation, Meter
from allotment.ids import new_id
from allotment.services import customers, features
from allotment.services.context import ServiceContext

JANUARY = datetime(2024, 1, 1, tzinfo=UTC)


def make_meter(
    context: ServiceContext,
    slug: str = "tokens",
    aggregation: Aggregation = Aggregation.SUM,
    *,
    value_property: str | None = "$.tokens",
    event_type: str = "prompt",
) -> Meter:
    meter = Meter(
        id=new_id(),
        slug=slug,
        name=slug,
        aggregation=aggregation,
        event_type=event_type,
        created_at=JANUARY,
        updated_at=JANUARY,
        value_property=None if aggregation is Aggregation.COUNT else value_property,
        group_by={"model": "$.model"},
    )
    with context.database.unit_of_work(write=True) as uow:
        uow.meters.add(meter)
        uow.commit()
    return meter


def make_feature(
    context: ServiceContext,
    key: str = "ai_tokens",
    meter_slug: str | None = "tokens",
    filters: Mapping[str, str] | None = None,
) -> str:
    """Creates the feature; returns its id."""
    feature = features.create_feature(
        context,
        NewFeature(
            key=key,
            name=key,
            meter_slug=meter_slug,
            group_by_filters=group_by_filters_from_wire(filters, None),
        ),
    )
    return feature.id


def make_customer(
    context: ServiceContext, key: str = "acme", subject_keys: tuple[str, ...] = ("acme",)
) -> str:
    """Creates the customer; returns its id."""
    return customers.create_customer(
        context, CustomerDetails(name=key.upper(), key=key, subject_keys=subject_keys)
    ).id


def send_usage(
    context: ServiceContext,
    tokens: int | float | str,
    at: datetime,
    *,
    subject: str = "acme",
    model: str = "gpt-4o",
    event_type: str = "prompt",
) -> None:
    """One usage event (a fresh id each time), stored as ingest would store it."""
    event = Event(
        id=new_id(),
        source="tests",
        type=event_type,
        subject=subject,
        time=at,
        data={"tokens": tokens, "model": model},
    )
    with context.database.unit_of_work(write=True) as uow:
        uow.events.add_many([event], at)
        uow.commit()


def metered(
    *,
    feature_key: str = "ai_tokens",
    interval: str = "MONTH",
    anchor: datetime | None = JANUARY,
    issue_after_reset: int | str | None = None,
    measure_usage_from: MeasureUsageFromPreset | datetime | None = None,
    **extra: object,
) -> EntitlementRequest:
    return EntitlementRequest(
        type=EntitlementType.METERED,
        feature_key=feature_key,
        usage_period=RecurrenceRequest(interval, anchor),
        issue_after_reset=None if issue_after_reset is None else Decimal(issue_after_reset),
        measure_usage_from=measure_usage_from,
        **extra,  # type: ignore[arg-type]
    )


def grant(
    amount: int | str,
    effective_at: datetime,
    *,
    expiration: tuple[str, int] | None = None,
    priority: int | None = None,
    max_rollover: int | str | None = None,
    min_rollover: int | str | None = None,
    recurrence: str | None = None,
) -> GrantRequest:
    return GrantRequest(
        amount=Decimal(amount),
        effective_at=effective_at,
        priority=priority,
        expiration=None if expiration is None else ExpirationRequest(*expiration),
        max_rollover_amount=None if max_rollover is None else Decimal(max_rollover),
        min_rollover_amount=None if min_rollover is None else Decimal(min_rollover),
        recurrence=None if recurrence is None else RecurrenceRequest(recurrence),
    )
