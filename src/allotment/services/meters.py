"""Meters: create, list, get, update, delete, and query their usage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Literal

from allotment.domain.instants import checked_instant
from allotment.domain.meters import (
    SUBJECT_GROUP,
    Meter,
    MeterDefinition,
    MeterQuery,
    MeterQueryResult,
    MeterQueryRow,
    check_definition,
    check_query,
    check_update,
    sort_key,
    whole_range_bounds,
    window_end,
)
from allotment.errors import Conflict, ErrorList, InvalidInput, NotFound, PreconditionFailed
from allotment.ids import new_id
from allotment.services.context import ServiceContext
from allotment.storage import UnitOfWork
from allotment.storage.repositories.versions import METERS

MeterOrder = Literal["key", "name", "aggregation", "createdAt", "updatedAt"]

GROUP_VALUES_DEFAULT_SPAN = timedelta(hours=24)
"""Group-by values are listed over the last day unless a range is given (as OpenMeter does)."""


def _find(uow: UnitOfWork, id_or_slug: str) -> Meter:
    meter = uow.meters.find(id_or_slug)
    if meter is None:
        raise NotFound(f"meter not found: {id_or_slug}", field="meterIdOrSlug")
    return meter


def _find_live(uow: UnitOfWork, id_or_slug: str) -> Meter:
    meter = _find(uow, id_or_slug)
    if meter.is_deleted:
        raise PreconditionFailed(f"meter {meter.slug} is deleted", field="meterIdOrSlug")
    return meter


def create_meter(context: ServiceContext, definition: MeterDefinition) -> Meter:
    check_definition(definition).raise_if_any("invalid meter")
    now = context.clock()
    meter = Meter(
        id=new_id(),
        slug=definition.slug,
        name=definition.name or definition.slug,
        description=definition.description,
        metadata=definition.metadata,
        aggregation=definition.aggregation,
        event_type=definition.event_type,
        event_from=definition.event_from,
        value_property=definition.value_property,
        group_by=dict(definition.group_by),
        created_at=now,
        updated_at=now,
    )
    with context.database.unit_of_work(write=True) as uow:
        # First: waits for ingests in flight, so the backfill boundary is exact.
        uow.versions.bump(METERS)
        existing = uow.meters.get_live_by_slug(meter.slug)
        if existing is not None:
            raise Conflict(
                f"meter with the same slug already exists: {meter.slug}",
                field="slug",
                conflicting_entity_id=existing.id,
            )
        uow.meters.add(meter)
        uow.rollups.start(meter)
        uow.commit()
    return meter


def list_meters(
    context: ServiceContext,
    *,
    order_by: MeterOrder = "key",
    descending: bool = False,
    include_deleted: bool = False,
    page: int | None = None,
    page_size: int | None = None,
) -> list[Meter]:
    """All meters in the asked order; `page`/`pageSize` take one page of them when given."""
    limit = offset = None
    if page is not None or page_size is not None:
        limit = page_size or 100
        offset = ((page or 1) - 1) * limit
    with context.database.unit_of_work() as uow:
        return uow.meters.list_all(
            order_by=order_by,
            descending=descending,
            include_deleted=include_deleted,
            offset=offset or 0,
            limit=limit,
        )


def get_meter(context: ServiceContext, id_or_slug: str) -> Meter:
    """By id, else by slug (the live meter, or the last deleted one with that slug)."""
    with context.database.unit_of_work() as uow:
        return _find(uow, id_or_slug)


def update_meter(
    context: ServiceContext,
    id_or_slug: str,
    *,
    name: str | None,
    description: str | None,
    metadata: Mapping[str, str] | None,
    group_by: Mapping[str, str],
) -> Meter:
    """Replace the mutable fields; an omitted name falls back to the slug, an omitted group-by
    clears them. A group-by key that a live feature filters on cannot be dropped (409)."""
    now = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        uow.versions.bump(METERS)
        meter = _find_live(uow, id_or_slug)
        check_update(
            ErrorList(),
            name=name,
            description=description,
            group_by=group_by,
            value_property=meter.value_property,
        ).raise_if_any("invalid meter")
        for feature_key, filters in uow.meters.live_feature_filters(meter.slug).items():
            dropped = sorted(set(filters) - set(group_by))
            if dropped:
                raise Conflict(
                    f"feature {feature_key} filters on group-by {', '.join(dropped)} of meter "
                    f"{meter.slug}; keep the key or change the feature first",
                    field="groupBy",
                )
        updated = replace(
            meter,
            name=name or meter.slug,
            description=description,
            metadata=metadata,
            group_by=dict(group_by),
            updated_at=now,
        )
        uow.meters.update(updated)
        if dict(updated.group_by) != dict(meter.group_by):
            # Roll-ups are kept per group-by value: a new generation, backfilled from scratch.
            uow.rollups.start(updated)
        uow.commit()
    return updated


def delete_meter(context: ServiceContext, id_or_slug: str) -> None:
    """Soft delete: the meter stays listable with `includeDeleted`, its slug becomes free.
    Deleting a deleted meter does nothing; a meter a live feature reads cannot be deleted."""
    now = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        uow.versions.bump(METERS)
        meter = _find(uow, id_or_slug)
        if meter.is_deleted:
            return
        if uow.meters.is_used_by_live_feature(meter.slug):
            raise Conflict(
                f"meter {meter.slug} is used by a feature; archive the feature first",
                field="meterIdOrSlug",
            )
        uow.meters.delete(meter.id, now)
        uow.commit()


def query_meter(context: ServiceContext, id_or_slug: str, query: MeterQuery) -> MeterQueryResult:
    """The meter's usage per window and group, in one query over its events."""
    with context.database.unit_of_work() as uow:
        meter = _find(uow, id_or_slug)
        grouping, errors = check_query(meter, query)
        errors.raise_if_any("invalid meter query")
        customer_subjects = None
        if query.customer_ids:
            customer_subjects = uow.events.subjects_of_customers(query.customer_ids)
            missing = [c for c in query.customer_ids if c not in customer_subjects]
            if missing:
                raise NotFound(
                    f"customer not found: {', '.join(missing)}", field="filterCustomerId"
                )
        buckets = uow.usage_store.aggregate(meter, query, grouping, customer_subjects)
        display_names = (
            uow.subjects.display_names(b.subject for b in buckets if b.subject is not None)
            if grouping.by_subject
            else {}
        )
    zone = query.zone
    rows = []
    for bucket in buckets:
        if query.window_size is not None and bucket.window_start is not None:
            start = bucket.window_start
            end = window_end(start, query.window_size, zone)
        else:
            start, end = whole_range_bounds(query, bucket.earliest, bucket.latest)
        rows.append(
            MeterQueryRow(
                value=bucket.value,
                window_start=start,
                window_end=end,
                subject=bucket.subject if grouping.by_subject else None,
                customer_id=bucket.customer_id if grouping.by_customer else None,
                group_by=dict(zip(grouping.keys, bucket.group_values, strict=True)),
            )
        )
    rows.sort(key=sort_key)
    return MeterQueryResult(
        meter=meter,
        query=query,
        grouping=grouping,
        rows=rows,
        subject_display_names=display_names,
    )


