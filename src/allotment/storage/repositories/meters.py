"""Storage for meters: definitions (soft-deleted, unique live slug) and their queries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, case, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from allotment.domain.meters import (
    Aggregation,
    Grouping,
    Meter,
    MeterBucket,
    MeterQuery,
)
from allotment.domain.rollups import rounded_average
from allotment.errors import Conflict
from allotment.storage.meter_sql import EventScope, counted_events, for_dialect, to_decimal
from allotment.storage.repositories.base import Repository
from allotment.storage.tables import events, features, meters
from allotment.storage.types import from_micros

MeterOrder = Literal["key", "name", "aggregation", "createdAt", "updatedAt"]

_ORDER_COLUMNS = {
    "key": meters.c.slug,
    "name": meters.c.name,
    "aggregation": meters.c.aggregation,
    "createdAt": meters.c.created_at,
    "updatedAt": meters.c.updated_at,
}


def _to_meter(row: Any) -> Meter:
    return Meter(
        id=row.id,
        slug=row.slug,
        name=row.name,
        description=row.description,
        metadata=row.metadata,
        aggregation=Aggregation(row.aggregation),
        event_type=row.event_type,
        event_from=row.event_from,
        value_property=row.value_property,
        group_by=dict(row.group_by or {}),
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
    )


class MeterRepository(Repository):
    # Definitions

    def add(self, meter: Meter) -> None:
        self.changes.catalog = True
        """Raises Conflict when a live meter already has the slug (also under a race)."""
        try:
            with self.connection.begin_nested():
                self.connection.execute(
                    insert(meters).values(
                        id=meter.id,
                        slug=meter.slug,
                        name=meter.name,
                        description=meter.description,
                        metadata=dict(meter.metadata) if meter.metadata is not None else None,
                        aggregation=meter.aggregation.value,
                        event_type=meter.event_type,
                        event_from=meter.event_from,
                        value_property=meter.value_property,
                        group_by=dict(meter.group_by),
                        created_at=meter.created_at,
                        updated_at=meter.updated_at,
                        deleted_at=meter.deleted_at,
                    )
                )
        except IntegrityError:
            raise Conflict(
                f"meter with the same slug already exists: {meter.slug}", field="slug"
            ) from None

    def get(self, meter_id: str) -> Meter | None:
        row = self.connection.execute(select(meters).where(meters.c.id == meter_id)).first()
        return None if row is None else _to_meter(row)

    def get_live_by_slug(self, slug: str) -> Meter | None:
        """The meter that currently answers to `slug` (at most one is live)."""
        row = self.connection.execute(
            select(meters).where(meters.c.slug == slug, meters.c.deleted_at.is_(None))
        ).first()
        return None if row is None else _to_meter(row)

    def for_slugs(self, slugs: Sequence[str]) -> dict[str, Meter]:
        """The meter answering to each slug: the live one, else the last deleted one."""
        if not slugs:
            return {}
        rows = self.connection.execute(
            select(meters)
            .where(meters.c.slug.in_(sorted(set(slugs))))
            .order_by(meters.c.deleted_at.is_(None), meters.c.deleted_at, meters.c.id)
        )
        # Ordered so that the one to keep comes last: deleted ones by time, the live one after.
        return {row.slug: _to_meter(row) for row in rows}

    def find(self, id_or_slug: str) -> Meter | None:
        """By id first, then the live meter with that slug, then the last deleted one with it."""
        meter = self.get(id_or_slug)
        if meter is not None:
            return meter
        # NULL (live) first on both databases, then the latest deleted.
        row = self.connection.execute(
            select(meters)
            .where(meters.c.slug == id_or_slug)
            .order_by(
                meters.c.deleted_at.is_not(None), meters.c.deleted_at.desc(), meters.c.id.desc()
            )
            .limit(1)
        ).first()
        return None if row is None else _to_meter(row)

    def list_all(
        self,
        *,
        order_by: MeterOrder = "key",
        descending: bool = False,
        include_deleted: bool = False,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[Meter]:
        column = _ORDER_COLUMNS[order_by]
        query = select(meters).order_by(
            column.desc() if descending else column.asc(),
            meters.c.id.desc() if descending else meters.c.id.asc(),
        )
        if not include_deleted:
            query = query.where(meters.c.deleted_at.is_(None))
        if offset:
            query = query.offset(offset)
        if limit is not None:
            query = query.limit(limit)
        return [_to_meter(row) for row in self.connection.execute(query)]

    def list_live_for_event_types(self, event_types: Sequence[str]) -> list[Meter]:
        if not event_types:
            return []
        query = select(meters).where(
            meters.c.event_type.in_(sorted(set(event_types))), meters.c.deleted_at.is_(None)
        )
        return [_to_meter(row) for row in self.connection.execute(query.order_by(meters.c.slug))]

    def update(self, meter: Meter) -> None:
        self.changes.catalog = True
        """Store the mutable fields: name, description, metadata, group-by, updated_at."""
        self.connection.execute(
            update(meters)
            .where(meters.c.id == meter.id)
            .values(
                name=meter.name,
                description=meter.description,
                metadata=dict(meter.metadata) if meter.metadata is not None else None,
                group_by=dict(meter.group_by),
                updated_at=meter.updated_at,
            )
        )

    def delete(self, meter_id: str, at: datetime) -> None:
        self.changes.catalog = True
        self.connection.execute(
            update(meters)
            .where(meters.c.id == meter_id, meters.c.deleted_at.is_(None))
            .values(deleted_at=at, updated_at=at)
        )

    def live_feature_filters(self, slug: str) -> dict[str, Mapping[str, Any]]:
        """Feature key -> its meter group-by filters, for live features reading meter `slug`."""
        query = select(features.c.key, features.c.meter_group_by_filters).where(
            features.c.meter_slug == slug, features.c.archived_at.is_(None)
        )
        return {key: dict(filters or {}) for key, filters in self.connection.execute(query)}

    def is_used_by_live_feature(self, slug: str) -> bool:
        query = select(
            exists().where(features.c.meter_slug == slug, features.c.archived_at.is_(None))
        )
        return bool(self.connection.execute(query).scalar())

    # Queries over the meter's events

    def aggregate(
        self,
        meter: Meter,
        query: MeterQuery,
        grouping: Grouping,
        customer_subjects: Mapping[str, Sequence[str]] | None = None,
    ) -> list[MeterBucket]:
        """One statement: the meter's aggregate per window and group (only groups with data).

        `customer_subjects` (customer id -> subjects) restricts the events to those customers'
        subjects and labels each row with its customer when grouping by customer.
        """
        dialect = for_dialect(self.dialect)
        scope = EventScope(
            from_time=query.from_time,
            to_time=query.to_time,
            subjects=_subject_filter(query.subjects, customer_subjects),
            group_filters=query.filter_group_by,
            advanced_filters=query.advanced_filters,
        )
        extra: list[ColumnElement[Any]] = []
        if query.window_size is not None:
            extra.append(dialect.window_start(query.window_size, query.time_zone).label("window"))
        if grouping.by_subject:
            extra.append(events.c.subject.label("subject"))
        if grouping.by_customer and customer_subjects:
            branches = [
                (events.c.subject == subject, customer_id)
                for customer_id, subjects in customer_subjects.items()
                for subject in subjects
            ]
            extra.append(case(*branches, else_=None).label("customer"))
        group_paths = meter.group_paths
        for index, key in enumerate(grouping.keys):
            extra.append(dialect.group_value(group_paths[key]).label(f"group_{index}"))
        counted = counted_events(meter, dialect, scope, extra)
        group_columns = [counted.c[str(column.key)] for column in extra]
        value = dialect.aggregate(meter.aggregation, counted.c.value, counted.c.time, counted.c.seq)
        statement = (
            select(
                *group_columns,
                value.label("value"),
                func.min(counted.c.time).label("earliest"),
                func.max(counted.c.time).label("latest"),
            )
            .where(counted.c.value.is_not(None))
            .group_by(*group_columns)
        )
        buckets = []
        averaged = meter.aggregation is Aggregation.AVG
        for row in self.connection.execute(statement).mappings():
            if row["earliest"] is None or row["value"] is None:
                continue  # an aggregate over no events is no row at all
            number = to_decimal(row["value"])
            buckets.append(
                MeterBucket(
                    value=rounded_average(number) if averaged else number,
                    earliest=from_micros(int(row["earliest"])),
                    latest=from_micros(int(row["latest"])),
                    window_start=from_micros(int(row["window"])) if "window" in row else None,
                    subject=row.get("subject"),
                    customer_id=row.get("customer"),
                    group_values=tuple(
                        row[f"group_{index}"] for index in range(len(grouping.keys))
                    ),
                )
            )
        return buckets

    def subjects(
        self, meter: Meter, from_time: datetime | None, to_time: datetime | None
    ) -> list[str]:
        """Distinct subjects with events of the meter's type in `[from_time, to_time)`."""
        dialect = for_dialect(self.dialect)
        scope = EventScope(from_time=from_time, to_time=to_time)
        counted = counted_events(meter, dialect, scope, [events.c.subject.label("subject")])
        statement = (
            select(counted.c.subject)
            .where(counted.c.value.is_not(None))
            .distinct()
            .order_by(counted.c.subject)
        )
        return [subject for (subject,) in self.connection.execute(statement)]

    def group_values(
        self, meter: Meter, key: str, from_time: datetime | None, to_time: datetime | None
    ) -> list[str]:
        """Distinct non-null values of group-by `key` among the meter's countable events."""
        dialect = for_dialect(self.dialect)
        scope = EventScope(from_time=from_time, to_time=to_time)
        group = dialect.group_value(meter.group_paths[key]).label("group_value")
        counted = counted_events(meter, dialect, scope, [group])
        statement = (
            select(counted.c.group_value)
            .where(counted.c.value.is_not(None), counted.c.group_value.is_not(None))
            .distinct()
            .order_by(counted.c.group_value)
        )
        return [value for (value,) in self.connection.execute(statement)]


def _subject_filter(
    subjects: Sequence[str], customer_subjects: Mapping[str, Sequence[str]] | None
) -> list[str] | None:
    """The subjects a query may read: those asked for, within the customers' if any asked."""
    allowed: list[str] | None = list(dict.fromkeys(subjects)) if subjects else None
    if customer_subjects is not None:
        of_customers = [s for group in customer_subjects.values() for s in group]
        allowed = of_customers if allowed is None else [s for s in allowed if s in of_customers]
    return allowed
