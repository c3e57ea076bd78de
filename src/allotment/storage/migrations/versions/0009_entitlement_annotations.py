"""entitlement annotations (a subscription's entitlements name it)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 03:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column without a default: added in place by both databases.
    op.add_column(
        "entitlements",
        sa.Column(
            "annotations", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("entitlements", schema=None) as batch_op:
        batch_op.drop_column("annotations")
