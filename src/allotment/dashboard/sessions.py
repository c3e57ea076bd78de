"""Sessions: a signed cookie naming the API key a person signed in with, and the CSRF token
every form of that session must carry.

The cookie holds the key's id, never its secret, and is signed with itsdangerous (HMAC-SHA1
over a timestamped payload), so it cannot be forged or extended; the key itself is read again
on every request, so revoking it ends its sessions at once.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from allotment.domain.api_keys import ApiKey, Scope

SESSION_COOKIE = "allotment_session"
SIGN_IN_COOKIE = "allotment_sign_in"
FLASH_COOKIE = "allotment_flash"
CSRF_FIELD = "csrf"
SIGN_IN_SECONDS = 3600
FLASH_SECONDS = 120


@dataclass(frozen=True)
class Session:
    key: ApiKey
    csrf: str

    @property
    def can_write(self) -> bool:
        """Admin keys change things; read keys only look."""
        return self.key.scope is Scope.ADMIN

    @property
    def is_admin(self) -> bool:
        return self.key.scope is Scope.ADMIN


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(sent: str | None, expected: str) -> bool:
    return sent is not None and hmac.compare_digest(sent.encode(), expected.encode())


class Signer:
    """Signs and checks the dashboard's cookies; each kind has its own salt, so a sign-in or a
    flash cookie can never pass for a session."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self._secret, salt=f"allotment.dashboard.{purpose}")

    def dumps(self, purpose: str, payload: dict[str, Any]) -> str:
        return self._serializer(purpose).dumps(payload)

    def loads(self, purpose: str, token: str | None, max_age: int) -> dict[str, Any] | None:
        """The payload, or None for a missing, forged, tampered or expired token."""
        if not token:
            return None
        try:
            payload = self._serializer(purpose).loads(token, max_age=max_age)
        except BadSignature:  # SignatureExpired is one too
            return None
        return payload if isinstance(payload, dict) else None
