"""The three list shapes OpenMeter's entitlement and grant lists use, chosen from the query.

- **legacy** (`GET /api/v1/entitlements`, `GET /api/v1/grants`): a bare JSON array (with `offset`
  and `limit`) unless `page` or `pageSize` is sent, then `{items, page, pageSize, totalCount}`.
- **v2** (`GET /api/v2/entitlements`, `/api/v2/grants`, an entitlement's v2 grants): always the
  paginated object; page mode unless only `offset`/`limit` are sent, in which case `page` and
  `pageSize` read 0. When both kinds are sent, the page wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Query

from allotment.api.schemas.common import Page
from allotment.domain.listing import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Window

T = TypeVar("T")

PageNumber = Annotated[int | None, Query(ge=1, description="Page number, from 1")]
PageSize = Annotated[
    int | None,
    Query(alias="pageSize", ge=1, le=MAX_PAGE_SIZE, description="Items per page (default 100)"),
]
Offset = Annotated[int | None, Query(ge=0, description="Items to skip (limit/offset mode)")]
Limit = Annotated[
    int | None,
    Query(ge=1, le=MAX_PAGE_SIZE, description="Most items to return (limit/offset mode)"),
]


@dataclass(frozen=True)
class ListShape:
    """Which slice to read, and how to wrap it: `page is None` means a bare array."""

    window: Window
    page: int | None
    page_size: int | None

    def wrap(self, items: Sequence[T], total_count: int) -> list[T] | Page[T]:
        if self.page is None or self.page_size is None:
            return list(items)
        return Page[T](
            items=list(items), page=self.page, page_size=self.page_size, total_count=total_count
        )

    def paginated(self, items: Sequence[T], total_count: int) -> Page[T]:
        return Page[T](
            items=list(items),
            page=self.page or 0,
            page_size=self.page_size or 0,
            total_count=total_count,
        )


def legacy_shape(
    page: int | None, page_size: int | None, offset: int | None, limit: int | None
) -> ListShape:
    if page is None and page_size is None:
        window = Window(offset=offset or 0, limit=limit or DEFAULT_PAGE_SIZE)
        return ListShape(window, None, None)
    return _page_shape(page, page_size)


def v2_shape(
    page: int | None, page_size: int | None, offset: int | None, limit: int | None
) -> ListShape:
    if page is None and page_size is None and (offset is not None or limit is not None):
        window = Window(offset=offset or 0, limit=limit or DEFAULT_PAGE_SIZE)
        return ListShape(window, 0, 0)
    return _page_shape(page, page_size)


def _page_shape(page: int | None, page_size: int | None) -> ListShape:
    page, page_size = page or 1, page_size or DEFAULT_PAGE_SIZE
    return ListShape(Window.of_page(page, page_size), page, page_size)
