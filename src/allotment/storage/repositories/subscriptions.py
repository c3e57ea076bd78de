"""Storage for subscriptions and their items."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, insert, or_, select, update

from allotment.domain.listing import ListResult, SortOrder, Window
from allotment.domain.plan_documents import terms_document, terms_of
from allotment.domain.subscriptions import (
    PlanReference,
    Subscription,
    SubscriptionItem,
    SubscriptionStatus,
)
from allotment.storage.repositories.base import Repository, json_document
from allotment.storage.tables import customers, subscription_items, subscriptions


def _to_subscription(row: Any) -> Subscription:
    plan = None
    if row.plan_id is not None:
        plan = PlanReference(row.plan_id, row.plan_key, row.plan_version)
    return Subscription(
        id=row.id,
        customer_id=row.customer_id,
        name=row.name,
        description=row.description,
        metadata=row.metadata,
        plan=plan,
        terms=terms_of(row.terms),
        phase_ids=tuple(row.terms.get("phaseIds") or ()),
        billing_anchor=row.billing_anchor,
        active_from=row.active_from,
        active_to=row.active_to,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
    )


def _to_item(row: Any) -> SubscriptionItem:
    return SubscriptionItem(
        id=row.id,
        subscription_id=row.subscription_id,
        phase_index=row.phase_index,
        rate_card_key=row.rate_card_key,
        entitlement_id=row.entitlement_id,
        active_from=row.active_from,
        active_to=row.active_to,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _status_condition(status: SubscriptionStatus, now: datetime) -> ColumnElement[bool]:
    """`Subscription.status` in SQL."""
    start, end = subscriptions.c.active_from, subscriptions.c.active_to
    runs = or_(end.is_(None), end > start)
    if status is SubscriptionStatus.SCHEDULED:
        return and_(start > now, runs)
    if status is SubscriptionStatus.INACTIVE:
        return and_(end.is_not(None), or_(end <= now, end <= start))
    if status is SubscriptionStatus.CANCELED:
        return and_(start <= now, end.is_not(None), end > now)
    return and_(start <= now, end.is_(None))


_ORDER_COLUMNS = {
    "activeFrom": subscriptions.c.active_from,
    "activeTo": subscriptions.c.active_to,
}


class SubscriptionRepository(Repository):
    def add(self, subscription: Subscription) -> None:
        plan = subscription.plan
        self.connection.execute(
            insert(subscriptions).values(
                id=subscription.id,
                customer_id=subscription.customer_id,
                plan_id=None if plan is None else plan.id,
                plan_key=None if plan is None else plan.key,
                plan_version=None if plan is None else plan.version,
                name=subscription.name,
                description=subscription.description,
                metadata=json_document(subscription.metadata),
                terms={
                    **terms_document(subscription.terms),
                    "phaseIds": list(subscription.phase_ids),
                },
                billing_anchor=subscription.billing_anchor,
                active_from=subscription.active_from,
                active_to=subscription.active_to,
                created_at=subscription.created_at,
                updated_at=subscription.updated_at,
                deleted_at=subscription.deleted_at,
            )
        )

    def get(self, subscription_id: str) -> Subscription | None:
        row = self.connection.execute(
            select(subscriptions).where(subscriptions.c.id == subscription_id)
        ).first()
        return None if row is None else _to_subscription(row)

    def lock_customer(self, customer_id: str) -> None:
        """Serialise subscription writes of one customer (one subscription at a time), also
        when it has none yet: PostgreSQL locks the customer's row; SQLite write units exclude
        each other already."""
        if self.dialect == "postgresql":
            self.connection.execute(
                select(customers.c.id).where(customers.c.id == customer_id).with_for_update()
            )

    def of_customer(self, customer_id: str) -> list[Subscription]:
        """Every live subscription of the customer, by start."""
        rows = self.connection.execute(
            select(subscriptions)
            .where(subscriptions.c.customer_id == customer_id, subscriptions.c.deleted_at.is_(None))
            .order_by(subscriptions.c.active_from, subscriptions.c.id)
        )
        return [_to_subscription(row) for row in rows]

    def current_ids(self, customer_ids: Sequence[str], now: datetime) -> dict[str, str]:
        """The subscription active at `now` of each customer that has one."""
        wanted = sorted(set(customer_ids))
        if not wanted:
            return {}
        rows = self.connection.execute(
            select(subscriptions.c.customer_id, subscriptions.c.id).where(
                subscriptions.c.customer_id.in_(wanted),
                subscriptions.c.deleted_at.is_(None),
                subscriptions.c.active_from <= now,
                or_(subscriptions.c.active_to.is_(None), subscriptions.c.active_to > now),
            )
        )
        return {row.customer_id: row.id for row in rows}

    def search_customer(
        self,
        customer_id: str,
        now: datetime,
        *,
        statuses: Sequence[SubscriptionStatus] = (),
        order_by: str = "activeFrom",
        order: SortOrder = SortOrder.ASC,
        window: Window | None = None,
    ) -> ListResult[Subscription]:
        conditions: list[ColumnElement[bool]] = [
            subscriptions.c.customer_id == customer_id,
            subscriptions.c.deleted_at.is_(None),
        ]
        if statuses:
            conditions.append(or_(*(_status_condition(s, now) for s in statuses)))
        column = _ORDER_COLUMNS[order_by]
        descending = order is SortOrder.DESC
        ordering: list[ColumnElement[Any]] = [
            column.desc() if descending else column.asc(),
            subscriptions.c.id.asc(),
        ]
        rows, total = self.page(subscriptions, conditions, ordering, window)
        return ListResult(items=[_to_subscription(row) for row in rows], total_count=total)

    def set_active_to(self, subscription_id: str, active_to: datetime | None, at: datetime) -> None:
        self.connection.execute(
            update(subscriptions)
            .where(subscriptions.c.id == subscription_id)
            .values(active_to=active_to, updated_at=at)
        )

    # -- items --------------------------------------------------------------------------------

    def add_item(self, item: SubscriptionItem) -> None:
        self.connection.execute(
            insert(subscription_items).values(
                id=item.id,
                subscription_id=item.subscription_id,
                phase_index=item.phase_index,
                rate_card_key=item.rate_card_key,
                entitlement_id=item.entitlement_id,
                active_from=item.active_from,
                active_to=item.active_to,
                created_at=item.created_at,
                updated_at=item.updated_at,
            )
        )

    def items_of(self, subscription_id: str) -> list[SubscriptionItem]:
        rows = self.connection.execute(
            select(subscription_items)
            .where(subscription_items.c.subscription_id == subscription_id)
            .order_by(subscription_items.c.phase_index, subscription_items.c.id)
        )
        return [_to_item(row) for row in rows]

    def set_item_active_to(self, item_id: str, active_to: datetime | None, at: datetime) -> None:
        self.connection.execute(
            update(subscription_items)
            .where(subscription_items.c.id == item_id)
            .values(active_to=active_to, updated_at=at)
        )
