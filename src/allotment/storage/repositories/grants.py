"""Storage for grants."""

from __future__ import annotations

from allotment.storage.repositories.base import Repository


class GrantRepository(Repository):
    pass
