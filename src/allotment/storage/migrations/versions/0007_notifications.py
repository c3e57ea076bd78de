"""notifications: channels, rules, the outbox of events and deliveries, evaluator state

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 02:06:33
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notification_channels",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column(
            "custom_headers",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("signing_secret", sa.String(length=128), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column(
            "metadata", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("type IN ('WEBHOOK')", name=op.f("ck_notification_channels_type")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_channels")),
    )
    op.create_table(
        "notification_fired",
        sa.Column("rule_id", sa.String(length=26), nullable=False),
        sa.Column("entitlement_id", sa.String(length=26), nullable=False),
        sa.Column("period_start", sa.BigInteger(), nullable=False),
        sa.Column("threshold", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint(
            "rule_id",
            "entitlement_id",
            "period_start",
            "threshold",
            name=op.f("pk_notification_fired"),
        ),
    )
    op.create_table(
        "notification_pending",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("subject_key", sa.String(length=256), nullable=True),
        sa.Column("entitlement_id", sa.String(length=26), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_pending")),
    )
    op.create_table(
        "notification_periods",
        sa.Column("rule_id", sa.String(length=26), nullable=False),
        sa.Column("entitlement_id", sa.String(length=26), nullable=False),
        sa.Column("period_start", sa.BigInteger(), nullable=False),
        sa.Column("period_end", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("rule_id", "entitlement_id", name=op.f("pk_notification_periods")),
    )
    with op.batch_alter_table("notification_periods", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notification_periods_period_end"), ["period_end"], unique=False
        )

    op.create_table(
        "notification_rules",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column(
            "metadata", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.Column(
            "channel_ids", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column(
            "features", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.Column(
            "thresholds", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_rules")),
    )
    op.create_table(
        "notification_events",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("rule_id", sa.String(length=26), nullable=False),
        sa.Column("entitlement_id", sa.String(length=26), nullable=True),
        sa.Column("feature_id", sa.String(length=26), nullable=True),
        sa.Column("feature_key", sa.String(length=64), nullable=True),
        sa.Column("subject_key", sa.String(length=256), nullable=True),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("is_test", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["notification_rules.id"],
            name=op.f("fk_notification_events_rule_id_notification_rules"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_events")),
    )
    with op.batch_alter_table("notification_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notification_events_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_notification_events_rule_id"), ["rule_id"], unique=False
        )

    op.create_table(
        "notification_deliveries",
        sa.Column("event_id", sa.String(length=26), nullable=False),
        sa.Column("channel_id", sa.String(length=26), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column(
            "attempts", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["notification_channels.id"],
            name=op.f("fk_notification_deliveries_channel_id_notification_channels"),
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["notification_events.id"],
            name=op.f("fk_notification_deliveries_event_id_notification_events"),
        ),
        sa.PrimaryKeyConstraint("event_id", "channel_id", name=op.f("pk_notification_deliveries")),
    )
    with op.batch_alter_table("notification_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notification_deliveries_channel_id"), ["channel_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_notification_deliveries_next_attempt_at"),
            ["next_attempt_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("notification_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_deliveries_next_attempt_at"))
        batch_op.drop_index(batch_op.f("ix_notification_deliveries_channel_id"))

    op.drop_table("notification_deliveries")
    with op.batch_alter_table("notification_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_events_rule_id"))
        batch_op.drop_index(batch_op.f("ix_notification_events_created_at"))

    op.drop_table("notification_events")
    op.drop_table("notification_rules")
    with op.batch_alter_table("notification_periods", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_periods_period_end"))

    op.drop_table("notification_periods")
    op.drop_table("notification_pending")
    op.drop_table("notification_fired")
    op.drop_table("notification_channels")
