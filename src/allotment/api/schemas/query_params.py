"""Query parameters several routes share, each parsed in one place: list shapes and time bounds.

The list shapes OpenMeter's lists use are FastAPI dependencies that read the paging parameters
and say which slice to read and how to wrap it:

- **page** (`GET /api/v1/customers`, a customer's v2 entitlements): always the paginated object
  `{items, page, pageSize, totalCount}`, `page` from 1.
- **legacy** (`GET /api/v1/entitlements`, `/api/v1/grants`, `/api/v1/features`): a bare JSON
  array (with `offset` and `limit`) unless `page` or `pageSize` is sent, then the paginated object.
- **v2** (`GET /api/v2/entitlements`, `/api/v2/grants`, an entitlement's v2 grants): always the
  paginated object; page mode unless only `offset`/`limit` are sent, in which case `page` and
  `pageSize` read 0. When both kinds are sent, the page wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Query

from allotment.api.schemas.common import Page, UtcDateTime
from allotment.domain.listing import (
    DEFAULT_PAGE_SIZE,
    MAX_OFFSET,
    MAX_PAGE_NUMBER,
    MAX_PAGE_SIZE,
    Window,
)

T = TypeVar("T")

PageNumber = Annotated[
    int | None, Query(ge=1, le=MAX_PAGE_NUMBER, description="Page number, from 1")
]
PageSize = Annotated[
    int | None,
    Query(alias="pageSize", ge=1, le=MAX_PAGE_SIZE, description="Items per page (default 100)"),
]
Offset = Annotated[
    int | None, Query(ge=0, le=MAX_OFFSET, description="Items to skip (limit/offset mode)")
]
Limit = Annotated[
    int | None,
    Query(ge=1, le=MAX_PAGE_SIZE, description="Most items to return (limit/offset mode)"),
]

FromTime = Annotated[UtcDateTime | None, Query(alias="from")]
ToTime = Annotated[UtcDateTime | None, Query(alias="to")]
ClientId = Annotated[
    str | None,
    Query(alias="clientId", min_length=1, max_length=36, description="Accepted and ignored"),
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
        return self.paginated(items, total_count)

    def paginated(self, items: Sequence[T], total_count: int) -> Page[T]:
        return Page[T](
            items=list(items),
            page=self.page or 0,
            page_size=self.page_size or 0,
            total_count=total_count,
        )


async def page_shape(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE_NUMBER, description="Page number, from 1")] = 1,
    page_size: Annotated[
        int, Query(alias="pageSize", ge=1, le=MAX_PAGE_SIZE, description="Items per page")
    ] = DEFAULT_PAGE_SIZE,
) -> ListShape:
    return ListShape(Window.of_page(page, page_size), page, page_size)


async def legacy_shape(
    page: PageNumber = None,
    page_size: PageSize = None,
    offset: Offset = None,
    limit: Limit = None,
) -> ListShape:
    if page is None and page_size is None:
        window = Window(offset=offset or 0, limit=limit or DEFAULT_PAGE_SIZE)
        return ListShape(window, None, None)
    return await page_shape(page or 1, page_size or DEFAULT_PAGE_SIZE)


async def v2_shape(
    page: PageNumber = None,
    page_size: PageSize = None,
    offset: Offset = None,
    limit: Limit = None,
) -> ListShape:
    if page is None and page_size is None and (offset is not None or limit is not None):
        window = Window(offset=offset or 0, limit=limit or DEFAULT_PAGE_SIZE)
        return ListShape(window, 0, 0)
    return await page_shape(page or 1, page_size or DEFAULT_PAGE_SIZE)


PageList = Annotated[ListShape, Depends(page_shape)]
LegacyList = Annotated[ListShape, Depends(legacy_shape)]
V2List = Annotated[ListShape, Depends(v2_shape)]
