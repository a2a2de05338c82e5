"""Link analyst labels to alerts; index the analyst's alert queue.

* ``labels.alert_id`` (nullable, indexed): the alert a label answers, so feedback joins to
  alerts by key instead of by ``transaction_id`` text. Existing labels are back-filled from
  the alert of the same transaction; labels of transactions that raised no alert keep NULL.
  No foreign-key constraint: ``db reset`` and retention jobs delete alerts independently.
* ``ix_alerts_status_ts (status, timestamp)``: the dashboard's queue is "open alerts, newest
  first"; without it that query scans every alert ever raised.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("labels", sa.Column("alert_id", sa.Integer, nullable=True))
    op.create_index("ix_labels_alert_id", "labels", ["alert_id"])
    op.execute(
        "UPDATE labels SET alert_id = "
        "(SELECT alerts.id FROM alerts WHERE alerts.transaction_id = labels.transaction_id) "
        "WHERE alert_id IS NULL"
    )
    op.create_index("ix_alerts_status_ts", "alerts", ["status", "timestamp"])


def downgrade() -> None:
    op.drop_index("ix_alerts_status_ts", table_name="alerts")
    op.drop_index("ix_labels_alert_id", table_name="labels")
    with op.batch_alter_table("labels") as batch:
        batch.drop_column("alert_id")
