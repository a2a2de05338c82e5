"""HTTP routes of the dashboard: the page, its static files, its JSON API and the live stream.

``mount_dashboard(app, runtime, auth)`` adds:

* ``GET /dashboard`` — the page (server-rendered from ``templates/index.html`` with the
  standard library's :class:`string.Template`; no build step, nothing fetched from a CDN);
* ``/dashboard/static/*`` — CSS and vanilla JS shipped as package data;
* ``GET /dashboard/api/summary?window_s=`` — chart data (:mod:`riskstream.dashboard.summary`),
  cached for ``SUMMARY_TTL_S`` so many open browsers cost one query set;
* ``GET /dashboard/api/alerts`` — the alert queue: filter by status, decision, reason code,
  user, transaction, minimum score; sort by time, score or amount;
* ``GET /stream/transactions`` — Server-Sent Events of newly scored transactions, filtered by
  ``decision``, ``user_id``, ``min_score`` (:mod:`riskstream.dashboard.feed`).

Data routes use the app's ``auth`` dependency (``X-API-Key`` or the dashboard's cookie when
``RISKSTREAM_API_KEY`` is set); the page itself carries no data and asks for the key.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from string import Template
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from riskstream import __version__
from riskstream.dashboard.feed import FeedFilter, FeedHub, sse_events
from riskstream.dashboard.summary import WINDOW_S, build_summary
from riskstream.scoring.reasons import CODES
from riskstream.service.runtime import Runtime
from riskstream.storage.outcomes import alert_quality_summary

#: Summary responses are reused for this long: charts refresh every few seconds anyway.
SUMMARY_TTL_S = 2.0
MAX_CACHED_WINDOWS = 8
MAX_QUEUE_PAGE = 500

Decision = Literal["allow", "review", "block"]
AlertDecision = Literal["review", "block"]
AlertStatus = Literal["all", "open", "reviewed", "confirmed", "dismissed"]


def iso(ts: float | None) -> str | None:
    """Epoch seconds -> ISO 8601 UTC (``...Z``); None stays None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _template() -> Template:
    text = resources.files("riskstream.dashboard").joinpath("templates/index.html")
    return Template(text.read_text(encoding="utf-8"))


def _json_for_html(value: Any) -> str:
    # Inside <script type="application/json">, "</script>" must never appear literally.
    return orjson.dumps(value).decode().replace("<", "\\u003c")


def model_description(runtime: Runtime) -> dict[str, Any]:
    """The served model as the dashboard shows it (version, created, detectors, provenance)."""
    bundle = runtime.core.bundle
    return {
        "version": bundle.version,
        "created_at": bundle.created_at,
        "detectors": [
            {"name": m.name, "weight": round(m.weight, 4)} for m in bundle.members
        ],
        "trained_on": bundle.info.get("trained_on"),
    }


def render_page(runtime: Runtime) -> str:
    """The dashboard HTML: static shell plus server-rendered model, thresholds and options."""
    settings = runtime.settings
    model = model_description(runtime)
    config = {
        "version": __version__,
        "model": model,
        "thresholds": {"review": settings.review_threshold, "block": settings.block_threshold},
        "auth_required": settings.api_key is not None,
        "reason_codes": list(CODES),
    }
    options = "\n".join(
        f'<option value="{html.escape(c)}">{html.escape(c)}</option>' for c in CODES
    )
    return _template().substitute(
        version=html.escape(__version__),
        model_version=html.escape(model["version"]),
        reason_options=options,
        config=_json_for_html(config),
    )


def mount_dashboard(app: FastAPI, runtime: Runtime, auth: Callable[..., None]) -> None:
    """Add the dashboard routes and static files to ``app`` (see module docstring)."""
    hub = FeedHub(runtime.results)
    app.state.feed = hub
    cache: dict[float, tuple[float, dict[str, Any]]] = {}
    cache_lock = threading.Lock()
    router = APIRouter()
    data = APIRouter(dependencies=[Depends(auth)], tags=["dashboard"])

    @router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
    @router.get("/dashboard/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(render_page(runtime), headers={"Cache-Control": "no-store"})

    @data.get("/dashboard/api/summary")
    def summary(window_s: Annotated[float, Query(ge=60, le=86_400)] = WINDOW_S) -> dict[str, Any]:
        """Chart data over the last ``window_s`` seconds (see ``dashboard.summary``)."""
        now = time.time()
        with cache_lock:
            hit = cache.get(window_s)
            if hit is not None and now - hit[0] < SUMMARY_TTL_S:
                return hit[1]
        result = build_summary(
            runtime.results,
            model=model_description(runtime),
            thresholds=(runtime.settings.review_threshold, runtime.settings.block_threshold),
            window_s=window_s,
            now=now,
        )
        with cache_lock:
            if len(cache) >= MAX_CACHED_WINDOWS:  # clients choose window_s: keep it bounded
                cache.clear()
            cache[window_s] = (now, result)
        return result

    @data.get("/dashboard/api/quality")
    def quality(days: Annotated[int, Query(ge=1, le=366)] = 14) -> dict[str, Any]:
        """Alert quality from outcome labels, per day (as ``GET /labels/quality``)."""
        return alert_quality_summary(runtime.results, days)

    @data.get("/dashboard/api/alerts")
    def queue(
        status: AlertStatus = "all",
        decision: AlertDecision | None = None,
        reason: Annotated[str | None, Query(description="reason code, e.g. NEW_DEVICE")] = None,
        user_id: str | None = None,
        transaction_id: str | None = None,
        min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
        sort: Literal["time", "score", "amount"] = "time",
        order: Literal["desc", "asc"] = "desc",
        limit: Annotated[int, Query(ge=1, le=MAX_QUEUE_PAGE)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        """The alert queue, newest (or highest score / amount) first, with review status."""
        if reason is not None and reason not in CODES:
            raise HTTPException(
                422,
                detail=[
                    {
                        "loc": ["query", "reason"],
                        "msg": f"unknown reason code {reason!r}; one of {', '.join(CODES)}",
                    }
                ],
            )
        rows = runtime.results.alert_queue(
            status=None if status == "all" else status,
            decision=decision,
            reason=reason,
            user_id=user_id or None,
            transaction_id=transaction_id or None,
            min_score=min_score,
            sort=sort,
            descending=order == "desc",
            limit=limit,
            offset=offset,
        )
        for row in rows:
            row["time"] = iso(row.get("timestamp"))
        return {"items": rows, "limit": limit, "offset": offset}

    @data.get("/stream/transactions")
    async def stream(
        request: Request,
        decision: Decision | None = None,
        user_id: str | None = None,
        min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
    ) -> StreamingResponse:
        """Server-Sent Events: newly scored transactions within about a second (see feed)."""
        keep = FeedFilter(decision, user_id or None, min_score)
        events = sse_events(
            hub, keep, runtime.stopping, last_event_id=request.headers.get("last-event-id")
        )
        return StreamingResponse(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    app.include_router(router)
    app.include_router(data)
    app.mount(
        "/dashboard/static",
        StaticFiles(packages=[("riskstream.dashboard", "static")]),
        name="dashboard-static",
    )
