"""plans and subscriptions

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 02:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_LIVE = "deleted_at IS NULL"
_OPEN_ENDED = "deleted_at IS NULL AND active_to IS NULL"
_DRAFT = "effective_from IS NULL AND deleted_at IS NULL"


def _entitlement_index(condition: str) -> None:
    op.create_index(
        "uq_entitlements_live_customer_feature",
        "entitlements",
        ["customer_id", "feature_key"],
        unique=True,
        postgresql_where=sa.text(condition),
        sqlite_where=sa.text(condition),
    )


def upgrade() -> None:
    # Subscription entitlements end at a set time and may be followed by the next plan's.
    op.drop_index("uq_entitlements_live_customer_feature", table_name="entitlements")
    _entitlement_index(_OPEN_ENDED)

    op.create_table(
        "plans",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.String(length=1024), nullable=True),
        sa.Column("metadata", _JSON, nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("billing_cadence", sa.String(length=64), nullable=False),
        sa.Column("alignment", _JSON, nullable=True),
        sa.Column("pro_rating_config", _JSON, nullable=True),
        sa.Column("settlement_mode", sa.String(length=32), nullable=True),
        sa.Column("phases", _JSON, nullable=False),
        sa.Column("effective_from", sa.BigInteger(), nullable=True),
        sa.Column("effective_to", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
        sa.UniqueConstraint("key", "version", name=op.f("uq_plans_key_version")),
    )
    op.create_index(
        "uq_plans_draft_key",
        "plans",
        ["key"],
        unique=True,
        postgresql_where=sa.text(_DRAFT),
        sqlite_where=sa.text(_DRAFT),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("customer_id", sa.String(length=26), nullable=False),
        sa.Column("plan_id", sa.String(length=26), nullable=True),
        sa.Column("plan_key", sa.String(length=64), nullable=True),
        sa.Column("plan_version", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.String(length=1024), nullable=True),
        sa.Column("metadata", _JSON, nullable=True),
        sa.Column("terms", _JSON, nullable=False),
        sa.Column("billing_anchor", sa.BigInteger(), nullable=False),
        sa.Column("active_from", sa.BigInteger(), nullable=False),
        sa.Column("active_to", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_subscriptions_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_subscriptions_plan_id_plans")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    op.create_index(
        op.f("ix_subscriptions_customer_id"), "subscriptions", ["customer_id"], unique=False
    )
    op.create_table(
        "subscription_items",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("subscription_id", sa.String(length=26), nullable=False),
        sa.Column("phase_index", sa.Integer(), nullable=False),
        sa.Column("rate_card_key", sa.String(length=64), nullable=False),
        sa.Column("entitlement_id", sa.String(length=26), nullable=True),
        sa.Column("active_from", sa.BigInteger(), nullable=False),
        sa.Column("active_to", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_subscription_items_subscription_id_subscriptions"),
        ),
        sa.ForeignKeyConstraint(
            ["entitlement_id"],
            ["entitlements.id"],
            name=op.f("fk_subscription_items_entitlement_id_entitlements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_items")),
        sa.UniqueConstraint(
            "subscription_id",
            "phase_index",
            "rate_card_key",
            name=op.f("uq_subscription_items_subscription_id_phase_index_rate_card_key"),
        ),
    )


def downgrade() -> None:
    op.drop_table("subscription_items")
    op.drop_index(op.f("ix_subscriptions_customer_id"), table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_index("uq_plans_draft_key", table_name="plans")
    op.drop_table("plans")
    op.drop_index("uq_entitlements_live_customer_feature", table_name="entitlements")
    _entitlement_index(_LIVE)
