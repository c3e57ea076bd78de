"""Shared plumbing for repositories."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Table, func, null, select

from allotment.domain.listing import Window
from allotment.domain.periods import Interval, Recurrence


def json_document(value: Mapping[str, Any] | None) -> Any:
    """A JSON column's value: SQL NULL for "none" (the JSON type would store a JSON `null`)."""
    return null() if value is None else dict(value)


def recurrence_of(interval: str | None, anchor: datetime | None) -> Recurrence | None:
    """A recurrence stored as its ISO interval and anchor columns, None when not set."""
    if interval is None or anchor is None:
        return None
    return Recurrence(Interval.parse(interval), anchor)


class Repository:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    @property
    def dialect(self) -> str:
        return self.connection.dialect.name

    def page(
        self,
        table: Table,
        conditions: Sequence[ColumnElement[bool]],
        ordering: Sequence[ColumnElement[Any]],
        window: Window | None,
    ) -> tuple[list[Row[Any]], int]:
        """The rows of `table` matching every condition, in `ordering`, inside `window` (all of
        them for None), and how many match in all."""
        query = select(table).where(*conditions).order_by(*ordering)
        if window is not None:
            query = query.offset(window.offset).limit(window.limit)
        rows = list(self.connection.execute(query))
        total = self.connection.execute(
            select(func.count()).select_from(table).where(*conditions)
        ).scalar_one()
        return rows, int(total)
