"""Storage for plans: one row per version of a key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, insert, null, or_, select, update
from sqlalchemy.exc import IntegrityError

from allotment.domain.listing import ListResult, SortOrder, Window
from allotment.domain.plan_documents import phases_document, phases_of
from allotment.domain.plans import Plan, PlanFilter, PlanOrderBy, PlanStatus, PlanTerms
from allotment.errors import Conflict
from allotment.storage.repositories.base import Repository, json_document
from allotment.storage.tables import plans


def _to_plan(row: Any) -> Plan:
    return Plan(
        id=row.id,
        key=row.key,
        version=row.version,
        terms=PlanTerms(
            name=row.name,
            description=row.description,
            metadata=row.metadata,
            currency=row.currency,
            billing_cadence=row.billing_cadence,
            alignment=row.alignment,
            pro_rating_config=row.pro_rating_config,
            settlement_mode=row.settlement_mode,
            phases=phases_of(row.phases),
        ),
        created_at=row.created_at,
        updated_at=row.updated_at,
        effective_from=row.effective_from,
        effective_to=row.effective_to,
        deleted_at=row.deleted_at,
    )


def _terms_values(terms: PlanTerms) -> dict[str, Any]:
    return {
        "name": terms.name,
        "description": terms.description,
        "metadata": json_document(terms.metadata),
        "currency": terms.currency,
        "billing_cadence": terms.billing_cadence,
        "alignment": json_document(terms.alignment),
        "pro_rating_config": json_document(terms.pro_rating_config),
        "settlement_mode": terms.settlement_mode,
        "phases": phases_document(terms.phases),
    }


_ORDER_COLUMNS = {
    PlanOrderBy.ID: plans.c.id,
    PlanOrderBy.KEY: plans.c.key,
    PlanOrderBy.VERSION: plans.c.version,
    PlanOrderBy.CREATED_AT: plans.c.created_at,
    PlanOrderBy.UPDATED_AT: plans.c.updated_at,
}


def _status_condition(status: PlanStatus, now: datetime) -> ColumnElement[bool]:
    start, end = plans.c.effective_from, plans.c.effective_to
    if status is PlanStatus.DRAFT:
        return start.is_(None)
    if status is PlanStatus.SCHEDULED:
        return and_(start.is_not(None), start > now, or_(end.is_(None), end > now))
    if status is PlanStatus.ARCHIVED:
        return and_(start.is_not(None), end.is_not(None), end <= now)
    return and_(start.is_not(None), start <= now, or_(end.is_(None), end > now))


class PlanRepository(Repository):
    def add(self, plan: Plan) -> None:
        """Insert; a second version number or a second draft of the key is a Conflict."""
        values = {
            "id": plan.id,
            "key": plan.key,
            "version": plan.version,
            "effective_from": plan.effective_from,
            "effective_to": plan.effective_to,
            "created_at": plan.created_at,
            "updated_at": plan.updated_at,
            "deleted_at": plan.deleted_at,
            **_terms_values(plan.terms),
        }
        try:
            with self.connection.begin_nested():
                self.connection.execute(insert(plans).values(**values))
        except IntegrityError as error:
            raise Conflict(
                f"plan '{plan.key}' already has a draft version (or version {plan.version}); "
                "edit, publish or delete it first",
                field="key",
            ) from error

    def get(self, plan_id: str) -> Plan | None:
        row = self.connection.execute(select(plans).where(plans.c.id == plan_id)).first()
        return None if row is None else _to_plan(row)

    def versions_of(self, key: str) -> list[Plan]:
        """Every live version of the key, newest first."""
        rows = self.connection.execute(
            select(plans)
            .where(plans.c.key == key, plans.c.deleted_at.is_(None))
            .order_by(plans.c.version.desc())
        )
        return [_to_plan(row) for row in rows]

    def highest_version(self, key: str) -> int:
        """Deleted versions count too: a version number is never reused."""
        found = self.connection.execute(
            select(func.max(plans.c.version)).where(plans.c.key == key)
        ).scalar_one()
        return int(found or 0)

    def lock_key(self, key: str) -> None:
        """Serialise writers of one key's versions (publish, next): PostgreSQL row locks;
        SQLite write units already exclude each other."""
        if self.dialect == "postgresql":
            self.connection.execute(select(plans.c.id).where(plans.c.key == key).with_for_update())

    def replace_terms(self, plan_id: str, terms: PlanTerms, at: datetime) -> None:
        self.connection.execute(
            update(plans).where(plans.c.id == plan_id).values(updated_at=at, **_terms_values(terms))
        )

    def set_effective(
        self, plan_id: str, at: datetime, *, start: datetime | None, end: datetime | None
    ) -> None:
        self.connection.execute(
            update(plans)
            .where(plans.c.id == plan_id)
            .values(
                effective_from=null() if start is None else start,
                effective_to=null() if end is None else end,
                updated_at=at,
            )
        )

    def delete(self, plan_id: str, at: datetime) -> None:
        self.connection.execute(
            update(plans).where(plans.c.id == plan_id).values(deleted_at=at, updated_at=at)
        )

    def search(
        self,
        filters: PlanFilter,
        now: datetime,
        *,
        order_by: PlanOrderBy = PlanOrderBy.CREATED_AT,
        order: SortOrder = SortOrder.ASC,
        window: Window | None = None,
    ) -> ListResult[Plan]:
        conditions: list[ColumnElement[bool]] = []
        if not filters.include_deleted:
            conditions.append(plans.c.deleted_at.is_(None))
        if filters.ids:
            conditions.append(plans.c.id.in_(list(filters.ids)))
        if filters.keys:
            conditions.append(plans.c.key.in_(list(filters.keys)))
        if filters.currencies:
            conditions.append(plans.c.currency.in_(list(filters.currencies)))
        if filters.statuses:
            conditions.append(or_(*(_status_condition(s, now) for s in filters.statuses)))
        if filters.key_versions:
            conditions.append(
                or_(
                    *(
                        and_(plans.c.key == key, plans.c.version.in_(list(versions)))
                        for key, versions in filters.key_versions.items()
                    )
                )
            )
        column = _ORDER_COLUMNS[order_by]
        descending = order is SortOrder.DESC
        ordering = [
            part.desc() if descending else part.asc()
            for part in (column, plans.c.version, plans.c.id)
        ]
        rows, total = self.page(plans, conditions, ordering, window)
        return ListResult(items=[_to_plan(row) for row in rows], total_count=total)
