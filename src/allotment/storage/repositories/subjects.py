"""Storage for subjects."""

from __future__ import annotations

from allotment.storage.repositories.base import Repository


class SubjectRepository(Repository):
    pass
