"""Small typed factories every suite shares: meters, features, customers, usage events, rows of
boolean entitlements, and entitlement and grant requests.

Meters and events go straight through their repositories (a feature test needs a meter, not the
meters service); features and customers go through their services, so a test sees them exactly
as the API would have stored them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert

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
from allotment.services.entitlement_owners import CustomerOwner
from allotment.storage import Database
from allotment.storage.tables import entitlements
from allotment.storage.tables import features as feature_rows

JANUARY = datetime(2024, 1, 1, tzinfo=UTC)
MODEL_GROUP_BY: Mapping[str, str] = {"model": "$.model"}


# -- meters -----------------------------------------------------------------------------------


def meter(
    aggregation: Aggregation | str = Aggregation.SUM,
    *,
    slug: str = "tokens",
    value_property: str | None = "$.tokens",
    group_by: Mapping[str, str] | None = None,
    event_type: str = "prompt",
    event_from: datetime | None = None,
    deleted: bool = False,
) -> Meter:
    """A meter of `prompt` events, not stored; COUNT meters get no value property."""
    aggregation = Aggregation(aggregation)
    return Meter(
        id=new_id(),
        slug=slug,
        name=slug,
        aggregation=aggregation,
        event_type=event_type,
        created_at=JANUARY,
        updated_at=JANUARY,
        value_property=None if aggregation is Aggregation.COUNT else value_property,
        group_by=dict(group_by or {}),
        event_from=event_from,
        deleted_at=JANUARY if deleted else None,
    )


def save_meter(database: Database, definition: Meter) -> Meter:
    """Stores the meter as the meter service does: with its roll-ups (a live one)."""
    with database.unit_of_work(write=True) as uow:
        uow.meters.add(definition)
        if not definition.is_deleted:
            uow.rollups.start(definition)
        uow.commit()
    return definition


def make_meter(
    context: ServiceContext,
    slug: str = "tokens",
    aggregation: Aggregation | str = Aggregation.SUM,
    *,
    value_property: str | None = "$.tokens",
    group_by: Mapping[str, str] = MODEL_GROUP_BY,
    event_type: str = "prompt",
    deleted: bool = False,
) -> Meter:
    """Stores a meter (by default: SUM of `$.tokens`, grouped by `$.model`)."""
    definition = meter(
        aggregation,
        slug=slug,
        value_property=value_property,
        group_by=group_by,
        event_type=event_type,
        deleted=deleted,
    )
    return save_meter(context.database, definition)


# -- features and customers -------------------------------------------------------------------


def make_feature(
    context: ServiceContext,
    key: str = "ai_tokens",
    meter_slug: str | None = "tokens",
    filters: Mapping[str, str] | None = None,
) -> str:
    """Creates the feature (`filters` in the legacy `$eq` form); returns its id."""
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


ACME = CustomerOwner("acme")
"""The owner naming `make_customer`'s default customer."""


def make_customer(
    context: ServiceContext, key: str = "acme", subject_keys: tuple[str, ...] = ("acme",)
) -> str:
    """Creates the customer; returns its id."""
    return customers.create_customer(
        context, CustomerDetails(name=key.upper(), key=key, subject_keys=subject_keys)
    ).id


BOOLEAN_ENTITLEMENT_ID = "01HZZZZZZZZZZZZZZZZZZZENT1"


def add_boolean_entitlement_row(
    context: ServiceContext,
    customer_id: str,
    *,
    at: datetime = JANUARY,
    active_to: datetime | None = None,
) -> str:
    """A feature `sso` and a boolean entitlement to it, active from `at`, written as rows: for
    suites whose subject is not entitlements (and for an end the service cannot schedule)."""
    feature_id = "01HZZZZZZZZZZZZZZZZZZZFEAT"
    with context.database.engine.begin() as connection:
        connection.execute(
            insert(feature_rows).values(
                id=feature_id, key="sso", name="SSO", created_at=at, updated_at=at
            )
        )
        connection.execute(
            insert(entitlements).values(
                id=BOOLEAN_ENTITLEMENT_ID,
                type="boolean",
                customer_id=customer_id,
                feature_id=feature_id,
                feature_key="sso",
                active_from=at,
                active_to=active_to,
                created_at=at,
                updated_at=at,
            )
        )
    return BOOLEAN_ENTITLEMENT_ID


# -- events -----------------------------------------------------------------------------------


def event(
    id: str,
    time: datetime | None,
    data: Mapping[str, Any] | None = None,
    *,
    subject: str = "acme",
    type: str = "prompt",
    source: str = "test",
) -> Event:
    return Event(id=id, source=source, type=type, subject=subject, time=time, data=data)


def store_events(
    database: Database, batch: Sequence[Event], received_at: datetime = JANUARY
) -> int:
    """Stores the events as ingest would; returns how many were new."""
    with database.unit_of_work(write=True) as uow:
        stored = uow.usage_store.ingest(batch, received_at)
        uow.commit()
    return stored


def send_usage(
    context: ServiceContext,
    tokens: int | float | str,
    at: datetime,
    *,
    subject: str = "acme",
    model: str = "gpt-4o",
    event_type: str = "prompt",
) -> None:
    """One usage event at `at` (a fresh id each time), received now (the context's clock), as
    ingest would receive it: an event for an earlier time is a late one."""
    usage = event(
        new_id(),
        at,
        {"tokens": tokens, "model": model},
        subject=subject,
        type=event_type,
        source="tests",
    )
    store_events(context.database, [usage], context.clock())


# -- entitlement and grant requests -----------------------------------------------------------


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
