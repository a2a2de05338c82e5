"""`riskstream run` end to end, as a user runs it: a real process, real HTTP, then Ctrl-C."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from support import free_port, launch_run, wait_for

pytestmark = pytest.mark.slow


def test_run_serves_health_metrics_and_alerts_then_stops_cleanly(
    tmp_path: Path, stop_process: Callable[..., str]
) -> None:
    port = free_port()
    home = tmp_path / "home"
    proc = launch_run(home, port, sim_rate=2000, sim_users=500, snapshot_every_s=2)
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        wait_for(lambda: httpx.get(f"{base}/health", timeout=2).status_code == 200, 60, "/health")
        assert time.monotonic() - started < 60
        assert (home / "models" / "current.npz").exists()  # first model trained on first run

        def processed() -> float:
            for line in httpx.get(f"{base}/metrics", timeout=2).text.splitlines():
                if line.startswith("transactions_processed_total "):
                    return float(line.split()[1])
            return 0.0

        wait_for(lambda: processed() >= 2000, 60, "2000 processed transactions")
        alerts = wait_for(
            lambda: httpx.get(f"{base}/alerts", params={"limit": 200}, timeout=5).json()["items"],
            60,
            "alerts",
        )
        assert all(a["decision"] in {"review", "block"} for a in alerts)
        coded = [a for a in alerts if a["reasons"]]
        assert coded, "alerts should carry reason codes"
        assert {"code", "feature", "value", "text"} <= set(coded[0]["reasons"][0])
        user = alerts[0]["user_id"]
        profile = httpx.get(f"{base}/users/{user}", timeout=5).json()
        assert profile["profile"]["transactions_seen"] >= 1
        health = httpx.get(f"{base}/health", timeout=5).json()
        assert health["components"]["pipeline"]["status"] == "ok"
    finally:
        out = stop_process(proc)
    assert proc.returncode == 0, out
    assert "stopped cleanly" in out
    assert (home / "state.npz").exists()
    assert (home / "results.db").exists()
