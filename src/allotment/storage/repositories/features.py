"""Storage for features."""

from __future__ import annotations

from allotment.storage.repositories.base import Repository


class FeatureRepository(Repository):
    pass
