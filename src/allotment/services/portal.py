"""The customer portal: tokens a product hands its own customers' browsers, and the meter
queries those tokens may make (one subject's usage, of the meters the token allows).

A portal token is no API key: it is stored apart, hashed the same way, and `authenticate` here
is the only check that accepts one, so it can reach no route but the portal's query.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import datetime, timedelta

from allotment.domain.instants import checked_instant
from allotment.domain.meters import MeterQuery, MeterQueryResult
from allotment.domain.portal import PortalToken
from allotment.domain.text import UNSTORABLE_TEXT, is_storable_text
from allotment.errors import ErrorList, InvalidInput, NotFound, Unauthenticated
from allotment.ids import new_id
from allotment.services import meters as meters_service
from allotment.services.api_keys import hash_secret
from allotment.services.context import ServiceContext

TOKEN_PREFIX = "alt_portal_"
SUBJECT_LENGTH_MAX = 256
LIST_LIMIT_MAX = 100


def create_token(
    context: ServiceContext,
    subject: str,
    *,
    allowed_meter_slugs: list[str] | None,
    expires_at: datetime | None,
    lifetime: timedelta,
) -> tuple[PortalToken, str]:
    """The stored token and its secret, which is never retrievable again."""
    now = context.clock()
    errors = ErrorList()
    if not 0 < len(subject) <= SUBJECT_LENGTH_MAX:
        errors.add("subject", f"must be 1 to {SUBJECT_LENGTH_MAX} characters")
    elif not is_storable_text(subject):
        errors.add("subject", UNSTORABLE_TEXT)
    if expires_at is not None:
        with errors.collecting():
            checked_instant(expires_at, "expiresAt")
        if expires_at <= now:
            errors.add("expiresAt", "must be in the future")
    slugs = None if allowed_meter_slugs is None else tuple(dict.fromkeys(allowed_meter_slugs))
    errors.raise_if_any("invalid portal token")
    token = PortalToken(
        id=new_id(),
        subject=subject,
        allowed_meter_slugs=slugs,
        created_at=now,
        expires_at=expires_at or now + lifetime,
        invalidated_at=None,
    )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with context.database.unit_of_work(write=True) as uow:
        for index, slug in enumerate(slugs or ()):
            meter = uow.meters.get_live_by_slug(slug) if is_storable_text(slug) else None
            if meter is None:
                raise NotFound(f"meter not found: {slug}", field=f"allowedMeterSlugs.{index}")
        uow.portal_tokens.add(token, hash_secret(secret))
        uow.commit()
    return token, secret


def list_tokens(context: ServiceContext, limit: int) -> list[PortalToken]:
    """The newest tokens first, expired and invalidated ones too."""
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise InvalidInput(f"must be between 1 and {LIST_LIMIT_MAX}", field="limit")
    with context.database.unit_of_work() as uow:
        return uow.portal_tokens.newest(limit)


def invalidate(context: ServiceContext, *, token_id: str | None, subject: str | None) -> None:
    """Ends the token with this id, or every token of this subject (both: the subject's token
    with this id). Tokens already ended stay ended."""
    if token_id is None and subject is None:
        raise InvalidInput("give the id of a token or a subject", field="id")
    for name, value in (("id", token_id), ("subject", subject)):
        if value is not None and not is_storable_text(value):
            raise InvalidInput(f"{name} {UNSTORABLE_TEXT}", field=name)
    with context.database.unit_of_work(write=True) as uow:
        ended = uow.portal_tokens.invalidate(context.clock(), token_id=token_id, subject=subject)
        uow.commit()
    if token_id is not None and ended == 0 and not _exists(context, token_id):
        raise NotFound(f"portal token not found: {token_id}", field="id")


def _exists(context: ServiceContext, token_id: str) -> bool:
    with context.database.unit_of_work() as uow:
        return any(token.id == token_id for token in uow.portal_tokens.with_ids([token_id]))


def authenticate(context: ServiceContext, secret: str | None) -> PortalToken:
    """The live token behind a Bearer secret."""
    if not secret:
        raise Unauthenticated("missing portal token: send 'Authorization: Bearer <token>'")
    with context.database.single_statement() as uow:
        token = uow.portal_tokens.find_by_hash(hash_secret(secret))
    if token is None:
        raise Unauthenticated("invalid portal token")
    if token.invalidated_at is not None:
        raise Unauthenticated("the portal token was invalidated")
    if token.is_expired(context.clock()):
        raise Unauthenticated("the portal token has expired")
    return token


def query_meter(
    context: ServiceContext, token: PortalToken, slug: str, query: MeterQuery
) -> MeterQueryResult:
    """The token's subject's usage of one meter, grouped by that subject as OpenMeter does;
    subjects and customers the request names are not the token's to choose."""
    if not token.allows_meter(slug):
        # OpenMeter answers 401 here too: the token is not valid for this meter.
        raise Unauthenticated("meter slug not allowed by the portal token")
    own = replace(query, subjects=(token.subject,), customer_ids=())
    return meters_service.query_meter(context, slug, own)
