"""What the routers share: the runtime, the API-key check, list filters, row rendering."""

from __future__ import annotations

import hmac
import math
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from riskstream.schema import parse_timestamp
from riskstream.service.runtime import Runtime

#: The largest page a list endpoint returns.
MAX_PAGE = 1000

#: Cookie the dashboard page sets (SameSite=Strict) so the browser's EventSource, which cannot
#: send headers, carries the API key too.
KEY_COOKIE = "riskstream_api_key"


# Dependencies are coroutines: FastAPI runs a plain function dependency on its thread pool,
# a hop per request that an inline-scoring endpoint should not pay for a dictionary lookup.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def require_key(request: Request) -> None:
    """With ``RISKSTREAM_API_KEY`` set, data endpoints need a matching ``X-API-Key`` header
    (or the dashboard's ``riskstream_api_key`` cookie)."""
    key = request.app.state.runtime.settings.api_key
    if key is None:
        return
    given = request.headers.get("x-api-key") or request.cookies.get(KEY_COOKIE) or ""
    if not hmac.compare_digest(given.encode(), key.get_secret_value().encode()):
        raise HTTPException(401, detail="missing or wrong X-API-Key")


Auth = Annotated[None, Depends(require_key)]


def time_param(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise HTTPException(422, detail=[{"loc": ["query", name], "msg": str(exc)}]) from None


def clean(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as JSON can carry it: non-finite floats as null, plus a local ISO ``time``."""
    out = {}
    for k, v in row.items():
        out[k] = None if isinstance(v, float) and not math.isfinite(v) else v
    if "timestamp" in out and isinstance(out["timestamp"], float):
        out["time"] = iso(out["timestamp"])
    return out


def iso(ts: float) -> str:
    """Epoch seconds -> local ISO 8601 with offset."""
    return datetime.fromtimestamp(ts).astimezone().isoformat()


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
        self.since, self.until = time_param(since, "since"), time_param(until, "until")
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


FiltersDep = Annotated[Filters, Depends()]
