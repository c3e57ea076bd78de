"""Answers of reads of the present, given again while nothing they depend on has changed.

Our users call check access before every expensive request, mostly for the same few customers,
and most calls find nothing changed since the last. An answer is kept with what it depends on
(a `ReadScope`: the customer, the subjects whose usage it counts) and the change board's slots for
them (storage/change_board.py), and given again while

- the clock is in the same minute, and not on its first instant: a read at a sub-minute
  instant counts usage to the end of its minute and applies the changes scheduled up to its
  start (domain/README.md, "Minutes"), so any two such reads in one minute agree; a read at the
  minute's first instant counts none of its usage and is never reused; an entitlement's own
  start and end are not floored to minutes, so the first of those after the read ends its
  answer's life too (`ReadScope.until`);
- and no process on this host has marked any of those slots since the board was copied, just
  before the answer was computed (so a write that commits while it is computed counts as a
  change).

Anything else computes afresh, so an answer given again is exactly the one a fresh read would
give. With the board off (another host may write) nothing is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from allotment.services.caches import KeptAnswer
from allotment.services.context import ServiceContext
from allotment.storage.change_board import customer_key, subject_key

T = TypeVar("T")


@dataclass(frozen=True)
class ReadScope:
    """What a read of the present depends on besides the clock and the catalog."""

    customer_id: str
    subjects: tuple[str, ...]
    until: datetime | None = None
    """The first instant after the read at which the answer changes by itself, if one comes
    sooner than the minute's end (an entitlement starting or ending at a sub-minute instant)."""

    def board_keys(self) -> tuple[str, ...]:
        return (customer_key(self.customer_id), *(subject_key(s) for s in self.subjects))


def _minute(instant: datetime) -> int | None:
    """The minute `instant` falls in (Unix minutes), None on a minute's first instant."""
    if instant.second == 0 and instant.microsecond == 0:
        return None
    return int(instant.timestamp()) // 60


def kept(context: ServiceContext, key: Hashable) -> Any:
    """The payload kept for `key` if it still holds now, else None. Never touches the
    database, so an event loop may call it."""
    board = context.database.opened_board
    if board is None:
        return None
    now = context.clock()
    minute = _minute(now)
    found = context.caches.answers.get(key)
    if (
        minute is None
        or found is None
        or found.minute != minute
        or (found.until is not None and now >= found.until)
        or not board.unchanged(found.keys, found.stamps)
    ):
        return None
    context.caches.answers.hits += 1
    return found.payload


def answer(
    context: ServiceContext,
    key: Hashable,
    compute: Callable[[], tuple[T, ReadScope | None]],
) -> T:
    """`compute()`'s payload, or the one it gave for `key` earlier when that still holds.
    `compute` reads the present (its own `context.clock()`) and says what its answer depends on;
    None: keep nothing (an answer that depends on no customer, say)."""
    board = context.database.board()
    if board is None:
        return compute()[0]
    found = kept(context, key)
    if found is not None:
        return found  # type: ignore[no-any-return]
    minute = _minute(context.clock())
    if minute is None:
        return compute()[0]
    context.caches.answers.misses += 1
    snapshot = board.snapshot()
    payload, scope = compute()
    # The clock `compute` read lies between these two readings: same minute, same answer.
    if scope is not None and _minute(context.clock()) == minute:
        keys = scope.board_keys()
        stamps = board.stamps(snapshot, keys)
        context.caches.answers.keep(key, KeptAnswer(minute, scope.until, keys, stamps, payload))
    return payload
