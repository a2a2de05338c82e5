"""The API on the production stores: ``/users/{id}`` and ``/health`` read the shared Redis
state that a (separate) pipeline wrote, and results from the same database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi.testclient import TestClient

from riskstream.api import create_app
from riskstream.pipeline import Pipeline
from riskstream.transport import Batch, InProcessQueue


def test_users_endpoint_reads_the_shared_redis_state(
    make_runtime: Callable[..., Any],
    make_stream: Callable[..., pd.DataFrame],
    make_pg_url: Callable[..., str],
    redis_url: str,
    redis_prefix: str,
) -> None:
    stores = {"db_url": make_pg_url(), "state_url": redis_url, "state_prefix": redis_prefix}
    worker = make_runtime(**stores)
    frame = make_stream(n=800, n_users=20, seed=8)
    pipe = Pipeline(worker.core, InProcessQueue(), worker.results, worker.metrics,
                    lock=worker.lock)
    for k, start in enumerate(range(0, len(frame), 200), 1):
        pipe.process(Batch(frame=frame.iloc[start : start + 200], position=k))

    api = TestClient(create_app(make_runtime(**stores)))  # another process, same stores
    user = frame["user_id"].iloc[0]
    body = api.get(f"/users/{user}").json()
    assert body["profile"]["transactions_seen"] == int((frame["user_id"] == user).sum())
    assert body["recent"] and {r["user_id"] for r in body["recent"]} == {user}
    assert api.get("/users/nobody").status_code == 404
    health = api.get("/health").json()["components"]
    assert health["state"] == {"status": "ok", "backend": "redis",
                               "users": frame["user_id"].nunique()}
    assert health["results"]["status"] == "ok"


def test_health_names_a_down_state_store(
    make_runtime: Callable[..., Any], tmp_path: Path
) -> None:
    rt = make_runtime(db_url=f"sqlite:///{tmp_path / 'r.db'}", state_url="redis://127.0.0.1:1/0")
    response = TestClient(create_app(rt)).get("/health")
    assert response.status_code == 503
    assert response.json()["components"]["state"] == {"status": "down", "backend": "redis",
                                                      "users": None}
