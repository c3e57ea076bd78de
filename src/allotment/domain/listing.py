"""Lists: sort direction, page requests and one page of results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# Far past any real list, and small enough that every offset fits the databases' 64-bit integers.
MAX_PAGE_NUMBER = 1_000_000_000
MAX_OFFSET = MAX_PAGE_NUMBER * MAX_PAGE_SIZE


class SortOrder(StrEnum):
    ASC = "ASC"
    DESC = "DESC"


@dataclass(frozen=True)
class Window:
    """Which slice of a sorted list to return: `limit` rows after skipping `offset`."""

    offset: int = 0
    limit: int = DEFAULT_PAGE_SIZE

    @classmethod
    def of_page(cls, page: int, page_size: int) -> Window:
        """Pages count from 1."""
        return cls(offset=(page - 1) * page_size, limit=page_size)


@dataclass(frozen=True)
class ListResult(Generic[T]):
    """One slice of a list and how many rows the whole list has."""

    items: Sequence[T]
    total_count: int
