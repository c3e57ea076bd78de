"""Storage for subjects. A key names at most one live subject (partial unique index)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from allotment.domain.subjects import Subject
from allotment.storage.repositories.base import Repository, json_document
from allotment.storage.tables import subjects


def _to_subject(row: Any) -> Subject:
    return Subject(
        id=row.id,
        key=row.key,
        display_name=row.display_name,
        metadata=row.metadata,
        current_period_start=row.current_period_start,
        current_period_end=row.current_period_end,
        stripe_customer_id=row.stripe_customer_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
    )


def _values(subject: Subject) -> dict[str, Any]:
    return {
        "id": subject.id,
        "key": subject.key,
        "display_name": subject.display_name,
        "metadata": json_document(subject.metadata),
        "current_period_start": subject.current_period_start,
        "current_period_end": subject.current_period_end,
        "stripe_customer_id": subject.stripe_customer_id,
        "created_at": subject.created_at,
        "updated_at": subject.updated_at,
        "deleted_at": subject.deleted_at,
    }


class SubjectRepository(Repository):
    def list_live(self) -> list[Subject]:
        query = select(subjects).where(subjects.c.deleted_at.is_(None)).order_by(subjects.c.key)
        return [_to_subject(row) for row in self.connection.execute(query)]

    def get(self, subject_id: str) -> Subject | None:
        """By id, deleted or not."""
        row = self.connection.execute(select(subjects).where(subjects.c.id == subject_id)).first()
        return None if row is None else _to_subject(row)

    def get_live_by_key(self, key: str) -> Subject | None:
        row = self.connection.execute(
            select(subjects).where(subjects.c.key == key, subjects.c.deleted_at.is_(None))
        ).first()
        return None if row is None else _to_subject(row)

    def live_keys_among(self, keys: Iterable[str]) -> set[str]:
        wanted = list(keys)
        if not wanted:
            return set()
        query = select(subjects.c.key).where(
            subjects.c.key.in_(wanted), subjects.c.deleted_at.is_(None)
        )
        return set(self.connection.execute(query).scalars())

    def display_names(self, keys: Iterable[str]) -> dict[str, str]:
        """Key -> display name of the live subjects among `keys` that have one."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        query = select(subjects.c.key, subjects.c.display_name).where(
            subjects.c.key.in_(wanted),
            subjects.c.deleted_at.is_(None),
            subjects.c.display_name.is_not(None),
        )
        return {row.key: row.display_name for row in self.connection.execute(query)}

    def add_if_absent(self, subject: Subject) -> bool:
        self.changes.catalog = True
        """Inserts unless a live subject already has the key; True when inserted.

        ON CONFLICT instead of check-then-insert: two transactions creating the same key at once
        (an upsert and a customer create, say) must not fail on the unique index.
        """
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        statement = (
            dialect_insert(subjects)
            .values(**_values(subject))
            .on_conflict_do_nothing(
                index_elements=[subjects.c.key], index_where=subjects.c.deleted_at.is_(None)
            )
            # RETURNING, not rowcount: psycopg reports -1 for INSERT ... ON CONFLICT.
            .returning(subjects.c.id)
        )
        return self.connection.execute(statement).first() is not None

    def update(self, subject: Subject) -> None:
        self.changes.catalog = True
        values = _values(subject)
        del values["id"], values["created_at"]
        self.connection.execute(update(subjects).where(subjects.c.id == subject.id).values(values))

    def delete(self, subject_id: str, at: datetime) -> None:
        self.changes.catalog = True
        self.connection.execute(
            update(subjects)
            .where(subjects.c.id == subject_id, subjects.c.deleted_at.is_(None))
            .values(deleted_at=at, updated_at=at)
        )
