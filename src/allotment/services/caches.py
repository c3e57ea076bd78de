"""What a server process keeps in memory between requests, and how each cache stays right.

Every cached value is keyed by a version stamp the database holds (`catalog_versions`, a
customer's `revision`); a use case reads the stamp in its own transaction (usually in the same
statement as its real work) and reloads when it moved. So a cache is never stale across worker
processes: at worst it costs one more round trip after a write.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from allotment.domain.api_keys import ApiKey
from allotment.domain.rollups import RolledMeter, SeriesKey
from allotment.storage import UnitOfWork


@dataclass(frozen=True)
class _RolledMeters:
    version: int
    by_event_type: dict[str, tuple[RolledMeter, ...]]
    series: dict[SeriesKey, int] = field(default_factory=dict)
    """Series ids ingest looked up (a series' id never changes; a meter write starts over)."""


ANSWERS_KEPT_MAX = 20_000
"""Past this many kept answers the cache starts over (an answer is a few hundred bytes, a
customer's whole access list a few tens of kB)."""


@dataclass(frozen=True)
class KeptAnswer:
    """A read's answer kept by services/answer_cache.py, with what it depends on."""

    minute: int
    until: datetime | None
    keys: tuple[str, ...]
    stamps: tuple[int, ...]
    payload: Any


@dataclass
class AnswerCache:
    """One process's kept answers; thread-safe (entries are replaced whole)."""

    _answers: dict[Hashable, KeptAnswer] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    hits: int = 0
    misses: int = 0

    def get(self, key: Hashable) -> KeptAnswer | None:
        return self._answers.get(key)

    def keep(self, key: Hashable, answer: KeptAnswer) -> None:
        with self._lock:
            if len(self._answers) >= ANSWERS_KEPT_MAX:
                self._answers.clear()
            self._answers[key] = answer


CacheKey = tuple[Hashable, ...]
"""What a cached read is about: its kind, then its arguments (owner, feature key, ...)."""

DEFINITIONS_CACHED_MAX = 50_000
"""Past this many entries the definitions cache starts over (each entry is a few kB)."""


@dataclass
class ServiceCaches:
    """The caches of one process; thread-safe (each entry is replaced whole, never mutated)."""

    _rolled_meters: _RolledMeters | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _checkpoint_requests: set[str] = field(default_factory=set)
    maintenance_wanted: threading.Event = field(default_factory=threading.Event)
    """Set when there is maintenance work (an ingest wrote deltas, a read wants a
    checkpoint); the maintenance worker waits on it."""

    _definitions: dict[CacheKey, Any] = field(default_factory=dict)
    answers: AnswerCache = field(default_factory=AnswerCache)
    api_key_seconds: float = 5.0
    """How long a checked API key is trusted without asking the database again: a key revoked
    through another process stops working within this time (at once in this process)."""
    _api_keys: dict[str, tuple[ApiKey, float]] = field(default_factory=dict)

    def api_key(self, key_hash: str) -> ApiKey | None:
        found = self._api_keys.get(key_hash)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def remember_api_key(self, key_hash: str, key: ApiKey) -> None:
        if self.api_key_seconds <= 0:
            return
        with self._lock:
            if len(self._api_keys) >= DEFINITIONS_CACHED_MAX:
                self._api_keys.clear()
            self._api_keys[key_hash] = (key, time.monotonic() + self.api_key_seconds)

    def forget_api_keys(self) -> None:
        with self._lock:
            self._api_keys.clear()

    def definitions(self, key: CacheKey) -> Any:
        """Definitions a read cached under `key` (checked against their stamps before use)."""
        return self._definitions.get(key)

    def remember_definitions(self, key: CacheKey, definitions: Any) -> None:
        with self._lock:
            if len(self._definitions) >= DEFINITIONS_CACHED_MAX:
                self._definitions.clear()
            self._definitions[key] = definitions

    def forget_definitions(self, key: CacheKey) -> None:
        with self._lock:
            self._definitions.pop(key, None)

    _compacted_since_vacuum: int = 0

    def count_compacted(self, deltas: int = 0, *, reset: bool = False) -> int:
        """Deltas folded since the deltas table was last vacuumed."""
        with self._lock:
            self._compacted_since_vacuum = 0 if reset else self._compacted_since_vacuum + deltas
            return self._compacted_since_vacuum

    def wake_maintenance(self) -> None:
        self.maintenance_wanted.set()

    sender_wanted: threading.Event = field(default_factory=threading.Event)
    """Set when notification deliveries were written; the webhook sender waits on it."""

    def wake_sender(self) -> None:
        self.sender_wanted.set()

    def request_checkpoint(self, entitlement_id: str) -> None:
        with self._lock:
            self._checkpoint_requests.add(entitlement_id)
        self.maintenance_wanted.set()

    def take_checkpoint_requests(self) -> list[str]:
        with self._lock:
            requested = sorted(self._checkpoint_requests)
            self._checkpoint_requests.clear()
        return requested

    def rolled_meters(
        self, uow: UnitOfWork, meters_version: int, event_types: Sequence[str]
    ) -> list[RolledMeter]:
        """The live, rolled-up meters of `event_types`, as of `meters_version`."""
        cached = self._meters(uow, meters_version)
        found: list[RolledMeter] = []
        for event_type in dict.fromkeys(event_types):
            found.extend(cached.by_event_type.get(event_type, ()))
        return found

    def last_rolled_meters(
        self, event_types: Sequence[str]
    ) -> tuple[int, list[RolledMeter]] | None:
        """The rolled-up meters of `event_types` as last loaded, with their version (None
        before the first ingest): a guess the ingest transaction then confirms."""
        cached = self._rolled_meters
        if cached is None:
            return None
        found: list[RolledMeter] = []
        for event_type in dict.fromkeys(event_types):
            found.extend(cached.by_event_type.get(event_type, ()))
        return cached.version, found

    def series_ids(self, uow: UnitOfWork, meters_version: int) -> dict[SeriesKey, int]:
        """Known series ids, valid as long as the meters version is `meters_version`."""
        cached = self._meters(uow, meters_version)
        if len(cached.series) > DEFINITIONS_CACHED_MAX * 4:
            cached.series.clear()
        return cached.series

    def _meters(self, uow: UnitOfWork, meters_version: int) -> _RolledMeters:
        cached = self._rolled_meters
        if cached is None or cached.version != meters_version:
            live = uow.meters.list_all()
            by_type: dict[str, list[RolledMeter]] = {}
            for rolled in uow.rollups.rolled_meters(live):
                by_type.setdefault(rolled.meter.event_type, []).append(rolled)
            cached = _RolledMeters(meters_version, {k: tuple(v) for k, v in by_type.items()})
            with self._lock:
                self._rolled_meters = cached
        return cached
