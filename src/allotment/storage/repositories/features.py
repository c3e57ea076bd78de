"""Storage for features.

`meter_group_by_filters` holds every filter in its advanced JSON form, e.g.
`{"model": {"$eq": "gpt-4"}}`; the legacy `meterGroupByFilters` map is derived from it on the way
out. A key names at most one live (not archived) feature: a partial unique index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.dialects import postgresql, sqlite

from allotment.domain.features import Feature, FeatureFilter, FeatureOrderBy
from allotment.domain.group_filters import StringFilter, parse_filter
from allotment.domain.listing import ListResult, SortOrder, Window
from allotment.storage.repositories.base import Repository, json_document
from allotment.storage.tables import features


def _filters_from_document(document: Mapping[str, Any] | None) -> dict[str, StringFilter]:
    if not document:
        return {}
    return {
        key: parse_filter(value, f"meterGroupByFilters.{key}") for key, value in document.items()
    }


def _to_feature(row: Any) -> Feature:
    return Feature(
        id=row.id,
        key=row.key,
        name=row.name,
        meter_slug=row.meter_slug,
        group_by_filters=_filters_from_document(row.meter_group_by_filters),
        metadata=row.metadata,
        created_at=row.created_at,
        updated_at=row.updated_at,
        archived_at=row.archived_at,
        unit_cost=row.unit_cost,
    )


def _values(feature: Feature) -> dict[str, Any]:
    filters = {key: value.to_document() for key, value in feature.group_by_filters.items()}
    return {
        "id": feature.id,
        "key": feature.key,
        "name": feature.name,
        "meter_slug": feature.meter_slug,
        "meter_group_by_filters": json_document(filters or None),
        "metadata": json_document(feature.metadata),
        "created_at": feature.created_at,
        "updated_at": feature.updated_at,
        "archived_at": feature.archived_at,
        "unit_cost": json_document(feature.unit_cost),
    }


_ORDER_COLUMNS = {
    FeatureOrderBy.ID: features.c.id,
    FeatureOrderBy.KEY: features.c.key,
    FeatureOrderBy.NAME: features.c.name,
    FeatureOrderBy.CREATED_AT: features.c.created_at,
    FeatureOrderBy.UPDATED_AT: features.c.updated_at,
}


class FeatureRepository(Repository):
    def add_if_key_free(self, feature: Feature) -> bool:
        self.changes.catalog = True
        """Inserts unless a live feature already has the key; True when inserted.

        ON CONFLICT rather than check-then-insert, so two creates racing for one key end in one
        feature and one conflict, never in a unique-index error.
        """
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        statement = (
            dialect_insert(features)
            .values(**_values(feature))
            .on_conflict_do_nothing(
                index_elements=[features.c.key], index_where=features.c.archived_at.is_(None)
            )
            # RETURNING, not rowcount: psycopg reports -1 for INSERT ... ON CONFLICT.
            .returning(features.c.id)
        )
        return self.connection.execute(statement).first() is not None

    def get_many(self, feature_ids: Sequence[str]) -> dict[str, Feature]:
        """Features by id (archived ones too), in one query."""
        if not feature_ids:
            return {}
        rows = self.connection.execute(
            select(features).where(features.c.id.in_(sorted(set(feature_ids))))
        )
        return {row.id: _to_feature(row) for row in rows}

    def get(self, feature_id: str) -> Feature | None:
        """By id, archived or not."""
        row = self.connection.execute(select(features).where(features.c.id == feature_id)).first()
        return None if row is None else _to_feature(row)

    def get_by_key(self, key: str, *, include_archived: bool = False) -> Feature | None:
        """The live feature with this key; with `include_archived`, failing that, the one
        archived last."""
        query = select(features).where(features.c.key == key)
        if not include_archived:
            query = query.where(features.c.archived_at.is_(None))
        # NULL (live) first on both databases, then the latest archived.
        query = query.order_by(
            features.c.archived_at.is_not(None),
            features.c.archived_at.desc(),
            features.c.created_at.desc(),
            features.c.id.desc(),
        )
        row = self.connection.execute(query.limit(1)).first()
        return None if row is None else _to_feature(row)

    def archive(self, feature_id: str, at: datetime) -> None:
        self.changes.catalog = True
        self.connection.execute(
            update(features)
            .where(features.c.id == feature_id, features.c.archived_at.is_(None))
            .values(archived_at=at, updated_at=at)
        )

    def list_matching(self, criteria: FeatureFilter, window: Window) -> ListResult[Feature]:
        conditions: list[ColumnElement[bool]] = []
        if criteria.meter_slugs:
            conditions.append(features.c.meter_slug.in_(criteria.meter_slugs))
        if not criteria.include_archived:
            conditions.append(features.c.archived_at.is_(None))
        column = _ORDER_COLUMNS[criteria.order_by]
        descending = criteria.order is SortOrder.DESC
        # Archived features may share a key with the live one: order ties by creation, then id.
        ordering = [
            part.desc() if descending else part.asc()
            for part in (column, features.c.created_at, features.c.id)
        ]
        rows, total = self.page(features, conditions, ordering, window)
        return ListResult(items=[_to_feature(row) for row in rows], total_count=total)
