"""Storage for grants: append-only apart from the void and delete timestamps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, insert, or_, select, update

from allotment.domain.entitlements import GrantFilter, GrantOrderBy, GrantRecord
from allotment.domain.listing import SortOrder, Window
from allotment.domain.periods import Expiration
from allotment.storage.repositories.base import Repository, recurrence_of
from allotment.storage.tables import customer_subjects, customers, entitlements, grants


def _to_grant(row: Any) -> GrantRecord:
    expiration = None
    if row.expiration_duration is not None and row.expiration_count is not None:
        expiration = Expiration.parse(row.expiration_duration, row.expiration_count)
    return GrantRecord(
        id=row.id,
        entitlement_id=row.entitlement_id,
        amount=row.amount,
        priority=row.priority,
        effective_at=row.effective_at,
        min_rollover_amount=row.min_rollover_amount,
        max_rollover_amount=row.max_rollover_amount,
        created_at=row.created_at,
        updated_at=row.updated_at,
        expiration=expiration,
        expires_at=row.expires_at,
        recurrence=recurrence_of(row.recurrence_interval, row.recurrence_anchor),
        metadata=row.metadata or {},
        annotations=row.annotations or {},
        voided_at=row.voided_at,
        deleted_at=row.deleted_at,
    )


_ORDER_COLUMNS = {
    GrantOrderBy.ID: grants.c.id,
    GrantOrderBy.CREATED_AT: grants.c.created_at,
    GrantOrderBy.UPDATED_AT: grants.c.updated_at,
    GrantOrderBy.EFFECTIVE_AT: grants.c.effective_at,
    GrantOrderBy.EXPIRES_AT: grants.c.expires_at,
}


class GrantRepository(Repository):
    def add(self, grant: GrantRecord) -> None:
        self.changes.entitlement_ids.add(grant.entitlement_id)
        self.connection.execute(
            insert(grants).values(
                id=grant.id,
                entitlement_id=grant.entitlement_id,
                amount=grant.amount,
                priority=grant.priority,
                effective_at=grant.effective_at,
                expiration_duration=grant.expiration.duration.value if grant.expiration else None,
                expiration_count=grant.expiration.count if grant.expiration else None,
                expires_at=grant.expires_at,
                min_rollover_amount=grant.min_rollover_amount,
                max_rollover_amount=grant.max_rollover_amount,
                recurrence_interval=grant.recurrence.interval.iso if grant.recurrence else None,
                recurrence_anchor=grant.recurrence.anchor if grant.recurrence else None,
                metadata=dict(grant.metadata) or None,
                annotations=dict(grant.annotations) or None,
                voided_at=grant.voided_at,
                created_at=grant.created_at,
                updated_at=grant.updated_at,
                deleted_at=grant.deleted_at,
            )
        )

    def get(self, grant_id: str) -> GrantRecord | None:
        row = self.connection.execute(select(grants).where(grants.c.id == grant_id)).first()
        return None if row is None else _to_grant(row)

    def for_entitlements(self, entitlement_ids: Sequence[str]) -> dict[str, list[GrantRecord]]:
        """Grants of several entitlements in one query, keyed by entitlement id."""
        result: dict[str, list[GrantRecord]] = {e: [] for e in entitlement_ids}
        if not entitlement_ids:
            return result
        query = (
            select(grants)
            .where(grants.c.entitlement_id.in_(list(entitlement_ids)))
            .order_by(grants.c.created_at, grants.c.id)
        )
        for row in self.connection.execute(query):
            result[row.entitlement_id].append(_to_grant(row))
        return result

    def void(self, grant_id: str, at: datetime, updated_at: datetime) -> None:
        self.changes.entitlement_ids.update(
            self.connection.execute(
                select(grants.c.entitlement_id).where(grants.c.id == grant_id)
            ).scalars()
        )
        self.connection.execute(
            update(grants)
            .where(grants.c.id == grant_id)
            .values(voided_at=at, updated_at=updated_at)
        )

    def delete_for_entitlement(self, entitlement_id: str, at: datetime) -> None:
        self.changes.entitlement_ids.add(entitlement_id)
        """Deleting an entitlement ends its grants at the same instant."""
        self.connection.execute(
            update(grants)
            .where(grants.c.entitlement_id == entitlement_id, grants.c.deleted_at.is_(None))
            .values(deleted_at=at, updated_at=at)
        )

    def _conditions(self, filters: GrantFilter) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if not filters.include_deleted:
            conditions.append(grants.c.deleted_at.is_(None))
        if filters.entitlement_ids:
            conditions.append(grants.c.entitlement_id.in_(list(filters.entitlement_ids)))
        owned = select(entitlements.c.id)
        narrowed = False
        if filters.features:
            features = list(filters.features)
            owned = owned.where(
                or_(
                    entitlements.c.feature_id.in_(features),
                    entitlements.c.feature_key.in_(features),
                )
            )
            narrowed = True
        if filters.customers:
            keys = list(filters.customers)
            matching = select(customers.c.id).where(
                or_(customers.c.id.in_(keys), customers.c.key.in_(keys))
            )
            owned = owned.where(entitlements.c.customer_id.in_(matching))
            narrowed = True
        if filters.subject_keys:
            keys = list(filters.subject_keys)
            by_subject = select(customer_subjects.c.customer_id).where(
                customer_subjects.c.subject_key.in_(keys)
            )
            by_key = select(customers.c.id).where(
                customers.c.key.in_(keys), customers.c.deleted_at.is_(None)
            )
            owned = owned.where(
                or_(
                    entitlements.c.customer_id.in_(by_subject),
                    entitlements.c.customer_id.in_(by_key),
                )
            )
            narrowed = True
        if narrowed:
            conditions.append(grants.c.entitlement_id.in_(owned))
        return conditions

    def search(
        self,
        filters: GrantFilter,
        *,
        order_by: GrantOrderBy = GrantOrderBy.CREATED_AT,
        order: SortOrder = SortOrder.ASC,
        window: Window | None = None,
    ) -> tuple[list[GrantRecord], int]:
        """A page of grants matching `filters`, and how many match in all."""
        column = _ORDER_COLUMNS[order_by]
        ordering = [column.desc() if order is SortOrder.DESC else column, grants.c.id]
        rows, total = self.page(grants, self._conditions(filters), ordering, window)
        return [_to_grant(row) for row in rows], total
