"""The schema: every table, typed, under one MetaData with a naming convention.

Invariants that matter for money live here as constraints as well as in code: events are unique
by (source, id); at most one live entitlement per (customer, feature); at most one live meter per
slug and feature per key; grant amounts are positive.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
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


def _open_ended() -> dict[str, Any]:
    condition = text("deleted_at IS NULL AND active_to IS NULL")
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

# The first answer to a request sent with an Idempotency-Key, stored in the transaction that made
# the change, so a retry after a timeout replays it instead of changing anything twice.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("api_key_id", ULID, primary_key=True),
    Column("key", String(255), primary_key=True),
    # sha256 of method, path, query and body: the same key with another request is refused.
    Column("fingerprint", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("media_type", String(100)),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", UtcTimestamp, nullable=False, index=True),
)

# Customer portal tokens: like API keys, only the secret's hash is kept.
portal_tokens = Table(
    "portal_tokens",
    metadata,
    Column("id", ULID, primary_key=True),
    Column("subject", String(256), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("allowed_meter_slugs", JsonDocument),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("expires_at", UtcTimestamp, nullable=False),
    Column("invalidated_at", UtcTimestamp),
)

events = Table(
    "events",
    metadata,
    # Arrival order: it breaks ties between events of the same time (LATEST) and tells a meter's
    # backfill which events it must read itself (`meter_rollups`).
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
    # Set while an admin's correction excludes the event: no read or roll-up counts it, and it
    # stays stored (its (source, id) still deduplicates retries) and listed.
    Column("excluded_at", UtcTimestamp),
    UniqueConstraint("source", "id"),
    # No (type, subject, time) index: reads of a subject's usage go to the roll-ups, and that
    # index, written at random places, cost more than the rest of an insert.
    Index(None, "type", "time"),
    Index(None, "time"),
    Index(None, "ingested_at"),
)

# The audit trail of corrections: who excluded or restored which event, when and why. Rows are
# only ever added.
event_corrections = Table(
    "event_corrections",
    metadata,
    Column("id", ULID, primary_key=True),
    Column("event_seq", BigInteger, ForeignKey("events.seq"), nullable=False, index=True),
    Column("action", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    # The admin key that made it; NULL for the CLI, run on the server's own machine.
    Column("api_key_id", ULID),
    Column("created_at", UtcTimestamp, nullable=False, index=True),
    CheckConstraint("action IN ('exclude', 'restore')", name="action"),
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
    # Bumped by every write to the customer's entitlements, grants and resets: cached
    # definitions of its entitlements are checked against it on every read.
    Column("revision", BigInteger, nullable=False, server_default=text("0")),
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
    # OpenMeter's unitCost, kept as sent (added in 0005, hence last).
    Column("unit_cost", JsonDocument),
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
    # Read-only on the wire, set by Allotment: `subscription.id` on a subscription's own.
    Column("annotations", JsonDocument),
    Column("active_from", UtcTimestamp, nullable=False),
    Column("active_to", UtcTimestamp),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
    Column("deleted_at", UtcTimestamp),
    CheckConstraint("type IN ('metered', 'static', 'boolean')", name="type"),
    # One open-ended live entitlement per customer and feature; override and delete end the old
    # one first. Entitlements with an end (a subscription's, scheduled to change) may follow one
    # another; services refuse overlapping windows.
    Index(
        "uq_entitlements_live_customer_feature",
        "customer_id",
        "feature_key",
        unique=True,
        **_open_ended(),
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

# Plans (domain/plans.py): one row per version. Phases, rate cards and entitlement templates are
# one JSON document: always read and written whole, never queried inside.
plans = Table(
    "plans",
    metadata,
    Column("id", ULID, primary_key=True),
    Column("key", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("name", String(256), nullable=False),
    Column("description", String(1024)),
    Column("metadata", JsonDocument),
    Column("currency", String(3), nullable=False),
    Column("billing_cadence", String(64), nullable=False),
    Column("alignment", JsonDocument),
    Column("pro_rating_config", JsonDocument),
    Column("settlement_mode", String(32)),
    Column("phases", JsonDocument, nullable=False),
    Column("effective_from", UtcTimestamp),
    Column("effective_to", UtcTimestamp),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
    Column("deleted_at", UtcTimestamp),
    UniqueConstraint("key", "version"),
    # One draft per key at a time: `next` refuses a second one.
    Index(
        "uq_plans_draft_key",
        "key",
        unique=True,
        postgresql_where=text("effective_from IS NULL AND deleted_at IS NULL"),
        sqlite_where=text("effective_from IS NULL AND deleted_at IS NULL"),
    ),
)

# A customer on a plan: the plan's terms are copied in (a custom plan has only the copy), so a
# later plan version never changes a running subscription.
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", ULID, primary_key=True),
    Column("customer_id", ULID, ForeignKey("customers.id"), nullable=False),
    Column("plan_id", ULID, ForeignKey("plans.id")),
    Column("plan_key", String(64)),
    Column("plan_version", Integer),
    Column("name", String(256), nullable=False),
    Column("description", String(1024)),
    Column("metadata", JsonDocument),
    Column("terms", JsonDocument, nullable=False),
    Column("billing_anchor", UtcTimestamp, nullable=False),
    Column("active_from", UtcTimestamp, nullable=False),
    Column("active_to", UtcTimestamp),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
    Column("deleted_at", UtcTimestamp),
    Index(None, "customer_id"),
)

# One rate card of one phase of a subscription, with the entitlement it created.
subscription_items = Table(
    "subscription_items",
    metadata,
    Column("id", ULID, primary_key=True),
    Column("subscription_id", ULID, ForeignKey("subscriptions.id"), nullable=False),
    Column("phase_index", Integer, nullable=False),
    Column("rate_card_key", String(64), nullable=False),
    Column("entitlement_id", ULID, ForeignKey("entitlements.id")),
    Column("active_from", UtcTimestamp, nullable=False),
    Column("active_to", UtcTimestamp),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
    UniqueConstraint("subscription_id", "phase_index", "rate_card_key"),
)


# ---------------------------------------------------------------------------------------------
# Usage roll-ups (rules in domain/rollups.py; how they are kept in storage/rollups.py)

# Version stamps caches compare against, one row per kind of definition: "meters" (every meter
# write; ingest holds this row FOR SHARE so a meter change waits for ingests in flight) and
# "catalog" (features, customers and their subjects).
catalog_versions = Table(
    "catalog_versions",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("version", BigInteger, nullable=False),
)

# How far each live meter's roll-ups reach: events with seq <= backfill_until_seq were stored
# before the meter (or its current group-by) existed and are read by the backfill, which has
# done those below backfill_next_seq; every later event is rolled up by the ingest that stores
# it. The roll-ups are complete once backfill_next_seq > backfill_until_seq.
meter_rollups = Table(
    "meter_rollups",
    metadata,
    Column("meter_id", ULID, ForeignKey("meters.id"), primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("backfill_until_seq", BigInteger, nullable=False),
    Column("backfill_next_seq", BigInteger, nullable=False),
)

# One meter's events of one subject with one combination of group-by values. A group-by change
# starts a new generation; older generations are removed by maintenance.
usage_series = Table(
    "usage_series",
    metadata,
    Column("id", BigIntegerKey, primary_key=True, autoincrement=True),
    Column("meter_id", ULID, nullable=False),
    Column("generation", Integer, nullable=False),
    Column("subject", String(256), nullable=False),
    # sha256 of group_values' canonical text: a fixed-size key, whatever the values' length.
    Column("group_digest", String(64), nullable=False),
    Column("group_values", JsonDocument, nullable=False),
    UniqueConstraint("meter_id", "generation", "subject", "group_digest"),
)

_AGGREGATE_COLUMNS = (
    ("count", BigInteger, False),
    ("first_time", BigInteger, False),
    ("last_time", BigInteger, False),
    ("last_seq", BigInteger, False),
    ("total", Amount, True),
    ("negative_total", Amount, True),
    ("minimum", Amount, True),
    ("maximum", Amount, True),
    ("last_value", Amount, True),
)


def _aggregate_columns() -> list[Column[Any]]:
    return [Column(name, kind, nullable=nullable) for name, kind, nullable in _AGGREGATE_COLUMNS]


# A series' usage per bucket (level 0 minute, 1 hour, 2 day; bucket = its UTC start in µs). The
# key leads with the level: a read names the level of each of its pieces, so every plan seeks
# (level, series, bucket range) and none can scan a series' every bucket.
usage_rollups = Table(
    "usage_rollups",
    metadata,
    Column("level", SmallInteger, primary_key=True),
    Column("series_id", BigInteger, primary_key=True),
    Column("bucket", BigInteger, primary_key=True),
    *_aggregate_columns(),
    sqlite_with_rowid=False,
)

# Usage written by ingest and not yet folded into usage_rollups: minute partials, appended
# without conflicts (concurrent ingests never wait on each other) and read together with the
# roll-ups. Maintenance deletes them and adds them to the roll-ups in one transaction.
usage_deltas = Table(
    "usage_deltas",
    metadata,
    Column("id", BigIntegerKey, primary_key=True, autoincrement=True),
    Column("series_id", BigInteger, nullable=False),
    Column("minute", BigInteger, nullable=False),
    *_aggregate_columns(),
    Index(None, "series_id", "minute"),
)

# UNIQUE_COUNT: the set of distinct values of each bucket, written by ingest at every level.
usage_distinct = Table(
    "usage_distinct",
    metadata,
    Column("level", SmallInteger, primary_key=True),
    Column("series_id", BigInteger, primary_key=True),
    Column("bucket", BigInteger, primary_key=True),
    Column("value_key", String(256), primary_key=True),
    sqlite_with_rowid=False,
)

# Saved engine states of metered entitlements (domain/snapshots.py has the rules).
balance_checkpoints = Table(
    "balance_checkpoints",
    metadata,
    Column("entitlement_id", ULID, primary_key=True),
    Column("at", UtcTimestamp, primary_key=True),
    Column("state", Text, nullable=False),
    Column("created_at", UtcTimestamp, nullable=False),
    # Late usage first asks whether anything was saved after it: mostly nothing.
    Index(None, "at"),
)


# ---------------------------------------------------------------------------------------------
# Notifications (rules in domain/notifications.py; the outbox in storage/repositories/outbox.py)

notification_channels = Table(
    "notification_channels",
    metadata,
    Column("id", ULID, primary_key=True),
    Column("type", String(16), nullable=False),
    Column("name", String(256), nullable=False),
    Column("url", Text, nullable=False),
    Column("custom_headers", JsonDocument, nullable=False),
    Column("signing_secret", String(128), nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("metadata", JsonDocument),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
    Column("deleted_at", UtcTimestamp),
    CheckConstraint("type IN ('WEBHOOK')", name="type"),
)

# Channels and features are JSON lists: a rule names at most five channels, and rules are few
# enough to be filtered in memory.
notification_rules = Table(
    "notification_rules",
    metadata,
    Column("id", ULID, primary_key=True),
    Column("type", String(64), nullable=False),
    Column("name", String(256), nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("metadata", JsonDocument),
    Column("channel_ids", JsonDocument, nullable=False),
    # [{"id", "key"}] or NULL for every feature.
    Column("features", JsonDocument),
    # [{"value": "<exact decimal>", "type"}]
    Column("thresholds", JsonDocument, nullable=False),
    Column("created_at", UtcTimestamp, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
    Column("deleted_at", UtcTimestamp),
)

# The outbox: an event and its deliveries are written in one transaction, and the sender works
# through the deliveries until each succeeds or its retries run out.
notification_events = Table(
    "notification_events",
    metadata,
    Column("id", ULID, primary_key=True),
    Column("type", String(64), nullable=False),
    Column("rule_id", ULID, ForeignKey("notification_rules.id"), nullable=False),
    Column("entitlement_id", ULID),
    Column("feature_id", ULID),
    Column("feature_key", String(64)),
    Column("subject_key", String(256)),
    Column("payload", JsonDocument, nullable=False),
    Column("is_test", Boolean, nullable=False),
    Column("created_at", UtcTimestamp, nullable=False),
    Index(None, "created_at"),
    Index(None, "rule_id"),
)

notification_deliveries = Table(
    "notification_deliveries",
    metadata,
    Column("event_id", ULID, ForeignKey("notification_events.id"), primary_key=True),
    Column("channel_id", ULID, ForeignKey("notification_channels.id"), primary_key=True),
    # The `webhook-id` header: the same for every attempt and resend, so receivers dedupe.
    Column("message_id", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    # Attempts made since the last resend: indexes the retry schedule.
    Column("attempt_count", Integer, nullable=False),
    # [{"state", "timestamp", "statusCode", "body", "durationMs", "url"}], oldest first.
    Column("attempts", JsonDocument, nullable=False),
    # Due time of the next attempt; while SENDING, the time the claim lapses (a sender that died
    # mid-attempt leaves it to another).
    Column("next_attempt_at", UtcTimestamp),
    Column("updated_at", UtcTimestamp, nullable=False),
    Index(None, "next_attempt_at"),
    Index(None, "channel_id"),
)

# Work for the evaluator, written in the transaction of the change that may cross a threshold:
# the subjects an ingest stored usage for, the entitlement a grant, void, reset or override
# changed. Append-only (no unique key), so concurrent ingests never wait on each other here.
notification_pending = Table(
    "notification_pending",
    metadata,
    Column("id", BigIntegerKey, primary_key=True, autoincrement=True),
    Column("subject_key", String(256)),
    Column("entitlement_id", ULID),
    Column("created_at", UtcTimestamp, nullable=False),
)

# Thresholds already notified, per rule, entitlement and usage period: each fires once.
notification_fired = Table(
    "notification_fired",
    metadata,
    Column("rule_id", ULID, primary_key=True),
    Column("entitlement_id", ULID, primary_key=True),
    Column("period_start", UtcTimestamp, primary_key=True),
    Column("threshold", String(128), primary_key=True),
)

# The usage period each entitlement was last evaluated in, per rule, and when it ends: a later
# period is a reset (manual or at the boundary) for reset rules; a period that has ended is due
# for evaluation even without a write.
notification_periods = Table(
    "notification_periods",
    metadata,
    Column("rule_id", ULID, primary_key=True),
    Column("entitlement_id", ULID, primary_key=True),
    Column("period_start", UtcTimestamp, nullable=False),
    Column("period_end", UtcTimestamp),
    Index(None, "period_end"),
)
