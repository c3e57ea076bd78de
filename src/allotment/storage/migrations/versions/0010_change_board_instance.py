"""the change board's name: a random number per database (storage/change_board.py)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 17:40:00
"""

import random
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Made here, not on first use, so that a reader finds it without taking a write lock.
    op.get_bind().execute(
        sa.text("INSERT INTO catalog_versions (name, version) VALUES ('change_board', :instance)"),
        {"instance": random.SystemRandom().getrandbits(62)},
    )


def downgrade() -> None:
    op.execute("DELETE FROM catalog_versions WHERE name = 'change_board'")
