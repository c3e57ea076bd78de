"""Shared plumbing for repositories."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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


CHANGES_KEY = "allotment.definition_changes"


@dataclass
class DefinitionChanges:
    """Definition writes of one transaction; `UnitOfWork.commit` bumps their version stamps
    once each (storage/repositories/versions.py), so no write can forget to."""

    catalog: bool = False
    customer_ids: set[str] = field(default_factory=set)
    entitlement_ids: set[str] = field(default_factory=set)
    """Customers owning these entitlements changed."""
    usage_subjects: set[str] = field(default_factory=set)
    """Subjects whose stored usage changed (events added or excluded): no version stamp, only
    the change board (storage/change_board.py) hears of them."""

    def __bool__(self) -> bool:
        return bool(
            self.catalog or self.customer_ids or self.entitlement_ids or self.usage_subjects
        )


class Repository:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    @property
    def changes(self) -> DefinitionChanges:
        """The running unit's record of definition changes."""
        changes: DefinitionChanges | None = self.connection.info.get(CHANGES_KEY)
        if changes is None:
            raise RuntimeError("definitions changed outside a unit of work")
        return changes

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
