"""Outcome labels in the SQL results store: upserts, the to-apply sweep, marks, exports.

Contract (:class:`~riskstream.storage.base.ResultsStore`): one row per transaction in
``outcome_labels``. Writing the same label again changes nothing and keeps its first
``reported_at`` (the earliest report is when it became known); a different label replaces
label, ``reported_at`` and source. A label may name a transaction not stored yet: it is kept,
and :meth:`labels_to_apply` returns it once the transaction is stored. Chunks of
:data:`CHUNK` ids are one database transaction each, so a 100,000-row import is a few dozen
statements, not one per label.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, and_, bindparam, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from riskstream.storage.engine import SQLStoreBase, reports_outages
from riskstream.storage.tables import alerts, outcome_labels, scored

if TYPE_CHECKING:
    import pandas as pd

#: Labels per statement: well under SQLite's 32,766 bound parameters, and large enough that
#: an import is a handful of round trips.
CHUNK = 5_000


#: Seconds per day of the per-day alert-quality buckets (UTC days of transaction time).
DAY_S = 86_400


class _epoch_day(FunctionElement[int]):
    """The UTC day number of an epoch-seconds column (``floor(ts / 86400)``)."""

    type = Integer()
    inherit_cache = True


@compiles(_epoch_day)
def _epoch_day_floor(element: _epoch_day, compiler: Any, **kw: Any) -> str:
    return f"CAST(FLOOR({compiler.process(element.clauses, **kw)} / {DAY_S}) AS INTEGER)"


@compiles(_epoch_day, "sqlite")
def _epoch_day_sqlite(element: _epoch_day, compiler: Any, **kw: Any) -> str:
    # SQLite may be built without FLOOR; CAST truncates, which is floor for times after 1970.
    return f"CAST({compiler.process(element.clauses, **kw)} / {DAY_S} AS INTEGER)"


class OutcomeLabels(SQLStoreBase):
    """The outcome-label part of :class:`~riskstream.storage.sql.SQLResultsStore`."""

    @reports_outages
    def upsert_labels(self, rows: pd.DataFrame, source: str) -> dict[str, int]:
        """Store labels (``transaction_id, label, reported_at``); counts of ``new``,
        ``updated`` and ``unchanged`` (module docstring)."""
        counts = {"new": 0, "updated": 0, "unchanged": 0}
        ids = rows["transaction_id"].astype(str).tolist()
        values = rows["label"].astype(int).tolist()
        reported = rows["reported_at"].astype(float).tolist()
        t = outcome_labels.c
        now = time.time()
        for start in range(0, len(ids), CHUNK):
            part = slice(start, start + CHUNK)
            chunk = list(zip(ids[part], values[part], reported[part], strict=True))
            with self.engine.begin() as conn:
                known = dict(conn.execute(
                    select(t.transaction_id, t.label).where(
                        t.transaction_id.in_([c[0] for c in chunk]))
                ).all())
                new = [c for c in chunk if c[0] not in known]
                changed = [c for c in chunk if c[0] in known and known[c[0]] != c[1]]
                counts["new"] += len(new)
                counts["updated"] += len(changed)
                counts["unchanged"] += len(chunk) - len(new) - len(changed)
                if new:
                    conn.execute(outcome_labels.insert(), [
                        {"transaction_id": i, "label": v, "reported_at": r, "source": source,
                         "updated_at": now}
                        for i, v, r in new
                    ])
                if changed:
                    conn.execute(
                        outcome_labels.update()
                        .where(t.transaction_id == bindparam("tid"))
                        .values(label=bindparam("v"), reported_at=bindparam("r"),
                                source=source, updated_at=now),
                        [{"tid": i, "v": v, "r": r} for i, v, r in changed],
                    )
        return counts

    @reports_outages
    def labels_to_apply(
        self,
        transaction_ids: Sequence[str] | None = None,
        limit: int = 10_000,
        lease_s: float | None = None,
    ) -> list[dict[str, Any]]:
        """Labels not (or not as they are now) in the label-aware state, whose transaction
        is stored; oldest report first; with ``lease_s``, only those no other process holds,
        now held by the caller (contract in ResultsStore)."""
        t, s = outcome_labels.c, scored.c
        now = time.time()
        query = (
            select(t.transaction_id, t.label, t.applied, t.reported_at, s.user_id,
                   s.merchant_id, s.timestamp)
            .join(scored, s.transaction_id == t.transaction_id)
            .where(or_(t.applied.is_(None), t.applied != t.label))
            .order_by(t.reported_at)
            .limit(limit)
        )
        if lease_s is not None:
            query = query.where(or_(t.claimed_until.is_(None), t.claimed_until < now))
        out: list[dict[str, Any]] = []
        with self.engine.begin() as conn:
            if transaction_ids is None:
                out = [dict(r._mapping) for r in conn.execute(query)]
            else:
                ids = list(dict.fromkeys(str(i) for i in transaction_ids))
                for start in range(0, len(ids), CHUNK):
                    q = query.where(t.transaction_id.in_(ids[start : start + CHUNK]))
                    out += [dict(r._mapping) for r in conn.execute(q)]
            out = out[:limit]
            if lease_s is not None and out:
                out = self._claim(conn, out, now, lease_s)
        return out

    @staticmethod
    def _claim(
        conn: Any, rows: list[dict[str, Any]], now: float, lease_s: float
    ) -> list[dict[str, Any]]:
        """Hold ``rows`` until ``now + lease_s``; those another process took meanwhile are
        dropped. The conditional UPDATE is the arbiter: PostgreSQL re-checks its WHERE on a
        row another transaction just changed, so two sweeps never both win a label."""
        t = outcome_labels.c
        # A value no other sweep writes: the lease's end plus a random sub-millisecond offset.
        until = now + lease_s + secrets.randbelow(1_000_000) * 1e-9
        won: set[str] = set()
        ids = [r["transaction_id"] for r in rows]
        for start in range(0, len(ids), CHUNK):
            part = ids[start : start + CHUNK]
            conn.execute(
                outcome_labels.update()
                .where(t.transaction_id.in_(part))
                .where(or_(t.claimed_until.is_(None), t.claimed_until < now))
                .values(claimed_until=until)
            )
            won |= set(conn.scalars(select(t.transaction_id).where(
                t.transaction_id.in_(part), t.claimed_until == until)))
        return [r for r in rows if r["transaction_id"] in won]

    @reports_outages
    def mark_labels_applied(self, pairs: Sequence[tuple[str, int]]) -> None:
        """Record that the state holds these label values (a label changed meanwhile is left
        to apply: the condition is on the value)."""
        if not pairs:
            return
        t = outcome_labels.c
        statement = (
            outcome_labels.update()
            .where(and_(t.transaction_id == bindparam("tid"), t.label == bindparam("v")))
            .values(applied=bindparam("v"))
        )
        with self.engine.begin() as conn:
            for start in range(0, len(pairs), CHUNK):
                part = pairs[start : start + CHUNK]
                conn.execute(statement, [{"tid": i, "v": int(v)} for i, v in part])
                conn.execute(outcome_labels.update()  # released, changed or not
                             .where(t.transaction_id.in_([i for i, _ in part]))
                             .values(claimed_until=None))

    @reports_outages
    def get_label(self, transaction_id: str) -> dict[str, Any] | None:
        """The stored label row of one transaction (None: none)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(outcome_labels).where(
                outcome_labels.c.transaction_id == transaction_id)).first()
        return None if row is None else dict(row._mapping)

    @reports_outages
    def labels_frame(self, until: float | None = None) -> pd.DataFrame:
        """Every label as ``transaction_id, label, reported_at`` (``reported_at < until``)."""
        import pandas as pd

        t = outcome_labels.c
        query = select(t.transaction_id, t.label, t.reported_at).order_by(t.reported_at)
        if until is not None:
            query = query.where(t.reported_at < until)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return pd.DataFrame(rows, columns=["transaction_id", "label", "reported_at"]).astype(
            {"transaction_id": str, "label": "int8", "reported_at": float}
        )

    @reports_outages
    def label_counts(self) -> dict[str, int]:
        """``labels``, ``fraud`` and ``pending`` (no stored transaction yet)."""
        t, s = outcome_labels.c, scored.c
        with self.engine.connect() as conn:
            total, fraud = conn.execute(
                select(func.count(), func.coalesce(func.sum(t.label), 0))
            ).one()
            stored = conn.scalar(
                select(func.count()).select_from(
                    outcome_labels.join(scored, s.transaction_id == t.transaction_id))
            )
        return {"labels": int(total), "fraud": int(fraud), "pending": int(total - stored)}

    @reports_outages
    def alert_quality(
        self, since: float | None = None, until: float | None = None
    ) -> list[dict[str, Any]]:
        """Per UTC day of transaction time (contract in ResultsStore): alerts, those with an
        outcome (``resolved``), those confirmed fraud, and the frauds reported, alerted or
        missed; with ``precision`` and ``recall`` (None without a denominator)."""
        a, t, s = alerts.c, outcome_labels.c, scored.c
        a_day, s_day = _epoch_day(a.timestamp), _epoch_day(s.timestamp)
        alerted = (
            select(a_day, func.count(), func.count(t.transaction_id),
                   func.coalesce(func.sum(t.label), 0))
            .select_from(alerts.outerjoin(outcome_labels, t.transaction_id == a.transaction_id))
            .group_by(a_day)
        )
        reported = (
            select(s_day, func.count(), func.count(a.id))
            .select_from(outcome_labels.join(scored, s.transaction_id == t.transaction_id)
                         .outerjoin(alerts, a.transaction_id == t.transaction_id))
            .where(t.label == 1)
            .group_by(s_day)
        )
        for col, q in ((a.timestamp, "alerted"), (s.timestamp, "reported")):
            stmt = alerted if q == "alerted" else reported
            if since is not None:
                stmt = stmt.where(col >= since)
            if until is not None:
                stmt = stmt.where(col < until)
            if q == "alerted":
                alerted = stmt
            else:
                reported = stmt
        with self.engine.connect() as conn:
            days: dict[int, dict[str, Any]] = {}
            blank = {"alerts": 0, "resolved": 0, "confirmed": 0, "frauds_reported": 0,
                     "frauds_alerted": 0}
            for day, n, resolved, confirmed in conn.execute(alerted):
                days.setdefault(int(day), dict(blank)).update(
                    alerts=int(n), resolved=int(resolved), confirmed=int(confirmed))
            for day, n, hit in conn.execute(reported):
                days.setdefault(int(day), dict(blank)).update(
                    frauds_reported=int(n), frauds_alerted=int(hit))
        return [_quality_row(day, days[day]) for day in sorted(days)]

    def _label_verdict(self, conn: Any, transaction_id: str, verdict: str) -> None:
        """An analyst's verdict as an outcome label (same transaction as the verdict row)."""
        value = 1 if verdict == "fraud" else 0
        t = outcome_labels.c
        now = time.time()
        current = conn.scalar(select(t.label).where(t.transaction_id == transaction_id))
        if current is None:
            conn.execute(outcome_labels.insert().values(
                transaction_id=transaction_id, label=value, reported_at=now, source="analyst",
                updated_at=now))
        elif current != value:
            conn.execute(outcome_labels.update().where(t.transaction_id == transaction_id)
                         .values(label=value, reported_at=now, source="analyst",
                                 updated_at=now))


