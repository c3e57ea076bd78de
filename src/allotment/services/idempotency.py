"""Idempotency keys for the use cases a retry must not repeat (grant create and void, reset,
override); the rules are in `domain/idempotency.py`.

A use case calls `check` first and `remember` last, both inside its own transaction. Either may
raise `Replay` with the stored answer (the caller sends it as it is) or IdempotencyKeyReused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, NoReturn, TypeVar

from allotment.domain.idempotency import StoredAnswer
from allotment.errors import IdempotencyKeyReused
from allotment.storage import UnitOfWork

T = TypeVar("T")

# What an answer is made of: status code, media type, body.
Rendered = tuple[int, str | None, bytes]


@dataclass
class IdempotencyClaim(Generic[T]):
    """A request's key (scoped to the API key that sent it), its fingerprint, how long keys are
    remembered, and how to turn the use case's result into the answer to store."""

    api_key_id: str
    key: str
    fingerprint: str
    ttl: timedelta
    render: Callable[[T], Rendered]
    answer: StoredAnswer | None = field(default=None)


class Replay(Exception):
    def __init__(self, answer: StoredAnswer) -> None:
        super().__init__("replayed")
        self.answer = answer


def check(uow: UnitOfWork, claim: IdempotencyClaim[T] | None, now: datetime) -> None:
    if claim is None:
        return
    uow.idempotency.delete_older_than(now - claim.ttl)
    stored = uow.idempotency.find(claim.api_key_id, claim.key)
    if stored is not None:
        _answer_again(stored, claim)


def remember(uow: UnitOfWork, claim: IdempotencyClaim[T] | None, result: T, now: datetime) -> None:
    if claim is None:
        return
    status, media_type, body = claim.render(result)
    answer = StoredAnswer(claim.fingerprint, status, media_type, body)
    if not uow.idempotency.add_if_absent(claim.api_key_id, claim.key, answer, now):
        # A concurrent request with the same key committed first; ours rolls back.
        stored = uow.idempotency.find(claim.api_key_id, claim.key)
        if stored is None:  # pragma: no cover - it was there a statement ago
            raise RuntimeError("idempotency key vanished")
        _answer_again(stored, claim)
    claim.answer = answer


def _answer_again(stored: StoredAnswer, claim: IdempotencyClaim[T]) -> NoReturn:
    if stored.fingerprint != claim.fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different request; "
            "send a new key for a new request",
            field="Idempotency-Key",
        )
    raise Replay(stored)
