"""Column types that behave the same on SQLite and PostgreSQL.

Timestamps are stored as integer microseconds since the Unix epoch (UTC): exact, compact, cheap
to index and to bucket with integer arithmetic in either database, and free of the SQLite
habit of storing datetimes as strings. Amounts are exact decimals: NUMERIC on PostgreSQL and
text on SQLite (whose NUMERIC is a binary float).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Dialect, Integer, Numeric, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("naive datetime reached storage; every time must carry UTC")
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    seconds, micros = divmod(value, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)


class UtcTimestamp(TypeDecorator[datetime]):
    """An aware UTC datetime stored as BIGINT microseconds."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> int | None:
        return None if value is None else to_micros(value)

    def process_result_value(self, value: int | None, dialect: Dialect) -> datetime | None:
        return None if value is None else from_micros(int(value))


class Amount(TypeDecorator[Decimal]):
    """An exact decimal amount: NUMERIC on PostgreSQL, canonical text on SQLite."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Decimal | int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value)
        if dialect.name == "sqlite":
            return format(value.normalize(), "f")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(str(value)) if not isinstance(value, Decimal) else value


# JSON documents: JSONB on PostgreSQL (indexable, path operators), JSON text on SQLite.
JsonDocument = JSON().with_variant(JSONB(), "postgresql")

# Surrogate keys for append-heavy tables: SQLite only aliases ROWID for plain INTEGER.
BigIntegerKey = BigInteger().with_variant(Integer(), "sqlite")
