"""Storage for usage."""

from __future__ import annotations

from allotment.storage.repositories.base import Repository


class UsageRepository(Repository):
    pass
