"""Creating, listing, revoking and checking API keys."""

from __future__ import annotations

import hashlib
import secrets

from allotment import logs
from allotment.domain.api_keys import Action, ApiKey, Scope, scope_allows
from allotment.domain.text import is_storable_text
from allotment.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from allotment.ids import new_id
from allotment.services.context import ServiceContext

KEY_PREFIX = "alt_"


def hash_secret(secret: str) -> str:
    # Keys are 256-bit random tokens, so a plain digest is enough (no password stretching).
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(context: ServiceContext, scope: str, name: str | None = None) -> tuple[ApiKey, str]:
    """Returns the stored key and its secret; the secret is never retrievable again."""
    try:
        parsed_scope = Scope(scope)
    except ValueError:
        allowed = ", ".join(s.value for s in Scope)
        raise InvalidInput(
            f"unknown scope {scope!r}; use one of {allowed}", field="scope"
        ) from None
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=new_id(),
        name=name or f"{parsed_scope.value} key",
        scope=parsed_scope,
        prefix=secret[: len(KEY_PREFIX) + 8],
        created_at=context.clock(),
        revoked_at=None,
    )
    with context.database.unit_of_work(write=True) as uow:
        uow.api_keys.add(key, hash_secret(secret))
        uow.commit()
    logs.audit("create_api_key", id=key.id, scope=key.scope.value)
    return key, secret


def list_keys(context: ServiceContext, *, include_revoked: bool = False) -> list[ApiKey]:
    with context.database.unit_of_work() as uow:
        return uow.api_keys.list_all(include_revoked=include_revoked)


def has_keys(context: ServiceContext) -> bool:
    with context.database.unit_of_work() as uow:
        return uow.api_keys.count_active() > 0


def revoke_key(context: ServiceContext, id_or_prefix: str) -> ApiKey:
    with context.database.unit_of_work(write=True) as uow:
        matches = [k for k in uow.api_keys.find(id_or_prefix) if k.is_active]
        if not matches:
            raise NotFound(f"no active API key with id or prefix {id_or_prefix!r}", field="key")
        if len(matches) > 1:
            raise InvalidInput(f"{id_or_prefix!r} matches several keys; use the id", field="key")
        uow.api_keys.revoke(matches[0].id, context.clock())
        uow.commit()
    context.caches.forget_api_keys()
    logs.audit("revoke_api_key", id=matches[0].id, scope=matches[0].scope.value)
    return matches[0]


def authenticate_from_cache(context: ServiceContext, secret: str, action: Action) -> ApiKey | None:
    """`authenticate` without I/O: the key when this process checked it recently (raising as
    `authenticate` does when it may not perform `action`), else None (ask `authenticate`)."""
    key = context.caches.api_key(hash_secret(secret))
    if key is not None and not scope_allows(key.scope, action):
        raise Forbidden(f"a key with scope '{key.scope.value}' may not {action.value}")
    return key


def authenticate(context: ServiceContext, secret: str | None, action: Action) -> ApiKey:
    """The key behind a Bearer token, if it may perform `action`."""
    if not secret:
        raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
    key_hash = hash_secret(secret)
    key = context.caches.api_key(key_hash)
    if key is None:
        with context.database.single_statement() as uow:
            key = uow.api_keys.find_active_by_hash(key_hash)
        if key is None:
            raise Unauthenticated("invalid or revoked API key")
        context.caches.remember_api_key(key_hash, key)
    if not scope_allows(key.scope, action):
        raise Forbidden(f"a key with scope '{key.scope.value}' may not {action.value}")
    return key


def identify(context: ServiceContext, secret: str) -> ApiKey | None:
    """The key behind `secret`, revoked or not; None when no key ever had it. For telling a
    person at a sign-in form why a key does not work, not for authorising requests."""
    with context.database.unit_of_work() as uow:
        return uow.api_keys.find_by_hash(hash_secret(secret))


def get_key(context: ServiceContext, key_id: str) -> ApiKey | None:
    """The key with this id, revoked or not (a session re-reads its key on every request)."""
    if not is_storable_text(key_id):
        return None
    with context.database.unit_of_work() as uow:
        return uow.api_keys.get(key_id)
