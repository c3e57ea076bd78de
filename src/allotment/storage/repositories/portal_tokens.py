"""Storage for customer portal tokens: only hashes of their secrets are kept."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, update

from allotment.domain.portal import PortalToken
from allotment.storage.repositories.base import Repository
from allotment.storage.tables import portal_tokens


def _to_token(row: Any) -> PortalToken:
    slugs = row.allowed_meter_slugs
    return PortalToken(
        id=row.id,
        subject=row.subject,
        allowed_meter_slugs=None if slugs is None else tuple(slugs),
        created_at=row.created_at,
        expires_at=row.expires_at,
        invalidated_at=row.invalidated_at,
    )


class PortalTokenRepository(Repository):
    def add(self, token: PortalToken, token_hash: str) -> None:
        slugs = token.allowed_meter_slugs
        self.connection.execute(
            portal_tokens.insert().values(
                id=token.id,
                subject=token.subject,
                token_hash=token_hash,
                allowed_meter_slugs=None if slugs is None else list(slugs),
                created_at=token.created_at,
                expires_at=token.expires_at,
                invalidated_at=token.invalidated_at,
            )
        )

    def find_by_hash(self, token_hash: str) -> PortalToken | None:
        row = self.connection.execute(
            select(portal_tokens).where(portal_tokens.c.token_hash == token_hash)
        ).first()
        return None if row is None else _to_token(row)

    def newest(self, limit: int) -> list[PortalToken]:
        query = (
            select(portal_tokens)
            .order_by(portal_tokens.c.created_at.desc(), portal_tokens.c.id.desc())
            .limit(limit)
        )
        return [_to_token(row) for row in self.connection.execute(query)]

    def invalidate(self, at: datetime, *, token_id: str | None, subject: str | None) -> int:
        """Invalidates the live tokens with this id and/or of this subject; how many."""
        conditions: list[ColumnElement[bool]] = [portal_tokens.c.invalidated_at.is_(None)]
        if token_id is not None:
            conditions.append(portal_tokens.c.id == token_id)
        if subject is not None:
            conditions.append(portal_tokens.c.subject == subject)
        result = self.connection.execute(
            update(portal_tokens).where(*conditions).values(invalidated_at=at)
        )
        return int(result.rowcount)

    def with_ids(self, token_ids: list[str]) -> list[PortalToken]:
        query = select(portal_tokens).where(portal_tokens.c.id.in_(token_ids))
        return [_to_token(row) for row in self.connection.execute(query)]