def _quality_row(day: int, counts: dict[str, Any]) -> dict[str, Any]:
    """One day of :meth:`OutcomeLabels.alert_quality`, with its rates."""
    import datetime as dt

    resolved, reported = counts["resolved"], counts["frauds_reported"]
    return {
        "day": dt.datetime.fromtimestamp(day * DAY_S, dt.UTC).date().isoformat(),
        **{k: counts[k] for k in ("alerts", "resolved", "confirmed", "frauds_reported",
                                  "frauds_alerted")},
        "frauds_missed": reported - counts["frauds_alerted"],
        "precision": counts["confirmed"] / resolved if resolved else None,
        "recall": counts["frauds_alerted"] / reported if reported else None,
    }


def alert_quality_summary(
    store: Any, days: int = 14, now: float | None = None
) -> dict[str, Any]:
    """The last ``days`` UTC days of :meth:`ResultsStore.alert_quality`, and their totals
    with the window's precision and recall. The days end at ``now``, by default the newest
    stored transaction's time: the data's clock, so a backfill or a simulated stream reads
    its own recent days. A store without outcome labels gives no days."""
    import math

    if now is None:
        newest = store.latest_transactions(1)
        now = float(newest[0]["timestamp"]) if newest else time.time()
    since = float((math.floor(now / DAY_S) - days + 1) * DAY_S)
    try:
        rows = store.alert_quality(since=since)
    except NotImplementedError:
        rows = []
    return {"days": rows, "since": since, "until": now, "totals": quality_totals(rows)}


def quality_totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The counts of several :meth:`ResultsStore.alert_quality` days summed, with their
    precision and recall (``day`` None)."""
    keys = ("alerts", "resolved", "confirmed", "frauds_reported", "frauds_alerted")
    return _quality_row(0, {k: sum(r[k] for r in rows) for k in keys}) | {"day": None}
