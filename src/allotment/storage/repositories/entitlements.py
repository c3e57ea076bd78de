"""Storage for entitlements and their manual resets."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from allotment.domain.entitlements import (
    Entitlement,
    EntitlementFilter,
    EntitlementOrderBy,
    EntitlementType,
    OwnerKeys,
    already_entitled,
)
from allotment.domain.listing import SortOrder, Window
from allotment.domain.usage_periods import ManualReset
from allotment.storage.repositories.base import Repository, recurrence_of
from allotment.storage.tables import customer_subjects, customers, entitlements, usage_resets


def _to_entitlement(row: Any) -> Entitlement:
    return Entitlement(
        id=row.id,
        type=EntitlementType(row.type),
        customer_id=row.customer_id,
        feature_id=row.feature_id,
        feature_key=row.feature_key,
        active_from=row.active_from,
        created_at=row.created_at,
        updated_at=row.updated_at,
        usage_period=recurrence_of(row.usage_period_interval, row.usage_period_anchor),
        measure_usage_from=row.measure_usage_from,
        is_soft_limit=bool(row.is_soft_limit),
        issue_after_reset=row.issue_after_reset,
        issue_after_reset_priority=row.issue_after_reset_priority,
        preserve_overage_at_reset=bool(row.preserve_overage_at_reset),
        config=row.config,
        metadata=row.metadata or {},
        active_to=row.active_to,
        deleted_at=row.deleted_at,
        annotations=row.annotations or {},
    )


def _values(entitlement: Entitlement) -> dict[str, Any]:
    period = entitlement.usage_period
    return {
        "id": entitlement.id,
        "type": entitlement.type.value,
        "customer_id": entitlement.customer_id,
        "feature_id": entitlement.feature_id,
        "feature_key": entitlement.feature_key,
        "usage_period_interval": period.interval.iso if period else None,
        "usage_period_anchor": period.anchor if period else None,
        "measure_usage_from": entitlement.measure_usage_from,
        "is_soft_limit": entitlement.is_soft_limit if entitlement.is_metered else None,
        "issue_after_reset": entitlement.issue_after_reset,
        "issue_after_reset_priority": entitlement.issue_after_reset_priority,
        "preserve_overage_at_reset": (
            entitlement.preserve_overage_at_reset if entitlement.is_metered else None
        ),
        "config": entitlement.config,
        "metadata": dict(entitlement.metadata) or None,
        "annotations": dict(entitlement.annotations) or None,
        "active_from": entitlement.active_from,
        "active_to": entitlement.active_to,
        "created_at": entitlement.created_at,
        "updated_at": entitlement.updated_at,
        "deleted_at": entitlement.deleted_at,
    }


_ORDER_COLUMNS = {
    EntitlementOrderBy.CREATED_AT: entitlements.c.created_at,
    EntitlementOrderBy.UPDATED_AT: entitlements.c.updated_at,
}


class EntitlementRepository(Repository):
    def add(self, entitlement: Entitlement) -> None:
        self.changes.customer_ids.add(entitlement.customer_id)
        """Insert; a second live entitlement for the customer and feature key is a Conflict.

        The partial unique index decides, so two concurrent creates cannot both succeed. The
        insert runs in a savepoint so that, on PostgreSQL, the transaction survives the refusal
        long enough to read the entitlement that won.
        """
        try:
            with self.connection.begin_nested():
                self.connection.execute(insert(entitlements).values(**_values(entitlement)))
        except IntegrityError as error:
            live = self.live_for_customer_feature(entitlement.customer_id, entitlement.feature_key)
            if live is None:
                raise
            raise already_entitled(entitlement.feature_key, live.id) from error

    def get(self, entitlement_id: str) -> Entitlement | None:
        row = self.connection.execute(
            select(entitlements).where(entitlements.c.id == entitlement_id)
        ).first()
        return None if row is None else _to_entitlement(row)

    def hold(self, entitlement_id: str) -> None:
        """Keep the entitlement's writers out until commit (a read lock: PostgreSQL FOR SHARE;
        SQLite write units exclude every other writer already)."""
        if self.dialect == "postgresql":
            self.connection.execute(
                select(entitlements.c.id)
                .where(entitlements.c.id == entitlement_id)
                .with_for_update(read=True)
            )

    def held(self, entitlement_ids: Collection[str]) -> dict[str, Entitlement]:
        """The entitlements, each held as `hold` holds one, in one query; ids that name none
        are left out."""
        if not entitlement_ids:
            return {}
        query = select(entitlements).where(entitlements.c.id.in_(sorted(entitlement_ids)))
        if self.dialect == "postgresql":
            query = query.with_for_update(read=True)
        return {row.id: _to_entitlement(row) for row in self.connection.execute(query)}

    def lock(self, entitlement_id: str) -> None:
        """Serialise writers of one entitlement (grants, resets, voids, deletes) until commit.

        PostgreSQL takes a row lock; SQLite write units already hold the database write lock
        (BEGIN IMMEDIATE), which serialises every writer.
        """
        if self.dialect == "postgresql":
            self.connection.execute(
                select(entitlements.c.id)
                .where(entitlements.c.id == entitlement_id)
                .with_for_update()
            )

    def live_for_customer_feature(
        self, customer_id: str, feature_key: str, at: datetime | None = None
    ) -> Entitlement | None:
        """The not deleted entitlement a write by feature key means: the one active at `at`;
        failing that (or without `at`) the open-ended one, else the one starting last. A
        subscription's entitlements follow one another, so there may be several."""
        rows = self.connection.execute(
            select(entitlements)
            .where(
                entitlements.c.customer_id == customer_id,
                entitlements.c.feature_key == feature_key,
                entitlements.c.deleted_at.is_(None),
            )
            .order_by(entitlements.c.active_from.desc(), entitlements.c.id.desc())
        )
        candidates = [_to_entitlement(row) for row in rows]
        if at is not None:
            for entitlement in candidates:
                if entitlement.active_at(at):
                    return entitlement
        for entitlement in candidates:
            if entitlement.active_to is None:
                return entitlement
        return candidates[0] if candidates else None

    def overlapping(
        self,
        customer_id: str,
        feature_key: str,
        start: datetime,
        end: datetime | None,
        *,
        excluding: str | None = None,
    ) -> Entitlement | None:
        """A not deleted entitlement for the customer and feature key whose active window meets
        `[start, end)` (None: open-ended), if any."""
        conditions = [
            entitlements.c.customer_id == customer_id,
            entitlements.c.feature_key == feature_key,
            entitlements.c.deleted_at.is_(None),
            or_(entitlements.c.active_to.is_(None), entitlements.c.active_to > start),
            # An entitlement with an empty window (a cancelled future phase) is never active.
            or_(
                entitlements.c.active_to.is_(None),
                entitlements.c.active_to > entitlements.c.active_from,
            ),
        ]
        if end is not None:
            conditions.append(entitlements.c.active_from < end)
        if excluding is not None:
            conditions.append(entitlements.c.id != excluding)
        row = self.connection.execute(
            select(entitlements).where(*conditions).order_by(entitlements.c.active_from).limit(1)
        ).first()
        return None if row is None else _to_entitlement(row)

    def set_active_to(self, entitlement_id: str, active_to: datetime | None, at: datetime) -> None:
        """Moves the end of an entitlement's active window (a subscription's change, cancel or
        its undoing); the row stays live."""
        self.changes.entitlement_ids.add(entitlement_id)
        self.connection.execute(
            update(entitlements)
            .where(entitlements.c.id == entitlement_id)
            .values(active_to=active_to, updated_at=at)
        )

    def for_customer_feature_at(
        self, customer_id: str, feature_key: str, at: datetime
    ) -> Entitlement | None:
        """The entitlement active at `at` for this customer and feature key, if any: reads of a
        past instant still find an entitlement deleted or overridden since."""
        rows = self.connection.execute(
            select(entitlements)
            .where(
                entitlements.c.customer_id == customer_id,
                entitlements.c.feature_key == feature_key,
                entitlements.c.active_from <= at,
            )
            .order_by(entitlements.c.active_from.desc(), entitlements.c.id.desc())
        )
        for row in rows:
            entitlement = _to_entitlement(row)
            if entitlement.active_at(at):
                return entitlement
        return None

    def for_customer_feature(self, customer_id: str, feature_key: str) -> list[Entitlement]:
        """Every entitlement the customer ever had for this feature key, latest start first
        (the first active at an instant is the one that answers for it)."""
        rows = self.connection.execute(
            select(entitlements)
            .where(
                entitlements.c.customer_id == customer_id,
                entitlements.c.feature_key == feature_key,
            )
            .order_by(entitlements.c.active_from.desc(), entitlements.c.id.desc())
        )
        return [_to_entitlement(row) for row in rows]

    def metered_active(
        self, customer_ids: Sequence[str], entitlement_ids: Sequence[str], at: datetime
    ) -> list[Entitlement]:
        """Metered entitlements active at `at`, of the customers or by id, in id order."""
        if not customer_ids and not entitlement_ids:
            return []
        rows = self.connection.execute(
            select(entitlements)
            .where(
                or_(
                    entitlements.c.customer_id.in_(list(customer_ids)),
                    entitlements.c.id.in_(list(entitlement_ids)),
                ),
                entitlements.c.type == EntitlementType.METERED.value,
                entitlements.c.deleted_at.is_(None),
                entitlements.c.active_from <= at,
                or_(entitlements.c.active_to.is_(None), entitlements.c.active_to > at),
            )
            .order_by(entitlements.c.id)
        )
        return [_to_entitlement(row) for row in rows]

    def newest_live_metered(
        self, feature_ids: Sequence[str] | None, at: datetime
    ) -> Entitlement | None:
        """The live metered entitlement created last (of `feature_ids`; None: any feature)."""
        query = select(entitlements).where(
            entitlements.c.type == EntitlementType.METERED.value,
            entitlements.c.deleted_at.is_(None),
            entitlements.c.active_from <= at,
            or_(entitlements.c.active_to.is_(None), entitlements.c.active_to > at),
        )
        if feature_ids is not None:
            query = query.where(entitlements.c.feature_id.in_(list(feature_ids)))
        query = query.order_by(entitlements.c.created_at.desc(), entitlements.c.id.desc())
        row = self.connection.execute(query.limit(1)).first()
        return None if row is None else _to_entitlement(row)

    def of_customer(self, customer_id: str) -> list[Entitlement]:
        """Every entitlement of the customer, ended ones included."""
        rows = self.connection.execute(
            select(entitlements)
            .where(entitlements.c.customer_id == customer_id)
            .order_by(entitlements.c.feature_key, entitlements.c.created_at)
        )
        return [_to_entitlement(row) for row in rows]

    def active_for_customer(self, customer_id: str, at: datetime) -> list[Entitlement]:
        rows = self.connection.execute(
            select(entitlements)
            .where(entitlements.c.customer_id == customer_id, entitlements.c.active_from <= at)
            .order_by(entitlements.c.feature_key, entitlements.c.created_at)
        )
        return [e for e in map(_to_entitlement, rows) if e.active_at(at)]

    def end(self, entitlement_id: str, at: datetime) -> None:
        self.changes.entitlement_ids.add(entitlement_id)
        """Delete (end) an entitlement at `at`; the row stays for history."""
        self.connection.execute(
            update(entitlements)
            .where(entitlements.c.id == entitlement_id)
            .values(deleted_at=at, active_to=at, updated_at=at)
        )

    def _conditions(self, filters: EntitlementFilter) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if not filters.include_deleted:
            conditions.append(entitlements.c.deleted_at.is_(None))
        if filters.customer_ids:
            conditions.append(entitlements.c.customer_id.in_(list(filters.customer_ids)))
        if filters.customer_keys:
            keyed = select(customers.c.id).where(customers.c.key.in_(list(filters.customer_keys)))
            conditions.append(entitlements.c.customer_id.in_(keyed))
        if filters.subject_keys:
            subject_keys = list(filters.subject_keys)
            owners = select(customer_subjects.c.customer_id).where(
                customer_subjects.c.subject_key.in_(subject_keys)
            )
            keyed = select(customers.c.id).where(
                customers.c.key.in_(subject_keys), customers.c.deleted_at.is_(None)
            )
            conditions.append(
                or_(entitlements.c.customer_id.in_(owners), entitlements.c.customer_id.in_(keyed))
            )
        if filters.features:
            features = list(filters.features)
            conditions.append(
                or_(
                    entitlements.c.feature_id.in_(features),
                    entitlements.c.feature_key.in_(features),
                )
            )
        if filters.types:
            conditions.append(entitlements.c.type.in_([t.value for t in filters.types]))
        if filters.active_at is not None:
            at = filters.active_at
            conditions.append(entitlements.c.active_from <= at)
            for column in (entitlements.c.active_to, entitlements.c.deleted_at):
                conditions.append(or_(column.is_(None), column > at))
        return conditions

    def search(
        self,
        filters: EntitlementFilter,
        *,
        order_by: EntitlementOrderBy = EntitlementOrderBy.CREATED_AT,
        order: SortOrder = SortOrder.ASC,
        window: Window | None = None,
    ) -> tuple[list[Entitlement], int]:
        """A page of entitlements matching `filters`, and how many match in all."""
        column = _ORDER_COLUMNS[order_by]
        ordering = [column.desc() if order is SortOrder.DESC else column, entitlements.c.id]
        rows, total = self.page(entitlements, self._conditions(filters), ordering, window)
        return [_to_entitlement(row) for row in rows], total

    # -- manual resets ------------------------------------------------------------------------

    def add_reset(
        self, reset_id: str, entitlement_id: str, reset: ManualReset, at: datetime
    ) -> None:
        self.changes.entitlement_ids.add(entitlement_id)
        self.connection.execute(
            insert(usage_resets).values(
                id=reset_id,
                entitlement_id=entitlement_id,
                reset_at=reset.at,
                anchor=reset.anchor,
                preserve_overage=reset.preserve_overage,
                created_at=at,
            )
        )

    def resets(self, entitlement_id: str) -> list[ManualReset]:
        return self.resets_of([entitlement_id])[entitlement_id]

    def resets_of(self, entitlement_ids: Sequence[str]) -> dict[str, list[ManualReset]]:
        """Manual resets of several entitlements in one query, in time order."""
        result: dict[str, list[ManualReset]] = {e: [] for e in entitlement_ids}
        if not entitlement_ids:
            return result
        rows = self.connection.execute(
            select(usage_resets)
            .where(usage_resets.c.entitlement_id.in_(list(entitlement_ids)))
            .order_by(usage_resets.c.reset_at)
        )
        for row in rows:
            result[row.entitlement_id].append(
                ManualReset(
                    at=row.reset_at, anchor=row.anchor, preserve_overage=row.preserve_overage
                )
            )
        return result

    # -- owners -------------------------------------------------------------------------------

    def owner_keys(self, customer_ids: Sequence[str]) -> dict[str, OwnerKeys]:
        """The key and subject keys of each customer (deleted ones too), for responses."""
        wanted = sorted(set(customer_ids))
        if not wanted:
            return {}
        subject_keys: dict[str, list[str]] = {}
        for customer_id, subject_key in self.connection.execute(
            select(customer_subjects.c.customer_id, customer_subjects.c.subject_key).where(
                customer_subjects.c.customer_id.in_(wanted)
            )
        ):
            subject_keys.setdefault(customer_id, []).append(subject_key)
        return {
            row.id: OwnerKeys(row.id, row.key, tuple(sorted(subject_keys.get(row.id, ()))))
            for row in self.connection.execute(
                select(customers.c.id, customers.c.key).where(customers.c.id.in_(wanted))
            )
        }
