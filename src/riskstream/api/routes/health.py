"""Service status for clients and probes, and the Prometheus metrics."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from riskstream import __version__
from riskstream.api.deps import RuntimeDep

router = APIRouter()

#: What ``GET /`` points API clients at.
LINKS = ["/health", "/predict", "/transactions", "/alerts", "/users/{id}", "/metrics", "/docs",
         "/dashboard"]


@router.get("/", response_model=None)
def root(request: Request, runtime: RuntimeDep) -> dict[str, Any] | RedirectResponse:
    """Status for API clients (JSON); a browser asking for HTML is sent to the dashboard."""
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("/dashboard", status_code=307)
    return {
        "name": "riskstream",
        "status": "ok",
        "version": __version__,
        "model_version": runtime.core.bundle.version,
        "uptime_s": round(time.time() - runtime.started_at, 1),
        "links": LINKS,
    }


@router.get("/health")
def health(runtime: RuntimeDep) -> JSONResponse:
    """Each component's status; 503 while any is down or the pipeline is degraded."""
    comps: dict[str, Any] = {
        "model": {"status": "ok", "version": runtime.core.bundle.version},
        "state": {
            "status": "ok" if (state_up := runtime.core.state.ping()) else "down",
            "backend": runtime.settings.state_url.split(":")[0],
            "users": runtime.core.state.count("user") if state_up else None,
        },
        "results": {
            "status": "ok" if runtime.results.ping() else "down",
            "backend": runtime.results.__class__.__name__,
        },
    }
    pipe = runtime.pipeline
    if pipe is not None:
        age = time.time() - pipe.last_batch_at if pipe.last_batch_at else None
        bad = {k: v for k, v in pipe.health.items() if v != "ok"}
        comps["pipeline"] = {
            "status": "degraded" if bad else "ok",
            "problems": bad,
            "seconds_since_last_batch": None if age is None else round(age, 2),
        }
    ok = all(c["status"] == "ok" for c in comps.values())
    return JSONResponse(
        {"status": "ok" if ok else "degraded", "components": comps},
        status_code=200 if ok else 503,
    )


@router.get("/metrics")
def metrics(runtime: RuntimeDep) -> Response:
    runtime.refresh_quality()
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
