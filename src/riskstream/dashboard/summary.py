"""Chart data for the dashboard, computed from the results store over a recent window.

Contract: :func:`build_summary` reads only through :class:`ResultsStore` query methods (plain
SQL that runs on SQLite and PostgreSQL: ``ORDER BY timestamp DESC LIMIT n`` windows and
``GROUP BY``), so it reports the same numbers whichever database holds the results and
whichever process scored them. The window is "scored in the last ``window_s`` seconds (wall
clock), among the newest ``max_rows`` transactions" — the row cap bounds the cost of one call
whatever the table size. Time buckets and percentiles are computed here, in numpy, because
float bucketing and percentile functions differ between the two SQL dialects.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

import numpy as np

from riskstream.storage.base import ResultsStore

#: Default window and row cap: 5 minutes, at most 60,000 rows (5 min at 200 tx/s).
WINDOW_S = 300
MAX_ROWS = 60_000
#: Points per time chart; the bucket width is window / this, at least one second.
TIME_POINTS = 60
#: Score histogram on a tail-stretching axis x = -log10(1 - score): 0, 0.9, 0.99, 0.999 and
#: 0.9999 are equally spaced, so the tail where alerts live gets as much room as the body
#: (on a linear axis both thresholds sit in the last 1 % of the width). For traffic like the
#: training period (calibrated scores uniform) bar heights fall by 10x per decade — a straight
#: line on the log-count axis the browser draws — so a bend shows drift at a glance.
TAIL_DECADES = 4.0
SCORE_BINS = 20
#: Bars per breakdown chart.
TOP = 8


def _percentile(values: np.ndarray, q: float) -> float | None:
    return None if values.size == 0 else round(float(np.percentile(values, q)), 4)


def _rate(part: float, whole: float) -> float:
    return 0.0 if whole <= 0 else round(part / whole, 6)


def time_series(
    scored_at: np.ndarray,
    anomalous: np.ndarray,
    latency_ms: np.ndarray,
    *,
    now: float,
    bucket_s: float,
    complete_from: float | None = None,
) -> list[dict[str, Any]]:
    """Per-bucket throughput, anomaly rate and latency percentiles, oldest first.

    Buckets start on multiples of ``bucket_s``; the bucket still filling at ``now`` is left
    out (it would always show a dip), and so are buckets before ``complete_from`` (the row cap
    cut them). Empty buckets between the first and the last are reported as zero traffic.
    """
    if scored_at.size == 0:
        return []
    keys = np.floor(scored_at / bucket_s).astype(np.int64)
    last = math.floor(now / bucket_s) - 1  # the last complete bucket
    first = int(keys.min())
    if complete_from is not None:
        first = max(first, math.ceil(complete_from / bucket_s))
    out = []
    for k in range(first, last + 1):
        sel = keys == k
        n = int(sel.sum())
        lat = latency_ms[sel]
        lat = lat[np.isfinite(lat)]
        k_anom = int(anomalous[sel].sum())
        out.append(
            {
                "t": k * bucket_s,
                "count": n,
                "tx_per_s": round(n / bucket_s, 3),
                "anomalies": k_anom,
                "anomaly_rate": _rate(k_anom, n),
                "p50_ms": _percentile(lat, 50),
                "p99_ms": _percentile(lat, 99),
            }
        )
    return out


def build_summary(
    store: ResultsStore,
    *,
    model: dict[str, Any],
    thresholds: tuple[float, float],
    window_s: float = WINDOW_S,
    max_rows: int = MAX_ROWS,
    now: float | None = None,
) -> dict[str, Any]:
    """Everything the dashboard's charts and KPI cards show (see module docstring).

    ``model`` describes the model being served (``version``, ``created_at``, ``detectors``,
    ``trained_on``); ``thresholds`` are the (review, block) score cut-offs drawn on the score
    histogram. Amounts are summed in each transaction's own currency.
    """
    now = time.time() if now is None else now
    since = now - window_s
    bucket_s = max(1.0, float(window_s) / TIME_POINTS)
    cols = store.recent_activity(since, max_rows)
    n = len(cols["scored_at"])
    capped = n >= max_rows
    scored_at = np.array(cols["scored_at"], dtype=np.float64)
    score = np.array(cols["score"], dtype=np.float64)
    latency = np.array(cols["latency_ms"], dtype=np.float64)  # None -> nan
    decision = np.array(cols["decision"], dtype=object)
    decisions = Counter(cols["decision"])
    anomalous = decision != "allow"
    series = time_series(
        scored_at,
        anomalous,
        latency,
        now=now,
        bucket_s=bucket_s,
        complete_from=float(scored_at.min()) if capped and n else None,
    )
    tail = -np.log10(np.clip(1.0 - score, 10.0**-TAIL_DECADES, 1.0))
    counts, x_edges = np.histogram(tail, bins=SCORE_BINS, range=(0.0, TAIL_DECADES))
    recent = [p for p in series[-3:] if p["count"]]  # "now" = the last few complete buckets
    lat = latency[np.isfinite(latency)]
    return {
        "generated_at": now,
        "window_s": window_s,
        "bucket_s": bucket_s,
        "rows": n,
        "capped": capped,
        "totals": {
            "transactions": n,
            "allow": decisions.get("allow", 0),
            "review": decisions.get("review", 0),
            "block": decisions.get("block", 0),
            "anomaly_rate": _rate(int(anomalous.sum()), n),
            "tx_per_s": round(sum(p["tx_per_s"] for p in recent) / len(recent), 2)
            if recent
            else 0.0,
        },
        "throughput": series,
        "latency_ms": {"p50": _percentile(lat, 50), "p99": _percentile(lat, 99)},
        "scores": {
            "axis": "-log10(1 - score)",
            "x_edges": [round(float(e), 4) for e in x_edges],
            "p_edges": [round(float(1.0 - 10.0**-e), 6) for e in x_edges],
            "counts": counts.tolist(),
            "review": thresholds[0],
            "block": thresholds[1],
        },
        "by_country": store.breakdown("country", since, max_rows, top=TOP),
        "by_city": store.breakdown("city", since, max_rows, top=TOP),
        "by_category": store.breakdown("merchant_category", since, max_rows, top=TOP),
        "top_reasons": [
            {"code": code, "count": k}
            for code, k in store.alert_reason_counts(since, max_rows).most_common(TOP)
        ],
        "alerts": store.alert_status_counts(),
        "model": {
            **model,
            "versions_in_window": dict(Counter(cols["model_version"])),
        },
    }
