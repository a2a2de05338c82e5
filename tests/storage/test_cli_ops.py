"""``riskstream profiles rebuild`` and ``riskstream stats`` against the real stores."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from riskstream.cli import app
from riskstream.features import InMemoryStateStore
from riskstream.pipeline import Pipeline
from riskstream.transport import Batch, InProcessQueue


def stream_through(rt: Any, frame: pd.DataFrame, size: int = 250) -> None:
    pipe = Pipeline(rt.core, InProcessQueue(), rt.results, rt.metrics, lock=rt.lock)
    for k, start in enumerate(range(0, len(frame), size), 1):
        pipe.process(Batch(frame=frame.iloc[start : start + size], position=k))


def invoke(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.fixture
def env(tmp_path: Path, tiny_bundle: Any) -> dict[str, str]:
    """Settings for the CLI: a home, and the same model the runtimes under test serve."""
    model = tmp_path / "model.npz"
    tiny_bundle.save(model)
    return {"RISKSTREAM_HOME": str(tmp_path / "home"), "RISKSTREAM_MODEL_URI": str(model),
            "RISKSTREAM_MODEL_PATH": str(model)}


@pytest.mark.parametrize("backend", ["redis+postgresql", "memory+sqlite"])
def test_profiles_rebuild_reproduces_the_streamed_state(
    backend: str,
    env: dict[str, str],
    make_runtime: Callable[..., Any],
    make_stream: Callable[..., pd.DataFrame],
    make_pg_url: Callable[..., str],
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    if backend == "redis+postgresql":
        env = {**env, "RISKSTREAM_DB_URL": make_pg_url(), "RISKSTREAM_STATE_URL": redis_url,
               "RISKSTREAM_STATE_PREFIX": redis_prefix}
    else:
        env = {**env, "RISKSTREAM_DB_URL": f"sqlite:///{tmp_path / 'results.db'}"}
    settings = {"db_url": env["RISKSTREAM_DB_URL"],
                "state_url": env.get("RISKSTREAM_STATE_URL", "memory://"),
                "state_prefix": env.get("RISKSTREAM_STATE_PREFIX", "rs:")}
    frame = make_stream(n=1500, n_users=50, n_merchants=20, seed=21)
    rt = make_runtime(**settings)
    stream_through(rt, frame)
    users = sorted(frame["user_id"].unique())
    merchants = sorted(frame["merchant_id"].unique())
    streamed = (rt.core.state.load("user", users), rt.core.state.load("merchant", merchants))
    stale = np.ones((1, rt.core.state.widths["user"]))
    rt.core.state.save("user", ["someone-gone"], stale)  # cleared by the rebuild
    rt.snapshot_state()

    out = invoke(env, "profiles", "rebuild", "--chunk", "400")
    result = json.loads(out.strip().splitlines()[-1])
    assert result["transactions"] == 1500
    assert result["users"] == len(users) and result["merchants"] == len(merchants)

    if backend == "memory+sqlite":  # the rebuilt state is the snapshot the server restores
        state = InMemoryStateStore.restore(Path(env["RISKSTREAM_HOME"]) / "state.npz")
    else:
        state = rt.core.state
    np.testing.assert_array_equal(state.load("user", users), streamed[0])
    np.testing.assert_array_equal(state.load("merchant", merchants), streamed[1])
    assert state.get("user", "someone-gone") is None


def test_stats_command(
    env: dict[str, str],
    make_runtime: Callable[..., Any],
    make_stream: Callable[..., pd.DataFrame],
    make_pg_url: Callable[..., str],
) -> None:
    url = make_pg_url()
    rt = make_runtime(db_url=url)
    stream_through(rt, make_stream(n=1200, n_users=40, seed=5))
    env = {**env, "RISKSTREAM_DB_URL": url}
    report = json.loads(invoke(env, "stats", "--json"))
    assert report["transactions"] == 1200
    assert [m["model_version"] for m in report["models"]] == [rt.core.bundle.version]
    flagged = report["decisions"]["review"] + report["decisions"]["block"]
    assert report["alerts"] == flagged and report["anomaly_rate"] == pytest.approx(flagged / 1200)
    assert report["latency_ms"]["p50"] > 0
    if flagged:
        assert report["top_reasons"] and report["top_reasons"][0]["count"] >= 1
    text = invoke(env, "stats", "--since", "2024-01-03")
    assert "anomaly rate" in text and f"model {rt.core.bundle.version}" in text
    window = json.loads(invoke(env, "stats", "--json", "--since", "2030-01-01"))
    assert window["transactions"] == 0 and window["models"] == []
