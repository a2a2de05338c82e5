"""A scored batch -> the columns the results store and the result sinks take.

Every scored transaction becomes a stored row (as columns, a
:class:`~riskstream.storage.batch.ResultBatch`; no dict per row is built) and every anomalous
one an alert row. The stream and ``POST /predict`` store exactly this.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from riskstream.features.spec import FEATURES
from riskstream.schema import CANONICAL_COLUMNS
from riskstream.scoring.core import DECISIONS, ScoredBatch
from riskstream.storage.batch import Column, Const, Matrix, ResultBatch

#: Canonical columns held as float64 arrays in a :class:`ResultBatch` (NaN = missing).
_FLOAT_COLUMNS = frozenset({"timestamp", "amount", "lat", "lon"})


def result_batch(scored: ScoredBatch) -> ResultBatch:
    """The stored result of every scored transaction, as columns, plus alert rows for the
    anomalous ones (see :mod:`riskstream.storage.batch`; no dict per row is built)."""
    f = scored.frame
    now = time.time()
    n = len(f)
    per_tx_ms = scored.elapsed_ms / max(n, 1)
    flagged = np.flatnonzero(scored.anomalous)
    reasons_flagged = scored.reasons(flagged) if flagged.size else []
    reasons: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    for i, r in zip(flagged.tolist(), reasons_flagged, strict=True):
        reasons[i] = r
    columns: dict[str, Column] = {
        c: (f[c].to_numpy(dtype=np.float64) if c in _FLOAT_COLUMNS else f[c].tolist())
        for c in CANONICAL_COLUMNS
    }
    decisions = [DECISIONS[d] for d in scored.decisions.tolist()]
    columns.update(
        score=np.asarray(scored.scores, dtype=np.float64),
        decision=decisions,
        reasons=reasons,
        # Stored rounded: 5 decimals of a feature, 6 of a score are all anyone reads.
        features=Matrix.rounded(FEATURES, scored.features, 5),
        model_version=Const(scored.model_version),
        latency_ms=Const(per_tx_ms),
        scored_at=Const(now),
        detector_scores=Matrix.rounded(scored.detectors, scored.contributions, 6),
        shadow_score=(
            Const(None)
            if scored.shadow_scores is None
            else np.asarray(scored.shadow_scores, dtype=np.float64)
        ),
        shadow_version=Const(scored.shadow_version),
    )
    ids, users = columns["transaction_id"], columns["user_id"]
    ts, amounts, scores = f["timestamp"], f["amount"], scored.scores
    alerts = [
        {
            "transaction_id": ids[i],  # type: ignore[index]
            "timestamp": float(ts.iat[i]),
            "user_id": users[i],  # type: ignore[index]
            "amount": float(amounts.iat[i]),
            "score": float(scores[i]),
            "decision": decisions[i],
            "reasons": reasons[i],
            "model_version": scored.model_version,
            "status": "open",
            "created_at": now,
        }
        for i in flagged.tolist()
    ]
    return ResultBatch(n, columns, alerts)


def result_rows(scored: ScoredBatch) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """:func:`result_batch` as row dicts: store rows for every scored transaction and alert
    rows for the anomalous ones."""
    batch = result_batch(scored)
    return batch.to_rows(), batch.alerts


