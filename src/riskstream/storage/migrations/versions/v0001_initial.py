"""Initial results schema: scored transactions, alerts, labels, dead letters, model versions.

Matches the tables ``SQLResultsStore`` created before migrations existed, so such a database
is adopted by stamping it at this revision (see ``riskstream.storage.migrate``). JSON columns
that are queried inside (alert reasons, model info) are JSONB on PostgreSQL.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: Alert reasons and model info are queried inside: JSONB on PostgreSQL. Scored transactions'
#: reasons and features stay JSON text (write-heavy, read whole; see storage/sql.py).
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "scored_transactions",
        sa.Column("transaction_id", sa.String(128), primary_key=True),
        sa.Column("timestamp", sa.Float, nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("amount", sa.Float, nullable=False),
        sa.Column("currency", sa.String(3)),
        sa.Column("merchant_id", sa.String(128)),
        sa.Column("merchant_category", sa.String(128)),
        sa.Column("city", sa.String(128)),
        sa.Column("country", sa.String(128)),
        sa.Column("lat", sa.Float),
        sa.Column("lon", sa.Float),
        sa.Column("device_id", sa.String(128)),
        sa.Column("channel", sa.String(16)),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("reasons", sa.JSON),
        sa.Column("features", sa.JSON),
        sa.Column("model_version", sa.String(128)),
        sa.Column("latency_ms", sa.Float),
        sa.Column("scored_at", sa.Float, nullable=False),
    )
    op.create_index("ix_scored_ts", "scored_transactions", ["timestamp"])
    op.create_index("ix_scored_user_ts", "scored_transactions", ["user_id", "timestamp"])
    op.create_index("ix_scored_decision_ts", "scored_transactions", ["decision", "timestamp"])

    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("transaction_id", sa.String(128), nullable=False, unique=True),
        sa.Column("timestamp", sa.Float, nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("amount", sa.Float),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("reasons", JSON),
        sa.Column("model_version", sa.String(128)),
        sa.Column("status", sa.String(16), nullable=False, server_default="open"),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_alerts_ts", "alerts", ["timestamp"])
    op.create_index("ix_alerts_user", "alerts", ["user_id"])
    op.create_index("ix_alerts_decision", "alerts", ["decision"])

    op.create_table(
        "labels",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("transaction_id", sa.String(128), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("analyst", sa.String(128)),
        sa.Column("note", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_labels_transaction_id", "labels", ["transaction_id"])

    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("source", sa.String(256)),
        sa.Column("field", sa.String(128)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("transaction_id", sa.String(128)),
        sa.Column("payload", sa.Text),
    )

    op.create_table(
        "model_versions",
        sa.Column("version", sa.String(128), primary_key=True),
        sa.Column("info", JSON),
        sa.Column("first_seen", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("model_versions", "dead_letters", "labels", "alerts", "scored_transactions"):
        op.drop_table(table)
