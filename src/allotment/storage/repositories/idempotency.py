"""Storage for the answers of requests sent with an Idempotency-Key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from allotment.domain.idempotency import StoredAnswer
from allotment.storage.repositories.base import Repository
from allotment.storage.tables import idempotency_keys


class IdempotencyRepository(Repository):
    def find(self, api_key_id: str, key: str) -> StoredAnswer | None:
        row = self.connection.execute(
            select(idempotency_keys).where(
                idempotency_keys.c.api_key_id == api_key_id, idempotency_keys.c.key == key
            )
        ).first()
        if row is None:
            return None
        return StoredAnswer(
            fingerprint=row.fingerprint,
            status_code=row.status_code,
            media_type=row.media_type,
            body=bytes(row.body),
        )

    def add_if_absent(self, api_key_id: str, key: str, answer: StoredAnswer, at: datetime) -> bool:
        """False when the key is already taken (by a concurrent request that committed first:
        PostgreSQL waits for it, SQLite's writers run one at a time)."""
        insert = postgres_insert if self.dialect == "postgresql" else sqlite_insert
        statement = (
            insert(idempotency_keys)
            .values(
                api_key_id=api_key_id,
                key=key,
                fingerprint=answer.fingerprint,
                status_code=answer.status_code,
                media_type=answer.media_type,
                body=answer.body,
                created_at=at,
            )
            .on_conflict_do_nothing()
            .returning(idempotency_keys.c.key)
        )
        # RETURNING, not rowcount: SQLAlchemy reports -1 for this statement on psycopg.
        return self.connection.execute(statement).first() is not None

    def delete_older_than(self, before: datetime) -> None:
        self.connection.execute(
            delete(idempotency_keys).where(idempotency_keys.c.created_at < before)
        )
