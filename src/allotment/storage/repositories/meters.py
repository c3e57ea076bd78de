"""Storage for meters."""

from __future__ import annotations

from allotment.storage.repositories.base import Repository


class MeterRepository(Repository):
    pass
