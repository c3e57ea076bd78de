"""Reading a whole list a page at a time: a CLI list shows everything it was asked for."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from allotment.domain.listing import MAX_PAGE_SIZE, ListResult, Window

T = TypeVar("T")


def every_page(fetch: Callable[[Window], ListResult[T]]) -> list[T]:
    """All items `fetch` pages through, in its order."""
    items: list[T] = []
    while True:
        result = fetch(Window(offset=len(items), limit=MAX_PAGE_SIZE))
        items.extend(result.items)
        if len(items) >= result.total_count or not result.items:
            return items
