"""Customer portal tokens: a bearer secret that lets a customer's own product read one
subject's usage, of the meters the token allows, until it expires or is invalidated."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PortalToken:
    id: str
    subject: str
    allowed_meter_slugs: tuple[str, ...] | None
    """None or empty: every meter (OpenMeter reads an empty list the same way)."""
    created_at: datetime
    expires_at: datetime
    invalidated_at: datetime | None

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def is_usable(self, now: datetime) -> bool:
        return self.invalidated_at is None and not self.is_expired(now)

    def allows_meter(self, slug: str) -> bool:
        return not self.allowed_meter_slugs or slug in self.allowed_meter_slugs
