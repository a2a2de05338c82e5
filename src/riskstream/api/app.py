"""FastAPI application factory (see package docstring)."""

from __future__ import annotations

from fastapi import FastAPI

from riskstream import __version__
from riskstream.api.deps import require_key
from riskstream.api.middleware import BodyLimit
from riskstream.api.routes import ROUTERS
from riskstream.dashboard import mount_dashboard
from riskstream.service.runtime import Runtime


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="riskstream",
        version=__version__,
        description="Real-time anomaly and fraud detection for payments",
    )
    app.state.runtime = runtime
    for router in ROUTERS:
        app.include_router(router)
    mount_dashboard(app, runtime, require_key)
    app.add_middleware(BodyLimit, limit=runtime.settings.max_body_bytes)
    return app
