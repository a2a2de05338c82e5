"""SQLAlchemy 2 results store: SQLite (embedded default) and any SQLAlchemy URL.

Writes are multi-row ``INSERT .. ON CONFLICT DO NOTHING`` keyed by ``transaction_id`` inside
one transaction per batch, so a replayed batch adds nothing and a failed batch adds nothing.
SQLite runs in WAL mode with ``synchronous=FULL``: when ``write`` returns, the batch survives
a crash, which is what lets the pipeline commit its source position afterwards.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import Engine

from riskstream.storage.base import ResultsStore

metadata = MetaData()

scored = Table(
    "scored_transactions",
    metadata,
    Column("transaction_id", String(128), primary_key=True),
    Column("timestamp", Float, nullable=False),
    Column("user_id", String(128), nullable=False),
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
    Column("decision", String(8), nullable=False),
    Column("reasons", JSON),
    Column("features", JSON),
    Column("model_version", String(128)),
    Column("latency_ms", Float),
    Column("scored_at", Float, nullable=False),
    Index("ix_scored_ts", "timestamp"),
    Index("ix_scored_user_ts", "user_id", "timestamp"),
    Index("ix_scored_decision_ts", "decision", "timestamp"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("transaction_id", String(128), nullable=False, unique=True),
    Column("timestamp", Float, nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("amount", Float),
    Column("score", Float, nullable=False),
    Column("decision", String(8), nullable=False),
    Column("reasons", JSON),
    Column("model_version", String(128)),
    Column("status", String(16), nullable=False, server_default="open"),
    Column("created_at", Float, nullable=False),
    Index("ix_alerts_ts", "timestamp"),
    Index("ix_alerts_user", "user_id"),
    Index("ix_alerts_decision", "decision"),
)

labels = Table(
    "labels",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("transaction_id", String(128), nullable=False, index=True),
    Column("verdict", String(16), nullable=False),
    Column("analyst", String(128)),
    Column("note", Text),
    Column("created_at", Float, nullable=False),
)

dead = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", Float, nullable=False),
    Column("source", String(256)),
    Column("field", String(128)),
    Column("reason", Text, nullable=False),
    Column("transaction_id", String(128)),
    Column("payload", Text),
)

models = Table(
    "model_versions",
    metadata,
    Column("version", String(128), primary_key=True),
    Column("info", JSON),
    Column("first_seen", Float, nullable=False),
)

#: Dead-letter payloads are kept for diagnosis but truncated: a 10 MB garbage message must not
#: become a 10 MB row.
MAX_PAYLOAD_CHARS = 4096


def _insert_ignore(engine: Engine, table: Table):  # type: ignore[no-untyped-def]
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only the two dialects are supported
        raise ValueError(f"unsupported database: {engine.dialect.name}")
    return insert(table)


class SQLResultsStore(ResultsStore):
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine = create_engine(url, future=True, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)

    def write(self, rows: list[dict[str, Any]], alerts_: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        with self.engine.begin() as conn:
            res = conn.execute(
                _insert_ignore(self.engine, scored).on_conflict_do_nothing(
                    index_elements=["transaction_id"]
                ),
                rows,
            )
            if alerts_:
                conn.execute(
                    _insert_ignore(self.engine, alerts).on_conflict_do_nothing(
                        index_elements=["transaction_id"]
                    ),
                    alerts_,
                )
        return max(res.rowcount, 0)

    def write_dead_letters(self, letters: list[dict[str, Any]]) -> None:
        if not letters:
            return
        for letter in letters:
            payload = letter.get("payload")
            if payload is not None and len(payload) > MAX_PAYLOAD_CHARS:
                letter["payload"] = payload[:MAX_PAYLOAD_CHARS] + "...(truncated)"
        with self.engine.begin() as conn:
            conn.execute(dead.insert(), letters)

    @staticmethod
    def _filtered(table: Table, stmt, user_id, decision, since, until):  # type: ignore[no-untyped-def]
        if user_id is not None:
            stmt = stmt.where(table.c.user_id == user_id)
        if decision is not None:
            stmt = stmt.where(table.c.decision == decision)
        if since is not None:
            stmt = stmt.where(table.c.timestamp >= since)
        if until is not None:
            stmt = stmt.where(table.c.timestamp < until)
        return stmt

    def transactions(
        self,
        *,
        user_id=None,
        decision=None,
        since=None,
        until=None,  # type: ignore[no-untyped-def]
        limit=50,
        offset=0,
    ):
        stmt = self._filtered(scored, select(scored), user_id, decision, since, until)
        stmt = stmt.order_by(scored.c.timestamp.desc()).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def alerts(
        self,
        *,
        user_id=None,
        decision=None,
        status=None,
        since=None,  # type: ignore[no-untyped-def]
        until=None,
        limit=50,
        offset=0,
    ):
        stmt = self._filtered(alerts, select(alerts), user_id, decision, since, until)
        if status is not None:
            stmt = stmt.where(alerts.c.status == status)
        stmt = (
            stmt.order_by(alerts.c.timestamp.desc(), alerts.c.id.desc()).limit(limit).offset(offset)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def dead_letters(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        stmt = select(dead).order_by(dead.c.id.desc()).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            out = {
                "transactions": conn.scalar(select(func.count()).select_from(scored)) or 0,
                "alerts": conn.scalar(select(func.count()).select_from(alerts)) or 0,
                "dead_letters": conn.scalar(select(func.count()).select_from(dead)) or 0,
            }
            for decision, n in conn.execute(
                select(scored.c.decision, func.count()).group_by(scored.c.decision)
            ):
                out[f"decision_{decision}"] = n
        return out

    def record_model(self, version: str, info: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                _insert_ignore(self.engine, models).on_conflict_do_nothing(
                    index_elements=["version"]
                ),
                [{"version": version, "info": info, "first_seen": time.time()}],
            )

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    # WAL lets the API read while the pipeline writes; FULL makes each commit durable.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()
