"""Alembic environment: runs migrations online against the configured URL."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from alembic import context
from sqlalchemy import create_engine, pool

from allotment.storage.tables import metadata
from allotment.storage.types import Amount, UtcTimestamp

config = context.config


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Write migrations in plain SQLAlchemy types, so old migrations never import new code."""
    if type_ != "type":
        return False
    if isinstance(obj, UtcTimestamp):
        return "sa.BigInteger()"
    if isinstance(obj, Amount):
        return "sa.Numeric().with_variant(sa.String(length=64), 'sqlite')"
    variants = getattr(obj, "_variant_mapping", None)
    if isinstance(obj, sa.JSON) and variants and "postgresql" in variants:
        return "sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')"
    return False


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


run_migrations_online()
