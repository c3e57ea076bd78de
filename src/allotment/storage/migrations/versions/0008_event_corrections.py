"""event corrections: excluded events and their audit trail

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 01:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (no batch copy): events is the largest table, and a nullable column
    # without a default is added in place by both databases.
    op.add_column("events", sa.Column("excluded_at", sa.BigInteger(), nullable=True))
    op.create_table(
        "event_corrections",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("api_key_id", sa.String(length=26), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "action IN ('exclude', 'restore')", name=op.f("ck_event_corrections_action")
        ),
        sa.ForeignKeyConstraint(
            ["event_seq"], ["events.seq"], name=op.f("fk_event_corrections_event_seq_events")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_corrections")),
    )
    op.create_index(
        op.f("ix_event_corrections_event_seq"), "event_corrections", ["event_seq"], unique=False
    )
    op.create_index(
        op.f("ix_event_corrections_created_at"), "event_corrections", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_event_corrections_created_at"), table_name="event_corrections")
    op.drop_index(op.f("ix_event_corrections_event_seq"), table_name="event_corrections")
    op.drop_table("event_corrections")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("excluded_at")
