"""Customer portal tokens on the wire (OpenMeter's `PortalToken`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from allotment.api.schemas.common import RequestModel, UtcDateTime, WireModel
from allotment.domain.portal import PortalToken
from allotment.services.portal import SUBJECT_LENGTH_MAX

ALLOWED_METERS_MAX = 100


class PortalTokenCreate(RequestModel):
    subject: str = Field(min_length=1, max_length=SUBJECT_LENGTH_MAX)
    allowed_meter_slugs: list[str] | None = Field(
        None,
        max_length=ALLOWED_METERS_MAX,
        description="Only these meters; absent or empty: every meter.",
    )
    expires_at: UtcDateTime | None = Field(
        None, description="Default: now plus ALLOTMENT_PORTAL_TOKEN_TTL_HOURS."
    )


class PortalTokenInvalidate(RequestModel):
    id: str | None = Field(None, min_length=1, max_length=26)
    subject: str | None = Field(None, min_length=1, max_length=SUBJECT_LENGTH_MAX)


class PortalTokenResource(WireModel):
    id: str
    subject: str
    expires_at: UtcDateTime
    expired: bool
    created_at: UtcDateTime
    token: str | None = Field(None, description="Only in the answer that created it.")
    allowed_meter_slugs: list[str] | None = None

    @classmethod
    def of(
        cls, token: PortalToken, now: datetime, secret: str | None = None
    ) -> PortalTokenResource:
        return cls(
            id=token.id,
            subject=token.subject,
            expires_at=token.expires_at,
            expired=not token.is_usable(now),
            created_at=token.created_at,
            token=secret,
            allowed_meter_slugs=(
                None if token.allowed_meter_slugs is None else list(token.allowed_meter_slugs)
            ),
        )
