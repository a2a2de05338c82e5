"""FastAPI application factory (see package docstring)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from riskstream import __version__
from riskstream.api.coalesce import Coalescer
from riskstream.api.deps import require_key
from riskstream.api.middleware import BodyLimit
from riskstream.api.routes import ROUTERS
from riskstream.dashboard import mount_dashboard
from riskstream.errors import OUTAGES, Unavailable
from riskstream.service.runtime import Runtime


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="riskstream",
        version=__version__,
        description="Real-time anomaly and fraud detection for payments",
    )
    app.state.runtime = runtime
    settings = runtime.settings
    app.state.coalescer = Coalescer(runtime, window_s=settings.predict_window_ms / 1000.0,
                                    max_rows=settings.predict_batch_max)
    for router in ROUTERS:
        app.include_router(router)
    for outage in OUTAGES:
        app.add_exception_handler(outage, _unavailable)
    mount_dashboard(app, runtime, require_key)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes,
                       per_path={"/predict/batch": settings.max_batch_body_bytes,
                                 "/labels": settings.max_batch_body_bytes})
    return app


#: Seconds a client is asked to wait before retrying while a store or broker is down.
RETRY_AFTER_S = 1


async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """A store or broker outage while serving: 503 naming the component, never a 500."""
    component = exc.component if isinstance(exc, Unavailable) else "dependency"
    return JSONResponse({"detail": f"{component} unavailable; retry shortly"},
                        status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})
