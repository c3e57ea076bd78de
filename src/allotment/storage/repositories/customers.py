"""Storage for customers."""

from __future__ import annotations

from allotment.storage.repositories.base import Repository


class CustomerRepository(Repository):
    pass
