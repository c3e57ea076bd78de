"""Errors every layer may raise; `api/problems.py` alone turns them into HTTP responses.

No HTTP in here: a status code is the API's business. Each error names the input field it is
about (`field`), so a client can point at the exact bad value.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldError:
    """One bad field: `field` is a dotted path into the request (e.g. `usagePeriod.interval`)."""

    field: str
    message: str
    code: str = "invalid"


class AllotmentError(Exception):
    """Base of every error a client can cause."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        errors: list[FieldError] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors: list[FieldError] = list(errors or [])
        if field is not None and not any(e.field == field for e in self.errors):
            self.errors.insert(0, FieldError(field=field, message=message))

    @property
    def field(self) -> str | None:
        return self.errors[0].field if self.errors else None


class InvalidInput(AllotmentError):
    """The request is well-formed but breaks a rule (OpenMeter answers 400)."""


class NotFound(AllotmentError):
    """An id or key names nothing that exists (404)."""


class Conflict(AllotmentError):
    """The request collides with existing state (409)."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        conflicting_entity_id: str | None = None,
    ) -> None:
        super().__init__(message, field=field)
        self.conflicting_entity_id = conflicting_entity_id


class PreconditionFailed(AllotmentError):
    """The target exists but is in a state that forbids the operation, e.g. deleted (412)."""


class TooLarge(AllotmentError):
    """A body, list or field beyond a configured limit (413)."""


class IdempotencyKeyReused(AllotmentError):
    """An Idempotency-Key sent again with a different request (422)."""


class RateLimited(AllotmentError):
    """Too many requests from one key or address; try again after `retry_after` seconds (429)."""

    def __init__(self, message: str, *, retry_after: int, limit: str) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)
        self.limit = limit


class Unavailable(AllotmentError):
    """The database cannot serve the request now (down, hung, locked, full or read-only): not the
    client's fault, worth a retry after `retry_after` seconds (503). `reason` is a short code
    for logs and metrics; it never holds anything a client sent."""

    def __init__(self, message: str, *, reason: str, retry_after: int = 2) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = max(1, retry_after)


class Unauthenticated(AllotmentError):
    """No API key, or one that matches no live key (401)."""


class Forbidden(AllotmentError):
    """A valid key used outside its scope (403)."""


@dataclass
class ErrorList:
    """Collects several field errors before raising them together as one InvalidInput."""

    errors: list[FieldError] = field(default_factory=list)

    def add(self, field_name: str, message: str, code: str = "invalid") -> None:
        self.errors.append(FieldError(field=field_name, message=message, code=code))

    @contextmanager
    def collecting(self) -> Iterator[None]:
        """Keeps the field errors of an InvalidInput raised in the block instead of letting it
        escape, so that one response names every bad field, not only the first."""
        try:
            yield
        except InvalidInput as error:
            self.errors.extend(error.errors)

    def raise_if_any(self, message: str = "invalid request") -> None:
        if self.errors:
            detail = "; ".join(f"{e.field}: {e.message}" for e in self.errors)
            raise InvalidInput(f"{message}: {detail}", errors=self.errors)
