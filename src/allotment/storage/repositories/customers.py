"""Storage for customers and their subject keys (`customer_subjects`).

A deleted customer's subject-key rows are removed, so the unique key on `subject_key` covers live
customers only and a deleted customer reads back with no subject keys.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    delete,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    union,
    update,
)

from allotment.domain.customers import (
    Address,
    Customer,
    CustomerFilter,
    CustomerOrderBy,
)
from allotment.domain.listing import ListResult, SortOrder, Window
from allotment.storage.repositories.base import Repository, json_document
from allotment.storage.tables import customer_subjects, customers, entitlements

# Any constant works; it only has to be the same for every writer of customer attribution.
_ATTRIBUTION_LOCK = 0x616C6C6F74  # "allot"


@dataclass(frozen=True)
class AttributionClaim:
    """A live customer holding an attribution key, as its key or as one of its subject keys."""

    customer_id: str
    value: str
    as_subject_key: bool


def _address(document: Any) -> Address | None:
    if not document:
        return None
    return Address(
        country=document.get("country"),
        postal_code=document.get("postalCode"),
        state=document.get("state"),
        city=document.get("city"),
        line1=document.get("line1"),
        line2=document.get("line2"),
        phone_number=document.get("phoneNumber"),
    )


def _to_customer(row: Any, subject_keys: Iterable[str]) -> Customer:
    return Customer(
        id=row.id,
        name=row.name,
        key=row.key,
        subject_keys=tuple(sorted(subject_keys)),
        description=row.description,
        primary_email=row.primary_email,
        currency=row.currency,
        billing_address=_address(row.billing_address),
        metadata=row.metadata,
        annotations=row.annotations,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
    )


def _values(customer: Customer) -> dict[str, Any]:
    address = customer.billing_address
    return {
        "id": customer.id,
        "key": customer.key,
        "name": customer.name,
        "description": customer.description,
        "primary_email": customer.primary_email,
        "currency": customer.currency,
        "billing_address": json_document(
            None
            if address is None
            else {name: value for name, value in address.lines().items() if value is not None}
        ),
        "metadata": json_document(customer.metadata),
        "annotations": json_document(customer.annotations),
        "created_at": customer.created_at,
        "updated_at": customer.updated_at,
        "deleted_at": customer.deleted_at,
    }


_ORDER_COLUMNS = {
    CustomerOrderBy.ID: customers.c.id,
    CustomerOrderBy.NAME: customers.c.name,
    CustomerOrderBy.CREATED_AT: customers.c.created_at,
}


class CustomerRepository(Repository):
    def lock_attribution(self) -> None:
        """Serialises writers of customer keys and subject keys until the transaction ends.

        The overlap rules span rows (a key against other customers' subject keys), which no
        unique index can enforce. SQLite write units already hold the database write lock; on
        PostgreSQL a transaction-scoped advisory lock does the same for these writers only.
        """
        if self.dialect == "postgresql":
            self.connection.execute(select(func.pg_advisory_xact_lock(_ATTRIBUTION_LOCK)))

    def hold_attribution(self) -> None:
        """Keep every customer's usage attribution as it is until commit: shares the lock
        `lock_attribution` takes exclusively (PostgreSQL; SQLite write units exclude every other
        writer already)."""
        if self.dialect == "postgresql":
            self.connection.execute(select(func.pg_advisory_xact_lock_shared(_ATTRIBUTION_LOCK)))

    def revision(self, customer_id: str) -> int | None:
        row = self.connection.execute(
            select(customers.c.revision).where(customers.c.id == customer_id)
        ).first()
        return None if row is None else int(row[0])

    def revisions(self, customer_ids: Collection[str]) -> dict[str, int]:
        """The revision of each customer, in one query; ids that name none are left out."""
        if not customer_ids:
            return {}
        rows = self.connection.execute(
            select(customers.c.id, customers.c.revision).where(
                customers.c.id.in_(sorted(customer_ids))
            )
        )
        return {row[0]: int(row[1]) for row in rows}

    def add(self, customer: Customer) -> None:
        self.changes.catalog = True
        self.connection.execute(insert(customers).values(**_values(customer)))
        self._add_subject_keys(customer.id, customer.subject_keys)

    def replace(self, customer: Customer) -> None:
        self.changes.catalog = True
        self.changes.customer_ids.add(customer.id)
        values = _values(customer)
        del values["id"], values["created_at"]
        self.connection.execute(
            update(customers).where(customers.c.id == customer.id).values(values)
        )
        current = set(self._subject_keys_of([customer.id]).get(customer.id, ()))
        wanted = set(customer.subject_keys)
        if current - wanted:
            self.connection.execute(
                delete(customer_subjects).where(
                    customer_subjects.c.customer_id == customer.id,
                    customer_subjects.c.subject_key.in_(sorted(current - wanted)),
                )
            )
        self._add_subject_keys(customer.id, sorted(wanted - current))

    def delete(self, customer_id: str, at: datetime) -> None:
        self.changes.catalog = True
        self.changes.customer_ids.add(customer_id)
        """Soft-deletes the customer and frees its subject keys for other customers."""
        self.connection.execute(
            update(customers)
            .where(customers.c.id == customer_id, customers.c.deleted_at.is_(None))
            .values(deleted_at=at, updated_at=at)
        )
        self.connection.execute(
            delete(customer_subjects).where(customer_subjects.c.customer_id == customer_id)
        )

    def get(self, customer_id: str) -> Customer | None:
        """By id, deleted or not."""
        return self._first(customers.c.id == customer_id)

    def get_live_by_key(self, key: str) -> Customer | None:
        return self._first(customers.c.key == key, customers.c.deleted_at.is_(None))

    def find_live_by_attribution(self, value: str) -> Customer | None:
        """The live customer whose key or one of whose subject keys is `value`."""
        # A union of two index lookups: `key = value OR EXISTS (...)` scans every customer.
        holders = union(
            select(customers.c.id).where(
                customers.c.key == value, customers.c.deleted_at.is_(None)
            ),
            select(customer_subjects.c.customer_id).where(customer_subjects.c.subject_key == value),
        )
        return self._first(customers.c.deleted_at.is_(None), customers.c.id.in_(holders))

    def live_claims(
        self, values: Collection[str], *, excluding_customer_id: str | None
    ) -> list[AttributionClaim]:
        """Which live customers (other than the excluded one) hold any of `values`."""
        if not values:
            return []
        wanted = sorted(values)
        by_key = select(customers.c.id, customers.c.key).where(
            customers.c.key.in_(wanted), customers.c.deleted_at.is_(None)
        )
        # customer_subjects rows exist for live customers only (see the module docstring).
        by_subject = select(customer_subjects.c.customer_id, customer_subjects.c.subject_key).where(
            customer_subjects.c.subject_key.in_(wanted)
        )
        claims = [
            AttributionClaim(customer_id, value, as_subject_key=False)
            for customer_id, value in self.connection.execute(by_key)
        ] + [
            AttributionClaim(customer_id, value, as_subject_key=True)
            for customer_id, value in self.connection.execute(by_subject)
        ]
        return sorted(
            (claim for claim in claims if claim.customer_id != excluding_customer_id),
            key=lambda claim: (claim.value, claim.customer_id),
        )

    def existing_ids(self, candidates: Collection[str]) -> set[str]:
        if not candidates:
            return set()
        query = select(customers.c.id).where(customers.c.id.in_(sorted(candidates)))
        return set(self.connection.execute(query).scalars())

    def list_matching(self, criteria: CustomerFilter, window: Window) -> ListResult[Customer]:
        conditions: list[ColumnElement[bool]] = []
        if not criteria.include_deleted:
            conditions.append(customers.c.deleted_at.is_(None))
        if criteria.key is not None:
            conditions.append(customers.c.key.icontains(criteria.key, autoescape=True))
        if criteria.name is not None:
            conditions.append(customers.c.name.icontains(criteria.name, autoescape=True))
        if criteria.primary_email is not None:
            conditions.append(
                customers.c.primary_email.icontains(criteria.primary_email, autoescape=True)
            )
        if criteria.subject is not None:
            conditions.append(
                exists().where(
                    customer_subjects.c.customer_id == customers.c.id,
                    customer_subjects.c.subject_key.icontains(criteria.subject, autoescape=True),
                )
            )
        if criteria.plan_key is not None:
            conditions.append(false())
        column = _ORDER_COLUMNS[criteria.order_by]
        descending = criteria.order is SortOrder.DESC
        ordering = [part.desc() if descending else part.asc() for part in (column, customers.c.id)]
        rows, total = self.page(customers, conditions, ordering, window)
        keys = self._subject_keys_of([row.id for row in rows])
        items = [_to_customer(row, keys.get(row.id, ())) for row in rows]
        return ListResult(items=items, total_count=total)

    def search_live(self, text: str, window: Window) -> ListResult[Customer]:
        """Live customers whose name, key, primary email or one of whose subject keys contains
        `text` (case-insensitively), by name; every live customer for an empty `text`."""
        conditions: list[ColumnElement[bool]] = [customers.c.deleted_at.is_(None)]
        if text:
            conditions.append(
                or_(
                    customers.c.name.icontains(text, autoescape=True),
                    customers.c.key.icontains(text, autoescape=True),
                    customers.c.primary_email.icontains(text, autoescape=True),
                    exists().where(
                        customer_subjects.c.customer_id == customers.c.id,
                        customer_subjects.c.subject_key.icontains(text, autoescape=True),
                    ),
                )
            )
        ordering = [customers.c.name.asc(), customers.c.id.asc()]
        rows, total = self.page(customers, conditions, ordering, window)
        keys = self._subject_keys_of([row.id for row in rows])
        items = [_to_customer(row, keys.get(row.id, ())) for row in rows]
        return ListResult(items=items, total_count=total)

    def get_many(self, customer_ids: Collection[str]) -> dict[str, Customer]:
        """Customers by id (deleted ones too); ids that name none are left out."""
        if not customer_ids:
            return {}
        query = select(customers).where(customers.c.id.in_(sorted(customer_ids)))
        rows = list(self.connection.execute(query))
        keys = self._subject_keys_of([row.id for row in rows])
        return {row.id: _to_customer(row, keys.get(row.id, ())) for row in rows}

    def active_entitlement_ids(self, customer_id: str, at: datetime) -> list[str]:
        """Entitlements not deleted and not ended by `at` (scheduled ones count as active)."""
        query = (
            select(entitlements.c.id)
            .where(
                entitlements.c.customer_id == customer_id,
                entitlements.c.deleted_at.is_(None),
                or_(entitlements.c.active_to.is_(None), entitlements.c.active_to > at),
            )
            .order_by(entitlements.c.id)
        )
        return list(self.connection.execute(query).scalars())

    def _first(self, *conditions: ColumnElement[bool]) -> Customer | None:
        query = (
            select(customers).where(*conditions).order_by(customers.c.created_at, customers.c.id)
        )
        row = self.connection.execute(query).first()
        if row is None:
            return None
        return _to_customer(row, self._subject_keys_of([row.id]).get(row.id, ()))

    def _subject_keys_of(self, customer_ids: Collection[str]) -> dict[str, list[str]]:
        if not customer_ids:
            return {}
        query = (
            select(customer_subjects.c.customer_id, customer_subjects.c.subject_key)
            .where(customer_subjects.c.customer_id.in_(list(customer_ids)))
            .order_by(customer_subjects.c.subject_key)
        )
        keys: dict[str, list[str]] = {}
        for customer_id, subject_key in self.connection.execute(query):
            keys.setdefault(customer_id, []).append(subject_key)
        return keys

    def _add_subject_keys(self, customer_id: str, subject_keys: Iterable[str]) -> None:
        rows = [{"customer_id": customer_id, "subject_key": key} for key in subject_keys]
        if rows:
            self.connection.execute(insert(customer_subjects), rows)
