"""Rebuild per-user and per-merchant state from the stored transaction history.

``riskstream profiles rebuild`` uses this after a state store was lost (a Redis without
persistence restarted, a new region), or to apply a feature-parameter change: every stored
transaction is replayed in event order through the same :class:`FeatureEngine` the stream
uses, so the rebuilt records are what an uninterrupted, in-order stream would have built.
(Events that arrived late online were not applied then; replayed in order, they are now.)

Stop the workers first: a batch saved while the rebuild runs would be overwritten or lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from riskstream.features import FeatureEngine, StateStore
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
    state.clear()
    done = 0
    for frame in results.history(chunk):
        fb = engine.compute(frame, state)
        fb.update.save(state)
        done += len(frame)
        if progress is not None:
            progress(done)
    return {
        "transactions": done,
        "users": state.count("user"),
        "merchants": state.count("merchant"),
        "seconds": round(time.perf_counter() - started, 2),
    }
