"""Scoring inline (``POST /predict``) and the scored-transaction history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from riskstream.api.deps import Auth, FiltersDep, RuntimeDep, clean
from riskstream.schema import Transaction, records_to_frame

router = APIRouter()


@router.post("/predict")
def predict(
    tx: Transaction,
    _: Auth,
    runtime: RuntimeDep,
    dry_run: Annotated[bool, Query(description="score without recording")] = False,
) -> dict[str, Any]:
    """Score one transaction with the stream's core; unless ``dry_run``, record it through the
    stream's write path (stored before the answer, state saved, counted)."""
    frame = records_to_frame([tx])
    with runtime.lock:
        scored = runtime.core.score(frame, apply=not dry_run)
        result = scored.result(0)
        if not dry_run:
            result["duplicate"] = runtime.writer.record(scored) == 0
    if dry_run:
        runtime.metrics.latency.observe(scored.elapsed_ms / 1000.0)
    return result


@router.get("/transactions")
def transactions(_: Auth, runtime: RuntimeDep, q: FiltersDep) -> dict[str, Any]:
    rows = runtime.results.transactions(**q.query())
    return {"items": [clean(r) for r in rows], "limit": q.limit, "offset": q.offset}
