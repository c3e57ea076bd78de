"""Storage for entitlements."""

from __future__ import annotations

from allotment.storage.repositories.base import Repository


class EntitlementRepository(Repository):
    pass
