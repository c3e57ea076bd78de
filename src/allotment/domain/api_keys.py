"""API keys: scopes and what each scope may do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Scope(StrEnum):
    ADMIN = "admin"
    INGEST = "ingest"
    READ = "read"


class Action(StrEnum):
    INGEST = "ingest"
    READ = "read"
    MANAGE = "manage"


_ALLOWED: dict[Scope, frozenset[Action]] = {
    Scope.ADMIN: frozenset(Action),
    Scope.INGEST: frozenset({Action.INGEST}),
    Scope.READ: frozenset({Action.READ}),
}


def scope_allows(scope: Scope, action: Action) -> bool:
    return action in _ALLOWED[scope]


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scope: Scope
    prefix: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
