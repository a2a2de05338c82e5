"""Per-detector scores and the shadow (challenger) score beside each scored transaction.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scored_transactions") as batch:
        batch.add_column(sa.Column("detector_scores", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("shadow_score", sa.Float, nullable=True))
        batch.add_column(sa.Column("shadow_version", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scored_transactions") as batch:
        batch.drop_column("shadow_version")
        batch.drop_column("shadow_score")
        batch.drop_column("detector_scores")
