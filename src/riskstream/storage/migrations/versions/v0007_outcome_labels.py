"""Outcome labels: table ``outcome_labels`` (one label per transaction, with when it was
reported, whether the online label-aware state holds it, and which process is folding it in).

A new table: no rewrite of existing data.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    key = sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")
    op.create_table(
        "outcome_labels",
        sa.Column("transaction_id", key, primary_key=True),
        sa.Column("label", sa.SmallInteger, nullable=False),
        sa.Column("reported_at", sa.Float, nullable=False),
        sa.Column("source", sa.String(32)),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("applied", sa.SmallInteger),
        sa.Column("claimed_until", sa.Float),
    )
    op.create_index("ix_outcome_labels_reported", "outcome_labels", ["reported_at"])


def downgrade() -> None:
    op.drop_index("ix_outcome_labels_reported", table_name="outcome_labels")
    op.drop_table("outcome_labels")