def _check_range(from_time: datetime | None, to_time: datetime | None) -> None:
    for name, instant in (("from", from_time), ("to", to_time)):
        if instant is not None:
            checked_instant(instant, name)
    if from_time is not None and to_time is not None and from_time >= to_time:
        raise InvalidInput("to must be after from", field="to")


def list_meter_subjects(
    context: ServiceContext,
    id_or_slug: str,
    from_time: datetime | None = None,
    to_time: datetime | None = None,
) -> list[str]:
    """Subjects with events the meter counts in `[from_time, to_time)` (default: all time)."""
    _check_range(from_time, to_time)
    with context.database.unit_of_work() as uow:
        meter = _find(uow, id_or_slug)
        return uow.usage_store.subjects(meter, from_time, to_time)


def list_group_by_values(
    context: ServiceContext,
    id_or_slug: str,
    key: str,
    from_time: datetime | None = None,
    to_time: datetime | None = None,
) -> list[str]:
    """Distinct values of one group-by key in `[from_time, to_time)`; the last day by default.
    `subject` lists subjects, as it is a group-by key of every meter query."""
    if from_time is None and to_time is None:
        from_time = context.clock() - GROUP_VALUES_DEFAULT_SPAN
    _check_range(from_time, to_time)
    with context.database.unit_of_work() as uow:
        meter = _find(uow, id_or_slug)
        if key == SUBJECT_GROUP:
            return uow.usage_store.subjects(meter, from_time, to_time)
        if key not in meter.group_by:
            raise InvalidInput(
                f"invalid group by: {key!r} is not a group-by key of meter {meter.slug}",
                field="groupByKey",
            )
        return uow.usage_store.group_values(meter, key, from_time, to_time)
