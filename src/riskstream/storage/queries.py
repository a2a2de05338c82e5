"""The read path of the SQL results store: API and dashboard queries, maintenance reports.

Contract: the queries run unchanged on SQLite and PostgreSQL (contracts in
:class:`~riskstream.storage.base.ResultsStore`); each is one short read, bounded by its
``limit`` or by an index range, except :meth:`ResultsQueries.stats` (a maintenance report
that scans its window) and :meth:`ResultsQueries.history` (keyset pages over
``ix_scored_ts``). Rows come back as dicts; a stored features array comes back as the
``{name: value}`` object it was written as, and ``feature_set`` is never shown. Connection
failures surface as :class:`~riskstream.errors.StoreUnavailable`
(:func:`~riskstream.storage.engine.reports_outages`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Select, Table, Text, bindparam, case, cast, func, select, text
from sqlalchemy.engine import Connection

from riskstream.storage.base import ALERT_STATUSES, BREAKDOWN_COLUMNS
from riskstream.storage.engine import SQLStoreBase, reports_outages
from riskstream.storage.tables import alerts, dead, labels, scored, stored_feature_names


class ResultsQueries(SQLStoreBase):
    """The read half of :class:`~riskstream.storage.sql.SQLResultsStore` (module docstring)."""

    def _with_feature_names(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Turn each row's stored features array back into ``{name: value}`` (in place) and
        drop ``feature_set``, a storage detail."""
        for row in rows:
            fid = row.pop("feature_set", None)
            values = row.get("features")
            if fid is None or not isinstance(values, list):
                continue
            names = self._feature_names.get(fid) or stored_feature_names(conn, fid)
            if names is None:
                tx = row.get("transaction_id")
                raise LookupError(f"feature set {fid} of transaction {tx} is unknown")
            self._feature_names[fid] = names
            row["features"] = dict(zip(names, values, strict=True))

    @staticmethod
    def _filtered(
        table: Table,
        stmt: Select[Any],
        user_id: str | None,
        decision: str | None,
        since: float | None,
        until: float | None,
    ) -> Select[Any]:
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

    @reports_outages
    def transactions(
        self,
        *,
        user_id: str | None = None,
        decision: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Scored transactions, newest first by event time, features as ``{name: value}``."""
        stmt = self._filtered(scored, select(scored), user_id, decision, since, until)
        stmt = stmt.order_by(scored.c.timestamp.desc()).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
            self._with_feature_names(conn, rows)
        return rows

    @reports_outages
    def alerts(
        self,
        *,
        user_id: str | None = None,
        decision: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Alerts, newest first by event time (ties: newest alert first)."""
        stmt = self._filtered(alerts, select(alerts), user_id, decision, since, until)
        if status is not None:
            stmt = stmt.where(alerts.c.status == status)
        stmt = (
            stmt.order_by(alerts.c.timestamp.desc(), alerts.c.id.desc()).limit(limit).offset(offset)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    @reports_outages
    def dead_letters(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """Dead letters, newest first."""
        stmt = select(dead).order_by(dead.c.id.desc()).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    @reports_outages
    def counts(self) -> dict[str, int]:
        """Rows per table, and scored transactions per decision (``decision_<name>``)."""
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
    @reports_outages
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

    @reports_outages
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
                rows: Sequence[Any] = conn.execute(stmt).all()
                if not rows:
                    return
                top = rows[-1][1]
                if len(rows) == chunk:
                    kept: Sequence[Any] = [r for r in rows if r[1] != top]
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

    # -- analyst workflow and dashboard queries (contracts in ResultsStore) -------------------
    @reports_outages
    def get_alert(self, alert_id: int) -> dict[str, Any] | None:
        """The alert with its labels and its scored transaction (contract in ResultsStore)."""
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

    @reports_outages
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
        """Alerts for review, filtered and sorted (contract in ResultsStore)."""
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

    @reports_outages
    def latest_transactions(
        self, limit: int = 200, *, user_id: str | None = None, decision: str | None = None
    ) -> list[dict[str, Any]]:
        """The live feed: newest transactions without features (contract in ResultsStore)."""
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

    @reports_outages
    def recent_activity(self, since: float, limit: int) -> dict[str, list[Any]]:
        """Columns of the recently scored transactions (contract in ResultsStore)."""
        names = ("decision", "score", "latency_ms", "model_version")
        w, recent = self._window(since, limit, *(scored.c[n] for n in names))
        with self.engine.connect() as conn:
            rows = conn.execute(select(w).where(recent)).all()
        columns = list(zip(*rows, strict=True)) if rows else [()] * (len(names) + 1)
        return dict(zip(("scored_at", *names), map(list, columns), strict=True))

    @reports_outages
    def breakdown(
        self, column: str, since: float, limit: int, top: int = 10
    ) -> list[dict[str, Any]]:
        """Recent volume, amount and anomalies per ``column`` value (contract in ResultsStore)."""
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

    @reports_outages
    def alert_reason_counts(self, since: float, limit: int) -> Counter[str]:
        """Reason codes of the recent alerts (contract in ResultsStore)."""
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

    @reports_outages
    def alert_status_counts(self) -> dict[str, int]:
        """Alerts per status, zeros included (contract in ResultsStore)."""
        out = dict.fromkeys(ALERT_STATUSES, 0)
        with self.engine.connect() as conn:
            for status, n in conn.execute(
                select(alerts.c.status, func.count()).group_by(alerts.c.status)
            ):
                out[status] = int(n)
        return out


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
