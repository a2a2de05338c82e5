"""The results schema: SQLAlchemy tables, column types and schema-level helpers.

Contract: this module describes what is stored and imports nothing else of riskstream, so
the store, the migrations (:mod:`riskstream.storage.migrate`, Alembic's ``env.py``) and the
tools that read the tables directly all import it without pulling in the store. The Alembic
revisions own the schema in the database; :data:`metadata` is what they must arrive at
(``tests/storage/test_migrations.py`` compares the two).

Features are stored as a JSON *array* of values, with ``feature_set`` naming the list of
feature names they follow (table ``feature_sets``, one row per distinct list; revision 0006):
the names were ~60 % of every row's features text, and the server's cost of a row follows
its bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

metadata = MetaData()

#: JSON documents that are queried inside (alert reasons, model info): JSONB on PostgreSQL,
#: JSON text on SQLite.
JSONDoc = JSON().with_variant(JSONB(), "postgresql")


class JSONText(TypeDecorator[Any]):
    """JSON kept as plain ``text``: encoded on write, decoded on read, never parsed by the server.

    For the per-transaction documents (features, detector scores): written tens of thousands
    of times a second and only ever read whole. Parsing them into JSONB measured ~25 ms per
    5,000-row COPY; even PostgreSQL's ``json`` type validates every document, ~10 % of the
    COPY's server time (revision 0005 made them ``text``). COPY renders the same JSON text.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else json.dumps(value, separators=(",", ":"))

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else json.loads(value)


#: Per-transaction JSON: plain JSON on SQLite (text there anyway), unvalidated text on PostgreSQL.
RowJSON = JSON().with_variant(JSONText(), "postgresql")

#: Decisions other than "allow" -- the few rows the decision index holds (revision 0005).
FLAGGED = text("decision <> 'allow'")


def _key(length: int) -> Any:
    """Identifier text compared only for equality: byte order ("C" collation) on PostgreSQL.

    Locale-aware comparison made every primary-key and index insert of a 5,000-row COPY
    ~25 % slower; ids are never sorted for people to read. SQLite compares bytes already.
    (Revision 0003; every column compared with another must share the collation.)
    """
    return String(length).with_variant(String(length, collation="C"), "postgresql")


scored = Table(
    "scored_transactions",
    metadata,
    Column("transaction_id", _key(128), primary_key=True),
    Column("timestamp", Float, nullable=False),
    Column("user_id", _key(128), nullable=False),
    Column("amount", Float, nullable=False),
    Column("currency", String(3)),
    Column("merchant_id", String(128)),
    Column("merchant_category", String(128)),
    Column("city", String(128)),
    Column("country", String(128)),
    Column("lat", Float),
    Column("lon", Float),
    Column("device_id", String(128)),
    Column("channel", String(16)),
    Column("score", Float, nullable=False),
    Column("decision", _key(8), nullable=False),
    Column("reasons", JSON),
    # A JSON array in the order of the names of its ``feature_set`` (revision 0006), or (rows
    # stored before it, or written as row dicts) a JSON object.
    Column("features", RowJSON),
    Column("model_version", String(128)),
    Column("latency_ms", Float),
    Column("scored_at", Float, nullable=False),
    # Each ensemble member's calibrated score, and the challenger's score when one is
    # shadow-scored (revision 0004).
    Column("detector_scores", RowJSON),
    Column("shadow_score", Float),
    Column("shadow_version", String(128)),
    Column("feature_set", String(32)),  # feature_sets.id; NULL: features is an object
    Index("ix_scored_ts", "timestamp"),
    Index("ix_scored_user_ts", "user_id", "timestamp"),
    # Partial (revision 0005): the queries that filter on a decision look for the flagged
    # ~1-2 %; "allow" rows are found through ix_scored_ts. Keeping every row in this index
    # cost ~15 % of a COPY's server time for nothing.
    Index(
        "ix_scored_flagged_ts", "decision", "timestamp",
        postgresql_where=FLAGGED, sqlite_where=FLAGGED,
    ),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("transaction_id", _key(128), nullable=False, unique=True),
    Column("timestamp", Float, nullable=False),
    Column("user_id", _key(128), nullable=False),
    Column("amount", Float),
    Column("score", Float, nullable=False),
    Column("decision", _key(8), nullable=False),
    Column("reasons", JSONDoc),
    Column("model_version", String(128)),
    Column("status", String(16), nullable=False, server_default="open"),
    Column("created_at", Float, nullable=False),
    Index("ix_alerts_ts", "timestamp"),
    Index("ix_alerts_user", "user_id"),
    Index("ix_alerts_decision", "decision"),
    Index("ix_alerts_status_ts", "status", "timestamp"),  # revision 0002: the analyst queue
)

labels = Table(
    "labels",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("transaction_id", _key(128), nullable=False, index=True),
    Column("verdict", String(16), nullable=False),
    Column("analyst", String(128)),
    Column("note", Text),
    Column("created_at", Float, nullable=False),
    # Revision 0002: the alert this label answers (back-filled by transaction; no FK).
    Column("alert_id", Integer, index=True),
)

#: Outcome labels (revision 0007): the truth about a transaction, learnt days later (a
#: chargeback, an analyst's verdict, a customer report). One row per transaction: a re-sent
#: label changes nothing, a different one replaces it. ``applied`` is the label value folded
#: into the online label-aware state (NULL: none yet), so a sweep finds what is still to do.
outcome_labels = Table(
    "outcome_labels",
    metadata,
    Column("transaction_id", _key(128), primary_key=True),
    Column("label", SmallInteger, nullable=False),
    Column("reported_at", Float, nullable=False),
    Column("source", String(32)),
    Column("updated_at", Float, nullable=False),
    Column("applied", SmallInteger),
    # A process folding the label in holds it until then (several workers sweep one store).
    Column("claimed_until", Float),
    Index("ix_outcome_labels_reported", "reported_at"),
)

dead = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", Float, nullable=False),
    Column("source", String(256)),
    Column("field", String(128)),
    Column("reason", Text, nullable=False),
    Column("transaction_id", _key(128)),
    Column("payload", Text),
)

feature_sets = Table(
    "feature_sets",
    metadata,
    Column("id", String(32), primary_key=True),  # feature_set_id(names)
    Column("names", JSONDoc, nullable=False),  # the feature names, in the stored arrays' order
    Column("first_seen", Float, nullable=False),
)

models = Table(
    "model_versions",
    metadata,
    Column("version", String(128), primary_key=True),
    Column("info", JSONDoc),
    Column("first_seen", Float, nullable=False),
)


def feature_set_id(names: Sequence[str]) -> str:
    """The id of a list of feature names: the first 16 hex digits of the SHA-256 of the list
    as JSON (the same list always gets the same id, on any process and any database).

    >>> feature_set_id(["log_amount", "amount_z"])
    '33e3a82bb0f914a0'
    """
    return hashlib.sha256(json.dumps(list(names)).encode()).hexdigest()[:16]


def stored_feature_names(conn: Connection, fid: str) -> tuple[str, ...] | None:
    """The feature names stored for set ``fid`` (None if there is no such set)."""
    names = conn.scalar(select(feature_sets.c.names).where(feature_sets.c.id == fid))
    return None if names is None else tuple(names)
