"""What every use case needs: the database and the clock, handed in from the edge."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from allotment.services.caches import ServiceCaches
from allotment.storage import Database


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ServiceContext:
    """Services read `clock()` once per use case and pass the instant inward as `at`."""

    database: Database
    clock: Callable[[], datetime] = field(default=system_clock)
    caches: ServiceCaches = field(default_factory=ServiceCaches, compare=False, repr=False)
