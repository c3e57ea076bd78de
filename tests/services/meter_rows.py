"""Meter rows for feature tests, written straight to the table: the meters service and its
tests belong to another suite, and a feature only needs a meter's slug, aggregation and
group-by keys."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert

from allotment.ids import new_id
from allotment.services.context import ServiceContext
from allotment.storage.tables import meters


def add_meter(
    context: ServiceContext,
    slug: str,
    aggregation: str = "SUM",
    group_by: dict[str, str] | None = None,
    deleted: bool = False,
) -> None:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    with context.database.engine.begin() as connection:
        connection.execute(
            insert(meters).values(
                id=new_id(),
                slug=slug,
                name=slug,
                aggregation=aggregation,
                event_type="prompt",
                value_property=None if aggregation == "COUNT" else "$.tokens",
                group_by=group_by or {},
                created_at=at,
                updated_at=at,
                deleted_at=at if deleted else None,
            )
        )
