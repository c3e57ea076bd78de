"""Counts for an overview: how many live meters, features, customers and entitlements there
are, and how many events arrived since an instant. Each is one `COUNT(*)` over an index."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Table, func, or_, select

from allotment.storage.repositories.base import Repository
from allotment.storage.tables import customers, entitlements, events, features, meters


class CountRepository(Repository):
    def live_meters(self) -> int:
        return self._count(meters, meters.c.deleted_at.is_(None))

    def live_features(self) -> int:
        return self._count(features, features.c.archived_at.is_(None))

    def live_customers(self) -> int:
        return self._count(customers, customers.c.deleted_at.is_(None))

    def active_entitlements(self, at: datetime) -> int:
        """Entitlements active at `at`: started, not ended, not deleted."""
        return self._count(
            entitlements,
            entitlements.c.active_from <= at,
            entitlements.c.deleted_at.is_(None),
            or_(entitlements.c.active_to.is_(None), entitlements.c.active_to > at),
        )

    def events_ingested_since(self, since: datetime) -> int:
        return self._count(events, events.c.ingested_at >= since)

    def _count(self, table: Table, *conditions: ColumnElement[bool]) -> int:
        query = select(func.count()).select_from(table).where(*conditions)
        return int(self.connection.execute(query).scalar_one())
