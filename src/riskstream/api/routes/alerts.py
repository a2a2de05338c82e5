"""The alert queue and analysts' verdicts."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from riskstream.api.deps import Auth, FiltersDep, RuntimeDep, clean, iso
from riskstream.dashboard.detail import detector_scores
from riskstream.service.runtime import Runtime

router = APIRouter()


class LabelIn(BaseModel):
    """An analyst's verdict on an alert (``POST /alerts/{id}/label``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    verdict: Literal["fraud", "legitimate"]
    analyst: str | None = Field(None, max_length=128)
    note: str | None = Field(None, max_length=2000)


@router.get("/alerts")
def alerts(
    _: Auth, runtime: RuntimeDep, q: FiltersDep, status: str | None = None
) -> dict[str, Any]:
    rows = runtime.results.alerts(status=status, **q.query())
    return {"items": [clean(r) for r in rows], "limit": q.limit, "offset": q.offset}


@router.get("/alerts/{alert_id}")
def alert(alert_id: int, _: Auth, runtime: RuntimeDep) -> dict[str, Any]:
    """The alert, its analyst ``labels``, its scored ``transaction`` and, per detector,
    the scores behind it (``detectors``, recomputed with the served model)."""
    return alert_view(runtime, alert_id)


@router.post("/alerts/{alert_id}/label")
def label(alert_id: int, body: LabelIn, _: Auth, runtime: RuntimeDep) -> dict[str, Any]:
    """Record a verdict: a label row (who, when, verdict, note) and the alert's status
    (fraud -> ``confirmed``, legitimate -> ``dismissed``). Returns the updated alert."""
    row = runtime.results.label_alert(alert_id, body.verdict, body.analyst, body.note)
    if row is None:
        raise HTTPException(404, detail=f"unknown alert {alert_id}")
    runtime.labels_received([row["transaction_id"]])  # the verdict teaches the features too
    return alert_view(runtime, alert_id)


def alert_view(runtime: Runtime, alert_id: int) -> dict[str, Any]:
    row = runtime.results.get_alert(alert_id)
    if row is None:
        raise HTTPException(404, detail=f"unknown alert {alert_id}")
    tx = row.get("transaction") or {}
    out = clean(row)
    out["labels"] = [{**lab, "time": iso(lab["created_at"])} for lab in row["labels"]]
    out["transaction"] = clean(tx) if tx else None
    out["detectors"] = detector_scores(
        runtime.core.bundle, tx.get("features"), tx.get("model_version")
    )
    return out
