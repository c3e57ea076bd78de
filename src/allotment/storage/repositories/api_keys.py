"""Storage for API keys: only hashes are kept."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update

from allotment.domain.api_keys import ApiKey, Scope
from allotment.storage.repositories.base import Repository
from allotment.storage.tables import api_keys


def _to_key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        scope=Scope(row.scope),
        prefix=row.prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class ApiKeyRepository(Repository):
    def add(self, key: ApiKey, key_hash: str) -> None:
        self.connection.execute(
            insert(api_keys).values(
                id=key.id,
                name=key.name,
                scope=key.scope.value,
                key_hash=key_hash,
                prefix=key.prefix,
                created_at=key.created_at,
                revoked_at=key.revoked_at,
            )
        )

    def find_active_by_hash(self, key_hash: str) -> ApiKey | None:
        row = self.connection.execute(
            select(api_keys).where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
        ).first()
        return None if row is None else _to_key(row)

    def find_by_hash(self, key_hash: str) -> ApiKey | None:
        """The key with this hash, revoked or not (to tell a revoked key from a mistyped one)."""
        row = self.connection.execute(
            select(api_keys).where(api_keys.c.key_hash == key_hash)
        ).first()
        return None if row is None else _to_key(row)

    def get(self, key_id: str) -> ApiKey | None:
        row = self.connection.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        return None if row is None else _to_key(row)

    def list_all(self, *, include_revoked: bool = False) -> list[ApiKey]:
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        return [_to_key(row) for row in self.connection.execute(query)]

    def count_active(self) -> int:
        query = select(func.count()).select_from(api_keys).where(api_keys.c.revoked_at.is_(None))
        return int(self.connection.execute(query).scalar_one())

    def find(self, id_or_prefix: str) -> list[ApiKey]:
        query = select(api_keys).where(
            (api_keys.c.id == id_or_prefix) | (api_keys.c.prefix == id_or_prefix)
        )
        return [_to_key(row) for row in self.connection.execute(query)]

    def revoke(self, key_id: str, at: datetime) -> None:
        self.connection.execute(
            update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=at)
        )
