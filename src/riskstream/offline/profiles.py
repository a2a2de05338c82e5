"""Rebuild per-user and per-merchant state from the stored transaction history.

``riskstream profiles rebuild`` uses this after a state store was lost (a Redis without
persistence restarted, a new region), or to apply a feature-parameter change: every stored
transaction is replayed in event order through the same :class:`FeatureEngine` the stream
uses, so the rebuilt records are what an uninterrupted, in-order stream would have built.
(Events that arrived late online were not applied then; replayed in order, they are now.)
Stored outcome labels are folded into the label-aware records with their transactions and
marked applied: the end state is the same whatever the order (counters decay by transaction
time), and only events after the rebuild -- later than every label -- will read it.

Stop the workers first: a batch saved while the rebuild runs would be overwritten or lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from riskstream.features import FeatureEngine, LabelChanges, StateStore
from riskstream.storage.base import ResultsStore


def rebuild(
    results: ResultsStore,
    state: StateStore,
    engine: FeatureEngine,
    chunk: int = 50_000,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Clear ``state`` and replay ``results``' history into it, ``chunk`` rows per save.

    Returns counts and timing. Each chunk is saved with ``save_many`` (atomic per chunk on
    Redis); a failure midway leaves a partial state, and running the rebuild again is safe.
    """
    started = time.perf_counter()
    try:
        labels = results.labels_frame().set_index("transaction_id")["label"]
    except NotImplementedError:  # a store without outcome labels
        labels = pd.Series(dtype="int8")
    state.clear()
    done, applied = 0, []
    for frame in results.history(chunk):
        fb = engine.compute(frame, state, labels=_chunk_labels(frame, labels))
        fb.update.save(state)
        if fb.update.labels is not None:
            applied += fb.update.labels.applied_pairs()
        done += len(frame)
        if progress is not None:
            progress(done)
    if applied:
        results.mark_labels_applied(applied)
    return {
        "transactions": done,
        "labels": len(applied),
        "users": state.count("user"),
        "merchants": state.count("merchant"),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _chunk_labels(frame: pd.DataFrame, labels: pd.Series) -> LabelChanges | None:
    """The labels of ``frame``'s transactions, applied after its events."""
    ids = frame["transaction_id"].astype(str)
    known = ids.isin(labels.index).to_numpy()
    if not known.any():
        return None
    rows = frame[known]
    n = len(rows)
    return LabelChanges.build(
        rows["transaction_id"].astype(str).to_numpy(dtype=object),
        labels.reindex(rows["transaction_id"].astype(str)).to_numpy(),
        np.full(n, np.nan),
        rows["user_id"].to_numpy(dtype=object),
        rows["merchant_id"].fillna("").to_numpy(dtype=object),
        rows["timestamp"].to_numpy(dtype=np.float64),
        np.full(n, np.inf),
    )
