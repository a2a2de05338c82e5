"""Store outages mid-stream: Redis killed and restarted, PostgreSQL cut off (through a proxy)
during a write. The pipeline pauses and retries, /health names the component that is down,
nothing is committed meanwhile, and afterwards results and state are exactly those of an
uninterrupted run over the same input: no loss, no duplicates, identical profiles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from sqlalchemy import event

from riskstream.api import create_app
from riskstream.pipeline import ErrorPolicy, Pipeline
from riskstream.transport import Batch, InProcessQueue

N_EVENTS, BATCH = 2400, 200
#: Columns that legitimately differ between two runs (wall-clock time of scoring).
VOLATILE = {"scored_at", "latency_ms", "created_at", "id"}


def batches(make_stream: Callable[..., pd.DataFrame]) -> list[pd.DataFrame]:
    frame = make_stream(n=N_EVENTS, n_users=40, n_merchants=25, seed=11)
    return [frame.iloc[i : i + BATCH] for i in range(0, N_EVENTS, BATCH)]


def stable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(({k: v for k, v in r.items() if k not in VOLATILE} for r in rows),
                  key=lambda r: r["transaction_id"])


def snapshot(rt: Any, frames: list[pd.DataFrame]) -> dict[str, Any]:
    """Everything a run leaves behind: results, alerts, every user and merchant record."""
    frame = pd.concat(frames)
    users = sorted(frame["user_id"].unique())
    merchants = sorted(frame["merchant_id"].unique())
    return {
        "transactions": stable(rt.results.transactions(limit=10 * N_EVENTS)),
        "alerts": stable(rt.results.alerts(limit=10 * N_EVENTS)),
        "users": rt.core.state.load("user", users),
        "merchants": rt.core.state.load("merchant", merchants),
    }


def uninterrupted(rt: Any, frames: list[pd.DataFrame]) -> dict[str, Any]:
    pipe = Pipeline(rt.core, InProcessQueue(), rt.results, rt.metrics, lock=rt.lock)
    for k, frame in enumerate(frames, 1):
        pipe.process(Batch(frame=frame, position=k))
    return snapshot(rt, frames)


def assert_same_run(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert len(got["transactions"]) == N_EVENTS  # no loss, no duplicates
    assert got["transactions"] == want["transactions"]  # same scores, decisions, reasons
    assert got["alerts"] == want["alerts"]
    np.testing.assert_array_equal(got["users"], want["users"])
    np.testing.assert_array_equal(got["merchants"], want["merchants"])


class Watch:
    """The retry policy of the interrupted run: checks the promises while a store is down."""

    def __init__(self, rt: Any, source: InProcessQueue, component: str) -> None:
        self.rt, self.source, self.component = rt, source, component
        self.api = TestClient(create_app(rt))
        self.position = 0
        self.state_before: np.ndarray | None = None
        self.users: list[str] = []
        self.retries: list[tuple[str, int, int]] = []

    def begin(self, position: int, frame: pd.DataFrame) -> None:
        self.position = position
        self.users = sorted(frame["user_id"].unique())
        self.state_before = self.rt.core.state.load("user", self.users)

    def __call__(self, component: str, exc: Exception, attempt: int) -> float:
        self.retries.append((component, self.position, attempt))
        assert component == self.component, exc
        assert self.source.committed == self.position - 1  # nothing acknowledged
        if attempt == 0:  # (the store comes back ~1 s later; look while it is surely down)
            body = self.api.get("/health")
            assert body.status_code == 503
            comps = body.json()["components"]
            assert comps[self.component]["status"] == "down"
            assert comps["pipeline"]["problems"][self.component].startswith("down")
            if component == "results":  # results failed: the batch's state is not saved
                now = self.rt.core.state.load("user", self.users)
                np.testing.assert_array_equal(now, self.state_before)
        return 0.2


def test_redis_killed_and_restarted_mid_stream(
    make_runtime: Callable[..., Any],
    make_stream: Callable[..., pd.DataFrame],
    redis_server: Callable[[], Any],
    tmp_path: Any,
) -> None:
    frames = batches(make_stream)
    want = uninterrupted(make_runtime(db_url=f"sqlite:///{tmp_path / 'ref.db'}"), frames)

    server = redis_server()
    rt = make_runtime(db_url=f"sqlite:///{tmp_path / 'out.db'}", state_url=server.url,
                      state_prefix="rs-test-outage:")
    source = InProcessQueue()
    watch = Watch(rt, source, "state")
    pipe = Pipeline(rt.core, source, rt.results, rt.metrics,
                    policy=ErrorPolicy(on_unavailable=watch), lock=rt.lock)
    rt.pipeline = pipe
    write = rt.results.write_new

    def write_then_kill(rows: Any, alerts: list[dict[str, Any]]) -> set[str]:
        new = write(rows, alerts)
        if watch.position == 8:  # results durable, state not yet saved: the worst moment
            server.kill()
            server.restart_after(1.0)
        return new

    rt.results.write_new = write_then_kill  # type: ignore[method-assign]
    for k, frame in enumerate(frames, 1):
        watch.begin(k, frame)
        if k == 4:  # down before the batch: loading its users' state fails
            server.kill()
            server.restart_after(1.0)
        pipe.process(Batch(frame=frame, position=k))
        assert source.committed == k
    assert {p for _, p, _ in watch.retries} == {4, 8}
    assert pipe.health["state"] == "ok"
    assert_same_run(snapshot(rt, frames), want)


def test_postgres_cut_off_mid_write(
    make_runtime: Callable[..., Any],
    make_stream: Callable[..., pd.DataFrame],
    make_pg_url: Callable[..., str],
    pg_proxy: Callable[..., Any],
    redis_url: str,
    redis_prefix: str,
) -> None:
    frames = batches(make_stream)
    want = uninterrupted(make_runtime(db_url=make_pg_url()), frames)

    proxy = pg_proxy()
    rt = make_runtime(db_url=make_pg_url(port=proxy.port), state_url=redis_url,
                      state_prefix=redis_prefix)
    source = InProcessQueue()
    watch = Watch(rt, source, "results")
    pipe = Pipeline(rt.core, source, rt.results, rt.metrics,
                    policy=ErrorPolicy(on_unavailable=watch), lock=rt.lock)
    rt.pipeline = pipe

    @event.listens_for(rt.results.engine, "commit")
    def cut_before_commit(_conn: Any) -> None:
        # Batch 6: the rows are COPYed and inserted, the COMMIT never reaches the server.
        if watch.position == 6 and not any(p == 6 for _, p, _ in watch.retries):
            proxy.cut()
            proxy.restore_after(1.0)

    write = rt.results.write_new

    def lost_ack(rows: Any, alerts: list[dict[str, Any]]) -> set[str]:
        new = write(rows, alerts)
        if watch.position == 10 and not any(p == 10 for _, p, _ in watch.retries):
            # Batch 10: committed, but the connection dies before we hear so; the retry
            # must add nothing.
            proxy.cut()
            proxy.restore_after(1.0)
            raise ConnectionError("connection lost before the commit was acknowledged")
        return new

    rt.results.write_new = lost_ack  # type: ignore[method-assign]
    for k, frame in enumerate(frames, 1):
        watch.begin(k, frame)
        if k == 3:  # down before the batch
            proxy.cut()
            proxy.restore_after(1.0)
        pipe.process(Batch(frame=frame, position=k))
        assert source.committed == k
    assert {p for _, p, _ in watch.retries} == {3, 6, 10}
    assert pipe.health["results"] == "ok"
    got = snapshot(rt, frames)
    assert_same_run(got, want)

    # And a crash before the last source commit: the replayed batch changes nothing.
    pipe.process(Batch(frame=frames[-1], position=len(frames)))
    assert_same_run(snapshot(rt, frames), want)
