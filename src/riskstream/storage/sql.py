"""SQLAlchemy 2 results store: SQLite (embedded default) and PostgreSQL (psycopg 3).

Writes are idempotent on ``transaction_id`` inside one transaction per batch, so a replayed
batch adds nothing and a failed batch adds nothing:

* SQLite: multi-row ``INSERT .. ON CONFLICT DO NOTHING``. WAL mode with ``synchronous=FULL``:
  when ``write`` returns, the batch survives a crash, which is what lets the pipeline commit
  its source position afterwards.
* PostgreSQL: ``COPY`` straight into the table inside a savepoint (about 3x faster than a
  multi-row ``INSERT`` for 5,000 rows); if the batch holds an id already stored (a replay),
  the savepoint is rolled back and the batch goes through a session-local staging table and
  one ``INSERT .. SELECT .. ON CONFLICT DO NOTHING``. Alert reasons and model info are JSONB;
  a scored transaction's features and detector scores are JSON *text* (revision 0005).

Features are stored as a JSON *array* of values, with ``feature_set`` naming the list of
feature names they follow (table ``feature_sets``, one row per distinct list; revision 0006):
the names were ~60 % of every row's features text, and the server's cost of a row follows
its bytes. Reads give the features back as a ``{name: value}`` object, as written; rows
stored as objects (before 0006, or written as row dicts) are read as they are.

The schema is owned by Alembic (:mod:`riskstream.storage.migrate`); opening a store brings
the database to the current revision unless told not to.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
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
    TypeDecorator,
    bindparam,
    case,
    cast,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine

from riskstream.storage.base import (
    ALERT_STATUSES,
    BREAKDOWN_COLUMNS,
    VERDICT_STATUS,
    ResultsStore,
)
from riskstream.storage.batch import Const, Matrix, ResultBatch

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


def _stored_names(conn: Connection, fid: str) -> tuple[str, ...] | None:
    """The feature names stored for set ``fid`` (None if there is no such set)."""
    names = conn.scalar(select(feature_sets.c.names).where(feature_sets.c.id == fid))
    return None if names is None else tuple(names)


#: Rows per COPY data chunk: large enough that rendering stays bulk work, small enough that
#: PostgreSQL parses chunk k while chunk k+1 is rendered (measured: 1,000 rows of a 5,000-row
#: batch cut the write's wall time ~20 % against one 3.6 MB text).
_COPY_CHUNK_ROWS = 1000

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


#: PostgreSQL connection options (libpq): fail a connection attempt after 5 s, and notice a
#: silently dead peer (cable cut, blackholed port) within ~30 s instead of hanging forever.
PG_CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with this project's connection settings (pool pre-ping, timeouts,
    SQLite pragmas)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    connect_args = PG_CONNECT_ARGS if url.startswith("postgresql") else {}
    engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class SQLResultsStore(ResultsStore):
    """Results in SQLite or PostgreSQL (see module docstring).

    ``migrate=True`` (default) upgrades the schema to the current revision on open; with
    ``False`` the schema must already be there (``riskstream db init``).
    """

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        from riskstream.storage import migrate as migrations

        self.url = url
        self.engine = make_engine(url)
        if migrate:
            migrations.ensure_schema(self.engine)
        self._pg = self.engine.dialect.name == "postgresql"
        #: Feature sets this process has registered or read: id -> names.
        self._feature_names: dict[str, tuple[str, ...]] = {}
        if self._pg:
            self._prepare_copy()

    # -- PostgreSQL batched write: COPY (straight in, or via staging + idempotent INSERT) ----
    def _prepare_copy(self) -> None:
        dialect = self.engine.dialect
        quote = dialect.identifier_preparer.quote
        self._copy_columns = [c.name for c in scored.columns]
        #: How ResultBatch.copy_text renders each column.
        self._copy_kinds = {
            c.name: "json" if isinstance(c.type, JSON)
            else "float" if isinstance(c.type, Float) else "text"
            for c in scored.columns
        }
        names = ", ".join(quote(c) for c in self._copy_columns)
        # Named after the column list, so a session that outlives a migration never COPYs into
        # a stale staging table.
        stage = f"rs_stage_{zlib.crc32(names.encode()):08x}"
        columns = ", ".join(f"{quote(c.name)} {c.type.compile(dialect)}" for c in scored.columns)
        self._stage_sql = (
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} (rs_ord bigint, {columns}) "
            "ON COMMIT DELETE ROWS"
        )
        self._direct_sql = f"COPY {quote(scored.name)} ({names}) FROM STDIN"
        self._copy_sql = f"COPY {stage} (rs_ord, {names}) FROM STDIN"
        # ORDER BY: within one batch, the first row of a transaction_id wins (as on SQLite).
        self._merge_sql = (
            f"INSERT INTO {quote(scored.name)} ({names}) SELECT {names} FROM {stage} "
            "ORDER BY rs_ord ON CONFLICT (transaction_id) DO NOTHING RETURNING transaction_id"
        )

    def _copy_direct(self, conn: Connection, batch: ResultBatch) -> set[str]:
        """COPY ``batch`` straight into the table; return its transaction ids (all new).

        Raises ``psycopg.errors.UniqueViolation`` if one of them is stored already (a replay)
        or appears twice; the caller's transaction is then rolled back whole and the batch
        goes through :meth:`_copy_merge`. No savepoint: the COPY is the transaction's first
        statement, so rolling back to one would undo exactly what a rollback undoes, at two
        more round trips per batch. The COPY text is built from the columns in bulk
        (:meth:`ResultBatch.copy_chunks`), not row by row (``write_row``: ~50 % more client
        CPU), and sent in chunks so the server parses one while the next is rendered.
        """
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(self._direct_sql) as copy:  # type: ignore[union-attr]
            for chunk in batch.copy_chunks(
                self._copy_columns, self._copy_kinds, rows=_COPY_CHUNK_ROWS
            ):
                copy.write(chunk)
        return set(batch.values("transaction_id"))

    def _copy_merge(self, conn: Connection, batch: ResultBatch) -> set[str]:
        """Through a staging table and ``INSERT .. ON CONFLICT DO NOTHING``, which keeps the
        first row of each transaction id; return the ids that were new."""
        names, kinds = self._copy_columns, self._copy_kinds
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:  # type: ignore[union-attr]
            cur.execute(self._stage_sql)
            order = list(map(str, range(len(batch))))
            with cur.copy(self._copy_sql) as copy:
                for chunk in batch.copy_chunks(names, kinds, order, rows=_COPY_CHUNK_ROWS):
                    copy.write(chunk)
            cur.execute(self._merge_sql)
            return {r[0] for r in cur.fetchall()}

    def _store_alerts(
        self, conn: Connection, alerts_: Sequence[dict[str, Any]], new: set[str]
    ) -> None:
        fresh = [a for a in alerts_ if a["transaction_id"] in new]
        if fresh:
            conn.execute(
                _insert_ignore(self.engine, alerts).on_conflict_do_nothing(
                    index_elements=["transaction_id"]
                ),
                fresh,
            )

    def write(
        self, rows: ResultBatch | Sequence[dict[str, Any]], alerts_: Sequence[dict[str, Any]]
    ) -> int:
        """Store a batch and its alerts in one transaction; return how many rows were new.

        ``rows``: a :class:`ResultBatch` (the pipeline's columns) or row dicts. Alerts are
        stored only for transactions this call inserted: a replayed batch is scored against
        state that already holds it, so its decisions may differ from the first run's, and
        none of them may add alerts to the stored (first) result.
        """
        if not len(rows):
            return 0
        if isinstance(rows, ResultBatch):
            rows = self._compact(rows)
        if self._pg:
            import psycopg  # the "postgres" extra; only this path needs it

            batch = rows if isinstance(rows, ResultBatch) else ResultBatch.from_rows(rows)
            try:
                with self.engine.begin() as conn:
                    new = self._copy_direct(conn, batch)
                    self._store_alerts(conn, alerts_, new)
            except psycopg.errors.UniqueViolation:  # rolled back whole; now the slow path
                with self.engine.begin() as conn:
                    new = self._copy_merge(conn, batch)
                    self._store_alerts(conn, alerts_, new)
            return len(new)
        with self.engine.begin() as conn:
            res = conn.execute(
                _insert_ignore(self.engine, scored)
                .on_conflict_do_nothing(index_elements=["transaction_id"])
                .returning(scored.c.transaction_id),
                rows.to_rows() if isinstance(rows, ResultBatch) else list(rows),
            )
            new = set(res.scalars().all())
            self._store_alerts(conn, alerts_, new)
        return len(new)

    def _compact(self, batch: ResultBatch) -> ResultBatch:
        """``batch`` with its features matrix stored as arrays plus their ``feature_set``
        (registered once per process); other batches as they are."""
        features = batch.columns.get("features")
        if not isinstance(features, Matrix) or not features.keyed:
            return batch
        columns = dict(batch.columns)
        columns["features"] = features.unkeyed()
        columns["feature_set"] = Const(self._register_feature_set(features.names))
        return batch.sharing_texts(columns)

    def _register_feature_set(self, names: tuple[str, ...]) -> str:
        fid = feature_set_id(names)
        if self._feature_names.get(fid) == names:
            return fid
        with self.engine.begin() as conn:
            conn.execute(
                _insert_ignore(self.engine, feature_sets).on_conflict_do_nothing(
                    index_elements=["id"]
                ),
                [{"id": fid, "names": list(names), "first_seen": time.time()}],
            )
            stored = _stored_names(conn, fid)
        if stored != names:  # 64 bits of SHA-256 collided: refuse, never mislabel
            raise RuntimeError(f"feature set {fid} is stored with other names: {stored}")
        self._feature_names[fid] = names
        return fid

    def _with_feature_names(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Turn each row's stored features array back into ``{name: value}`` (in place) and
        drop ``feature_set``, a storage detail."""
        for row in rows:
            fid = row.pop("feature_set", None)
            values = row.get("features")
            if fid is None or not isinstance(values, list):
                continue
            names = self._feature_names.get(fid) or _stored_names(conn, fid)
            if names is None:
                tx = row.get("transaction_id")
                raise LookupError(f"feature set {fid} of transaction {tx} is unknown")
            self._feature_names[fid] = names
            row["features"] = dict(zip(names, values, strict=True))

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
            # Inlined, not bound: the planner can use the partial ix_scored_flagged_ts only
            # when it sees the value (a prepared statement's generic plan does not).
            stmt = stmt.where(
                table.c.decision == bindparam("decision", str(decision), literal_execute=True)
            )
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
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
            self._with_feature_names(conn, rows)
        return rows

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

    # -- maintenance: `riskstream stats`, `riskstream profiles rebuild` ------------------------
    def stats(
        self, since: float | None = None, until: float | None = None, top: int = 10
    ) -> dict[str, Any]:
        """Volumes, anomaly rate, latency percentiles and top reason codes, overall and per
        model version, for transactions with ``since <= timestamp < until``.

        ``latency_ms`` is each transaction's share of its batch's scoring time. Reason codes
        are counted over alerts (only flagged transactions carry reasons).
        """
        window = _window_sql(since, until)
        params = {"since": since, "until": until}
        ts = '"timestamp"'
        with self.engine.connect() as conn:
            per_model = conn.execute(
                text(
                    "SELECT model_version, count(*), "
                    "sum(CASE WHEN decision = 'review' THEN 1 ELSE 0 END), "
                    "sum(CASE WHEN decision = 'block' THEN 1 ELSE 0 END), "
                    f"min({ts}), max({ts}) FROM scored_transactions {window} "
                    "GROUP BY model_version ORDER BY min(" + ts + ")"
                ),
                params,
            ).all()
            latencies = self._latency_percentiles(conn, window, params)
            reasons = self._reason_counts(conn, _window_sql(since, until, "a"), params)
            alerts_n = conn.scalar(text(f"SELECT count(*) FROM alerts {window}"), params) or 0
            dead_n = conn.scalar(select(func.count()).select_from(dead)) or 0

        def summary(n: int, review: int, block: int, lat: dict[str, float | None],
                    codes: dict[str, int]) -> dict[str, Any]:
            ranked = sorted(codes.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
            return {
                "transactions": n,
                "decisions": {"allow": n - review - block, "review": review, "block": block},
                "anomaly_rate": round((review + block) / n, 6) if n else 0.0,
                "latency_ms": lat,
                "top_reasons": [{"code": c, "count": k} for c, k in ranked],
            }

        models = []
        total = {"n": 0, "review": 0, "block": 0}
        all_codes: dict[str, int] = {}
        for version, n, review, block, first, last in per_model:
            review, block = int(review or 0), int(block or 0)
            total["n"] += n
            total["review"] += review
            total["block"] += block
            codes = reasons.get(version, {})
            for c, k in codes.items():
                all_codes[c] = all_codes.get(c, 0) + k
            models.append(
                {
                    "model_version": version,
                    **summary(n, review, block, latencies.get(version, _no_latency()), codes),
                    "first_event": first,
                    "last_event": last,
                }
            )
        return {
            "since": since,
            "until": until,
            **summary(total["n"], total["review"], total["block"],
                      latencies.get(_ALL, _no_latency()), all_codes),
            "alerts": int(alerts_n),
            "dead_letters_total": int(dead_n),
            "models": models,
        }

    def _latency_percentiles(
        self, conn: Connection, window: str, params: dict[str, Any]
    ) -> dict[Any, dict[str, float | None]]:
        """model_version (and ``_ALL``) -> p50/p95/p99/max of ``latency_ms``."""
        if self._pg:
            pct = (
                "percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms), "
                "percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms), "
                "percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms), max(latency_ms)"
            )
            out: dict[Any, dict[str, float | None]] = {}
            for key, group in ((_ALL, ""), (None, "GROUP BY model_version")):
                cols = "NULL" if key is _ALL else "model_version"
                for row in conn.execute(
                    text(f"SELECT {cols}, {pct} FROM scored_transactions {window} {group}"),
                    params,
                ):
                    out[_ALL if key is _ALL else row[0]] = _latency_dict(row[1:])
            return out
        # SQLite has no percentile aggregate: read the column (fine at maintenance scale).
        frame = pd.DataFrame(
            conn.execute(
                text(f"SELECT model_version, latency_ms FROM scored_transactions {window}"),
                params,
            ).all(),
            columns=["model_version", "latency_ms"],
        )
        groups: list[tuple[Any, pd.Series]] = [(_ALL, frame["latency_ms"])]
        groups += [(v, g["latency_ms"]) for v, g in frame.groupby("model_version", dropna=False)]
        out = {}
        for key, series in groups:
            values = series.dropna().to_numpy(dtype=np.float64)
            if values.size:
                p = np.percentile(values, [50, 95, 99])
                out[key] = _latency_dict((p[0], p[1], p[2], values.max()))
        return out

    def _reason_counts(
        self, conn: Connection, window: str, params: dict[str, Any]
    ) -> dict[Any, dict[str, int]]:
        """model_version -> reason code -> number of alerts carrying it."""
        if self._pg:
            # Cast to json: works whether the column is JSONB (revision 0001 on) or the json
            # of a database created before migrations and adopted.
            sql = (
                "SELECT a.model_version, r.value ->> 'code', count(*) FROM alerts a "
                "CROSS JOIN LATERAL json_array_elements(CASE json_typeof(a.reasons::json) "
                "WHEN 'array' THEN a.reasons::json ELSE '[]'::json END) AS r(value) "
                f"{window} GROUP BY 1, 2"
            )
        else:
            sql = (
                "SELECT a.model_version, json_extract(j.value, '$.code'), count(*) FROM alerts a, "
                f"json_each(a.reasons) j {window} GROUP BY 1, 2"
            )
        out: dict[Any, dict[str, int]] = {}
        for version, code, n in conn.execute(text(sql), params):
            if code is not None:
                out.setdefault(version, {})[code] = int(n)
        return out

    def history(self, chunk: int = 50_000) -> Iterator[pd.DataFrame]:
        """Every stored transaction in event order, as canonical frames of about ``chunk`` rows.

        Order is ``timestamp`` (the feature engine orders ties itself), and a chunk never
        splits a timestamp, so replaying the chunks one by one through the feature engine
        applies events in the same order as one pass over everything. Keyset pagination on
        ``ix_scored_ts``: each chunk is one indexed range query.
        """
        from riskstream.schema import CANONICAL_COLUMNS

        cols = [scored.c[name] for name in CANONICAL_COLUMNS]
        last: float | None = None
        while True:
            stmt = select(*cols).order_by(scored.c.timestamp).limit(chunk)
            if last is not None:
                stmt = stmt.where(scored.c.timestamp > last)
            with self.engine.connect() as conn:
                rows = conn.execute(stmt).all()
                if not rows:
                    return
                top = rows[-1][1]
                if len(rows) == chunk:
                    kept = [r for r in rows if r[1] != top]
                    if not kept:  # one timestamp fills the chunk: take all of it
                        kept = conn.execute(
                            select(*cols).where(scored.c.timestamp == top)
                        ).all()
                    rows = kept
            last = rows[-1][1]
            frame = pd.DataFrame(rows, columns=list(CANONICAL_COLUMNS))
            for name in ("lat", "lon"):
                frame[name] = frame[name].astype(np.float64)  # NULL -> NaN
            for name in CANONICAL_COLUMNS:
                if frame[name].dtype == object:
                    frame[name] = frame[name].fillna("")
            yield frame

    def record_model(self, version: str, info: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                _insert_ignore(self.engine, models).on_conflict_do_nothing(
                    index_elements=["version"]
                ),
                [{"version": version, "info": info, "first_seen": time.time()}],
            )

    # -- analyst workflow and dashboard queries (issue 6; contracts in ResultsStore) ----------
    def get_alert(self, alert_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
            if row is None:
                return None
            out = dict(row._mapping)
            tx = out["transaction_id"]
            out["labels"] = [
                dict(r._mapping)
                for r in conn.execute(
                    select(labels)
                    .where(labels.c.transaction_id == tx)
                    .order_by(labels.c.created_at, labels.c.id)
                )
            ]
            scored_row = conn.execute(select(scored).where(scored.c.transaction_id == tx)).first()
            out["transaction"] = None
            if scored_row is not None:
                out["transaction"] = dict(scored_row._mapping)
                self._with_feature_names(conn, [out["transaction"]])
        return out

    def label_alert(
        self, alert_id: int, verdict: str, analyst: str | None = None, note: str | None = None
    ) -> dict[str, Any] | None:
        if verdict not in VERDICT_STATUS:
            raise ValueError(f"verdict must be one of {sorted(VERDICT_STATUS)}, not {verdict!r}")
        with self.engine.begin() as conn:
            tx = conn.scalar(select(alerts.c.transaction_id).where(alerts.c.id == alert_id))
            if tx is None:
                return None
            conn.execute(
                labels.insert().values(
                    transaction_id=tx,
                    verdict=verdict,
                    analyst=analyst,
                    note=note,
                    created_at=time.time(),
                    alert_id=alert_id,
                )
            )
            conn.execute(
                alerts.update()
                .where(alerts.c.id == alert_id)
                .values(status=VERDICT_STATUS[verdict])
            )
        return self.get_alert(alert_id)

    def alert_queue(
        self,
        *,
        user_id: str | None = None,
        decision: str | None = None,
        status: str | None = None,
        reason: str | None = None,
        transaction_id: str | None = None,
        min_score: float | None = None,
        since: float | None = None,
        until: float | None = None,
        sort: str = "time",
        descending: bool = True,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        keys = {"time": alerts.c.timestamp, "score": alerts.c.score, "amount": alerts.c.amount}
        if sort not in keys:
            raise ValueError(f"sort must be one of {sorted(keys)}, not {sort!r}")
        stmt = self._filtered(alerts, select(alerts), user_id, decision, since, until)
        if status == "reviewed":
            stmt = stmt.where(alerts.c.status != "open")
        elif status is not None:
            stmt = stmt.where(alerts.c.status == status)
        if reason is not None:
            # Portable JSON test: the code, quoted, in the JSON text (codes are unique words).
            escaped = reason.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where(cast(alerts.c.reasons, Text).like(f'%"{escaped}"%', escape="\\"))
        if transaction_id is not None:
            stmt = stmt.where(alerts.c.transaction_id == transaction_id)
        if min_score is not None:
            stmt = stmt.where(alerts.c.score >= min_score)
        key, tie = keys[sort], alerts.c.id
        order = (key.desc(), tie.desc()) if descending else (key.asc(), tie.asc())
        stmt = stmt.order_by(*order).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def latest_transactions(
        self, limit: int = 200, *, user_id: str | None = None, decision: str | None = None
    ) -> list[dict[str, Any]]:
        cols = [c for c in scored.c if c.name not in ("features", "feature_set")]
        stmt = self._filtered(scored, select(*cols), user_id, decision, None, None)
        stmt = stmt.order_by(scored.c.timestamp.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    @staticmethod
    def _window(since: float, limit: int, *columns: Any) -> Any:
        # The newest `limit` rows by event time (walks ix_scored_ts, so the cost is bounded by
        # `limit` whatever the table size), then those scored since `since`.
        inner = (
            select(scored.c.scored_at, *columns)
            .order_by(scored.c.timestamp.desc())
            .limit(limit)
            .subquery("w")
        )
        return inner, inner.c.scored_at >= since

    def recent_activity(self, since: float, limit: int) -> dict[str, list[Any]]:
        names = ("decision", "score", "latency_ms", "model_version")
        w, recent = self._window(since, limit, *(scored.c[n] for n in names))
        with self.engine.connect() as conn:
            rows = conn.execute(select(w).where(recent)).all()
        columns = list(zip(*rows, strict=True)) if rows else [()] * (len(names) + 1)
        return dict(zip(("scored_at", *names), map(list, columns), strict=True))

    def breakdown(
        self, column: str, since: float, limit: int, top: int = 10
    ) -> list[dict[str, Any]]:
        if column not in BREAKDOWN_COLUMNS:
            raise ValueError(f"cannot group by {column!r}; one of {BREAKDOWN_COLUMNS}")
        w, recent = self._window(
            since, limit, scored.c[column].label("key"), scored.c.amount, scored.c.decision
        )
        amount = func.sum(w.c.amount)
        stmt = (
            select(
                w.c.key,
                func.count().label("count"),
                amount.label("amount"),
                func.sum(case((w.c.decision != "allow", 1), else_=0)).label("anomalies"),
            )
            .where(recent)
            .group_by(w.c.key)
            .order_by(amount.desc(), w.c.key)
            .limit(top)
        )
        with self.engine.connect() as conn:
            return [
                {
                    "key": r.key,
                    "count": int(r.count),
                    "amount": round(float(r.amount or 0.0), 2),
                    "anomalies": int(r.anomalies or 0),
                }
                for r in conn.execute(stmt)
            ]

    def alert_reason_counts(self, since: float, limit: int) -> Counter[str]:
        stmt = (
            select(alerts.c.reasons, alerts.c.created_at)
            .order_by(alerts.c.timestamp.desc())
            .limit(limit)
            .subquery("a")
        )
        counts: Counter[str] = Counter()
        with self.engine.connect() as conn:
            recent = select(stmt.c.reasons).where(stmt.c.created_at >= since)
            for (reasons,) in conn.execute(recent):
                counts.update(r["code"] for r in reasons or [])
        return counts

    def alert_status_counts(self) -> dict[str, int]:
        out = dict.fromkeys(ALERT_STATUSES, 0)
        with self.engine.connect() as conn:
            for status, n in conn.execute(
                select(alerts.c.status, func.count()).group_by(alerts.c.status)
            ):
                out[status] = int(n)
        return out

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def close(self) -> None:
        self.engine.dispose()


#: Key of the "all model versions" row in per-model maps.
_ALL = object()


def _no_latency() -> dict[str, float | None]:
    return {"p50": None, "p95": None, "p99": None, "max": None}


def _latency_dict(values: Any) -> dict[str, float | None]:
    return {
        k: None if v is None else round(float(v), 4)
        for k, v in zip(("p50", "p95", "p99", "max"), values, strict=True)
    }


def _window_sql(since: float | None, until: float | None, alias: str = "") -> str:
    """``WHERE`` clause on ``[alias.]timestamp`` for the bounds (bound as :since / :until)."""
    col = f'{alias}."timestamp"' if alias else '"timestamp"'
    parts = []
    if since is not None:
        parts.append(f"{col} >= :since")
    if until is not None:
        parts.append(f"{col} < :until")
    return ("WHERE " + " AND ".join(parts)) if parts else ""


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    # WAL lets the API read while the pipeline writes; FULL makes each commit durable.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()
