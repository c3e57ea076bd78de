"""What a server process keeps in memory between requests, and how each cache stays right.

Every cached value is keyed by a version stamp the database holds (`catalog_versions`, a
customer's `revision`); a use case reads the stamp in its own transaction (usually in the same
statement as its real work) and reloads when it moved. So a cache is never stale across worker
processes: at worst it costs one more round trip after a write.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from allotment.domain.rollups import RolledMeter
from allotment.storage import UnitOfWork


@dataclass(frozen=True)
class _RolledMeters:
    version: int
    by_event_type: dict[str, tuple[RolledMeter, ...]]


@dataclass
class ServiceCaches:
    """The caches of one process; thread-safe (each entry is replaced whole, never mutated)."""

    _rolled_meters: _RolledMeters | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def rolled_meters(
        self, uow: UnitOfWork, meters_version: int, event_types: Sequence[str]
    ) -> list[RolledMeter]:
        """The live, rolled-up meters of `event_types`, as of `meters_version`."""
        cached = self._rolled_meters
        if cached is None or cached.version != meters_version:
            live = uow.meters.list_all()
            by_type: dict[str, list[RolledMeter]] = {}
            for rolled in uow.rollups.rolled_meters(live):
                by_type.setdefault(rolled.meter.event_type, []).append(rolled)
            cached = _RolledMeters(meters_version, {k: tuple(v) for k, v in by_type.items()})
            with self._lock:
                self._rolled_meters = cached
        found: list[RolledMeter] = []
        for event_type in dict.fromkeys(event_types):
            found.extend(cached.by_event_type.get(event_type, ()))
        return found
