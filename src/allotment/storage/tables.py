"""The schema: every table, typed, under one MetaData with a naming convention.

Invariants that matter for money live here as constraints as well as in code: events are unique
by (source, id); at most one live entitlement per (customer, feature); at most one live meter per
slug and feature per key; grant amounts are positive.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from allotment.storage.types import Amount, BigIntegerKey, JsonDocument, UtcTimestamp

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ULID = String(26)


def _live(column: str) -> dict[str, Any]:
    """Partial-index condition shared by both dialects: rows not soft-deleted."""
    condition = text(f"{column} IS NULL")
    return {"postgresql_where": condition, "sqlite_where": condition}


api_keys = Table(
    "api_keys",
    metadata,
    Column("id", ULID, primary_key=True),
    Column("name", String(256), nullable=False),
    Column("scope", String(16), nullable=False),
    # sha256 of the secret; the secret itself is shown once and never stored.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("revoked_at", UtcTimestamp),
    CheckConstraint("scope IN ('admin', 'ingest', 'read')", name="scope"),
)

events = Table(
    "events",
    metadata,
    # Ingest order; later work folds roll-ups forward from a watermark on this column.
    Column("seq", BigIntegerKey, primary_key=True, autoincrement=True),
    Column("id", String(256), nullable=False),
    Column("source", String(256), nullable=False),
    Column("specversion", String(16), nullable=False),
    Column("type", String(256), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("time", UtcTimestamp, nullable=False),
    Column("datacontenttype", String(64)),
    Column("dataschema", String(1024)),
    Column("data", JsonDocument),
    Column("ingested_at", UtcTimestamp, nullable=False),
    UniqueConstraint("source", "id"),
    Index(None, "type", "subject", "time"),
    Index(None, "type", "time"),
    Index(None, "time"),
    Index(None, "ingested_at"),
)

meters = Table(
    "meters",
    metadata,
    Column("id", ULID, primary_key=True),
    Column("slug", String(64), nullable=False),
    Column("name", String(256), nullable=False),
    Column("description", String(1024)),
    Column("metadata", JsonDocument),
    Column("aggregation", String(16), nullable=False),
    Column("event_type", String(256), nullable=False),
    Column("event_from", UtcTimestamp),
    Column("value_property", String(256)),
    Column("group_by", JsonDocument, nullable=False),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
    Column("deleted_at", UtcTimestamp),
    CheckConstraint(
        "aggregation IN ('SUM', 'COUNT', 'UNIQUE_COUNT', 'AVG', 'MIN', 'MAX', 'LATEST')",
        name="aggregation",
    ),
    Index("uq_meters_live_slug", "slug", unique=True, **_live("deleted_at")),
)

subjects = Table(
    "subjects",
    metadata,
    Column("id", ULID, primary_key=True),
    Column("key", String(256), nullable=False),
    Column("display_name", String(256)),
    Column("metadata", JsonDocument),
    Column("current_period_start", UtcTimestamp),
    Column("current_period_end", UtcTimestamp),
    Column("stripe_customer_id", String(256)),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
    Column("deleted_at", UtcTimestamp),
    Index("uq_subjects_live_key", "key", unique=True, **_live("deleted_at")),
)

customers = Table(
    "customers",
    metadata,
    Column("id", ULID, primary_key=True),
    Column("key", String(256)),
    Column("name", String(256), nullable=False),
    Column("description", String(1024)),
    Column("primary_email", String(256)),
    Column("currency", String(3)),
    Column("billing_address", JsonDocument),
    Column("metadata", JsonDocument),
    Column("annotations", JsonDocument),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
    Column("deleted_at", UtcTimestamp),
    Index("uq_customers_live_key", "key", unique=True, **_live("deleted_at")),
)

# usageAttribution.subjectKeys: one subject belongs to at most one live customer. Rows of a
# deleted customer are removed, so the unique key covers live customers only.
customer_subjects = Table(
    "customer_subjects",
    metadata,
    Column("customer_id", ULID, ForeignKey("customers.id"), primary_key=True),
    Column("subject_key", String(256), primary_key=True),
    UniqueConstraint("subject_key"),
)

features = Table(
    "features",
    metadata,
    Column("id", ULID, primary_key=True),
    Column("key", String(64), nullable=False),
    Column("name", String(256), nullable=False),
    Column("meter_slug", String(64)),
    Column("meter_group_by_filters", JsonDocument),
    Column("metadata", JsonDocument),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
    Column("archived_at", UtcTimestamp),
    Index("uq_features_live_key", "key", unique=True, **_live("archived_at")),
)

entitlements = Table(
    "entitlements",
    metadata,
    Column("id", ULID, primary_key=True),
    Column("type", String(16), nullable=False),
    Column("customer_id", ULID, ForeignKey("customers.id"), nullable=False),
    Column("feature_id", ULID, ForeignKey("features.id"), nullable=False),
    Column("feature_key", String(64), nullable=False),
    # ISO 8601 duration of the usage period and its original anchor (resets keep their own).
    Column("usage_period_interval", String(64)),
    Column("usage_period_anchor", UtcTimestamp),
    Column("measure_usage_from", UtcTimestamp),
    Column("is_soft_limit", Boolean),
    Column("issue_after_reset", Amount),
    Column("issue_after_reset_priority", Integer),
    Column("preserve_overage_at_reset", Boolean),
    Column("config", Text),
    Column("metadata", JsonDocument),
    Column("active_from", UtcTimestamp, nullable=False),
    Column("active_to", UtcTimestamp),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
    Column("deleted_at", UtcTimestamp),
    CheckConstraint("type IN ('metered', 'static', 'boolean')", name="type"),
    # One live entitlement per customer and feature; override and delete end the old one first.
    Index(
        "uq_entitlements_live_customer_feature",
        "customer_id",
        "feature_key",
        unique=True,
        **_live("deleted_at"),
    ),
    # Reads by customer and feature key include ended entitlements, which the partial index
    # above leaves out: without this one every value read scans the table.
    Index(None, "customer_id", "feature_key"),
    Index(None, "feature_id"),
)

# Manual resets, append-only: each starts a new usage period with its own anchor.
usage_resets = Table(
    "usage_resets",
    metadata,
    Column("id", ULID, primary_key=True),
    Column("entitlement_id", ULID, ForeignKey("entitlements.id"), nullable=False),
    Column("reset_at", UtcTimestamp, nullable=False),
    Column("anchor", UtcTimestamp, nullable=False),
    Column("preserve_overage", Boolean, nullable=False),
    Column("created_at", UtcTimestamp, nullable=False),
    UniqueConstraint("entitlement_id", "reset_at"),
)

grants = Table(
    "grants",
    metadata,
    Column("id", ULID, primary_key=True),
    Column("entitlement_id", ULID, ForeignKey("entitlements.id"), nullable=False),
    Column("amount", Amount, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("effective_at", UtcTimestamp, nullable=False),
    Column("expiration_duration", String(8)),
    Column("expiration_count", Integer),
    Column("expires_at", UtcTimestamp),
    Column("min_rollover_amount", Amount, nullable=False),
    Column("max_rollover_amount", Amount, nullable=False),
    Column("recurrence_interval", String(64)),
    Column("recurrence_anchor", UtcTimestamp),
    Column("metadata", JsonDocument),
    Column("annotations", JsonDocument),
    Column("voided_at", UtcTimestamp),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
    Column("deleted_at", UtcTimestamp),
    CheckConstraint("priority >= 0 AND priority <= 255", name="priority"),
    Index(None, "entitlement_id"),
)
