"""FastAPI application factory (see package docstring)."""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from riskstream import __version__
from riskstream.dashboard import mount_dashboard
from riskstream.dashboard.detail import detector_scores
from riskstream.features import spec as S
from riskstream.pipeline import result_batch
from riskstream.schema import Transaction, parse_timestamp, records_to_frame
from riskstream.service.runtime import Runtime

MAX_PAGE = 1000


class BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes (declared or streamed) with 413."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _too_large(self.limit, send)
                return
        seen = 0

        async def limited() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(self.limit, send)


class _TooLarge(Exception):
    pass


async def _too_large(limit: int, send: Any) -> None:
    body = f'{{"detail":"request body larger than {limit} bytes"}}'.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _time_param(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise HTTPException(422, detail=[{"loc": ["query", name], "msg": str(exc)}]) from None


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        out[k] = None if isinstance(v, float) and not math.isfinite(v) else v
    if "timestamp" in out and isinstance(out["timestamp"], float):
        out["time"] = datetime.fromtimestamp(out["timestamp"]).astimezone().isoformat()
    return out


class Filters:
    """Shared query parameters of the list endpoints: filters and paging, validated."""

    def __init__(
        self,
        user_id: str | None = None,
        decision: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> None:
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            raise HTTPException(
                422,
                detail=[
                    {"loc": ["query", "limit"], "msg": f"limit must be 1..{MAX_PAGE}, offset >= 0"}
                ],
            )
        self.user_id, self.decision = user_id, decision
        self.since, self.until = _time_param(since, "since"), _time_param(until, "until")
        self.limit, self.offset = limit, offset

    def query(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "decision": self.decision,
            "since": self.since,
            "until": self.until,
            "limit": self.limit,
            "offset": self.offset,
        }


#: Cookie the dashboard page sets (SameSite=Strict) so the browser's EventSource, which cannot
#: send headers, carries the API key too.
KEY_COOKIE = "riskstream_api_key"


def require_key(request: Request) -> None:
    """With ``RISKSTREAM_API_KEY`` set, data endpoints need a matching ``X-API-Key`` header
    (or the dashboard's ``riskstream_api_key`` cookie)."""
    key = request.app.state.runtime.settings.api_key
    if key is None:
        return
    given = request.headers.get("x-api-key") or request.cookies.get(KEY_COOKIE)
    if given != key.get_secret_value():
        raise HTTPException(401, detail="missing or wrong X-API-Key")


Auth = Annotated[None, Depends(require_key)]


class LabelIn(BaseModel):
    """An analyst's verdict on an alert (``POST /alerts/{id}/label``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    verdict: Literal["fraud", "legitimate"]
    analyst: str | None = Field(None, max_length=128)
    note: str | None = Field(None, max_length=2000)


def create_app(runtime: Runtime) -> FastAPI:
    settings = runtime.settings
    app = FastAPI(
        title="riskstream",
        version=__version__,
        description="Real-time anomaly and fraud detection for payments",
    )
    app.state.runtime = runtime

    @app.get("/", response_model=None)
    def root(request: Request) -> dict[str, Any] | RedirectResponse:
        """Status for API clients (JSON); a browser asking for HTML is sent to the dashboard."""
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse("/dashboard", status_code=307)
        return {
            "name": "riskstream",
            "status": "ok",
            "version": __version__,
            "model_version": runtime.core.bundle.version,
            "uptime_s": round(time.time() - runtime.started_at, 1),
            "links": [
                "/health",
                "/predict",
                "/transactions",
                "/alerts",
                "/users/{id}",
                "/metrics",
                "/docs",
                "/dashboard",
            ],
        }

    @app.get("/health")
    def health() -> JSONResponse:
        comps: dict[str, Any] = {
            "model": {"status": "ok", "version": runtime.core.bundle.version},
            "state": {
                "status": "ok" if (state_up := runtime.core.state.ping()) else "down",
                "backend": settings.state_url.split(":")[0],
                "users": runtime.core.state.count("user") if state_up else None,
            },
            "results": {
                "status": "ok" if runtime.results.ping() else "down",
                "backend": runtime.results.__class__.__name__,
            },
        }
        pipe = runtime.pipeline
        if pipe is not None:
            age = time.time() - pipe.last_batch_at if pipe.last_batch_at else None  # type: ignore[attr-defined]
            bad = {k: v for k, v in pipe.health.items() if v != "ok"}  # type: ignore[attr-defined]
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

    @app.post("/predict")
    def predict(
        tx: Transaction,
        _: Auth,
        dry_run: Annotated[bool, Query(description="score without recording")] = False,
    ) -> dict[str, Any]:
        frame = records_to_frame([tx])
        with runtime.lock:
            scored = runtime.core.score(frame, apply=not dry_run)
            result = scored.result(0)
            if not dry_run:
                results = result_batch(scored)
                new = runtime.results.write(results, results.alerts)
                runtime.core.commit(scored)
                result["duplicate"] = new == 0
        m = runtime.metrics
        if not dry_run:
            m.processed.inc()
            if result["is_anomalous"]:
                m.anomalies.labels(result["decision"]).inc()
        m.latency.observe(scored.elapsed_ms / 1000.0)
        return result

    @app.get("/transactions")
    def transactions(_: Auth, q: Annotated[Filters, Depends()]) -> dict[str, Any]:
        rows = runtime.results.transactions(**q.query())
        return {"items": [_clean(r) for r in rows], "limit": q.limit, "offset": q.offset}

    @app.get("/alerts")
    def alerts(
        _: Auth, q: Annotated[Filters, Depends()], status: str | None = None
    ) -> dict[str, Any]:
        rows = runtime.results.alerts(status=status, **q.query())
        return {"items": [_clean(r) for r in rows], "limit": q.limit, "offset": q.offset}

    @app.get("/alerts/{alert_id}")
    def alert(alert_id: int, _: Auth) -> dict[str, Any]:
        """The alert, its analyst ``labels``, its scored ``transaction`` and, per detector,
        the scores behind it (``detectors``, recomputed with the served model)."""
        return _alert_view(runtime, alert_id)

    @app.post("/alerts/{alert_id}/label")
    def label(alert_id: int, body: LabelIn, _: Auth) -> dict[str, Any]:
        """Record a verdict: a label row (who, when, verdict, note) and the alert's status
        (fraud -> ``confirmed``, legitimate -> ``dismissed``). Returns the updated alert."""
        if runtime.results.label_alert(alert_id, body.verdict, body.analyst, body.note) is None:
            raise HTTPException(404, detail=f"unknown alert {alert_id}")
        return _alert_view(runtime, alert_id)

    @app.get("/users/{user_id}")
    def user(user_id: str, _: Auth, recent: int = 20) -> dict[str, Any]:
        rec = runtime.core.state.get("user", user_id)
        if rec is None:
            raise HTTPException(404, detail=f"unknown user {user_id!r}")
        hours = rec[S.U_HOURS : S.U_HOURS + 24]
        profile = {
            "transactions_seen": int(rec[S.U_N]),
            "usual_amount": round(math.expm1(rec[S.U_MEAN]), 2),
            "amount_spread_log": round(math.sqrt(max(rec[S.U_VAR], 0.0)), 4),
            "last_seen": _clean({"timestamp": float(rec[S.U_LAST_TS])}).get("time"),
            "last_location": None
            if rec[S.U_LOC_TS] == 0
            else {"lat": rec[S.U_LAT], "lon": rec[S.U_LON]},
            "usual_hours_utc": [int(h) for h in np.argsort(-hours)[:3] if hours[h] > 0],
            "known_devices": int(np.count_nonzero(rec[S.U_DEV : S.U_DEV + S.N_DEV])),
            "known_merchants": int(np.count_nonzero(rec[S.U_MER : S.U_MER + S.N_MER])),
            "known_countries": int(np.count_nonzero(rec[S.U_CTY : S.U_CTY + S.N_CTY])),
            "tx_last_24h_decayed": round(float(rec[S.U_C24H]), 3),
        }
        rows = runtime.results.transactions(user_id=user_id, limit=max(1, min(recent, 200)))
        return {"user_id": user_id, "profile": profile, "recent": [_clean(r) for r in rows]}

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    mount_dashboard(app, runtime, require_key)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app


def _alert_view(runtime: Runtime, alert_id: int) -> dict[str, Any]:
    row = runtime.results.get_alert(alert_id)
    if row is None:
        raise HTTPException(404, detail=f"unknown alert {alert_id}")
    tx = row.get("transaction") or {}
    out = _clean(row)
    out["labels"] = [{**lab, "time": _iso(lab["created_at"])} for lab in row["labels"]]
    out["transaction"] = _clean(tx) if tx else None
    out["detectors"] = detector_scores(
        runtime.core.bundle, tx.get("features"), tx.get("model_version")
    )
    return out


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat()
