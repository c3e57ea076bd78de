"""Storage for events."""

from __future__ import annotations

from allotment.storage.repositories.base import Repository


class EventRepository(Repository):
    pass
