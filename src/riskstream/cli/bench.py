"""Core benchmark: replay a simulated file through features + scoring, in micro-batches.

``rows`` transactions are timed, after as many again have warmed state and trained the model.

Measures what the principles promise for one core: the process is pinned to a single CPU and
numba/BLAS to one thread. The model is trained on the first half of the history; the second
half is replayed (state warmed by the first half) and timed batch by batch.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer


def run_core_bench(
    rows: int = 1_000_000,
    batch_size: int = 10_000,
    users: int = 20_000,
    seed: int = 1,
    detectors: str | None = None,
    supervised: bool = False,
) -> dict[str, Any]:
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        pinned = True
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        pinned = False
    from riskstream.features import InMemoryStateStore
    from riskstream.offline import replay
    from riskstream.scoring.core import ScoringCore
    from riskstream.simulate import SimConfig, simulate

    # The simulator averages ~2 transactions per user per day; ask for 20 % more days than
    # that needs and cut to exactly ``rows``: half warms up and trains, half is timed.
    days = max(1.0, 1.2 * 2 * rows / (users * 2.0))
    history = simulate(SimConfig(n_users=users, n_merchants=max(50, users // 10), days=days,
                                 seed=seed)).iloc[: 2 * rows]
    frame = history.drop(columns=["label", "scenario"])
    half = len(frame) // 2
    valid, _, _ = replay.prepare(frame)
    from riskstream.models.bundle import parse_detectors

    # With --supervised: every label reported two days after its transaction.
    labels = replay.delayed_labels(history, 2.0) if supervised else None
    bundle = replay.train(valid.iloc[:half],
                          detectors=parse_detectors(detectors) if detectors else None,
                          labels=labels)
    core = ScoringCore(bundle, InMemoryStateStore())
    warm = core.score(valid.iloc[:half])  # warms state and JIT, not timed
    core.commit(warm)
    test = valid.iloc[half:].reset_index(drop=True)
    latencies = []
    t0 = time.perf_counter()
    for start in range(0, len(test), batch_size):
        b0 = time.perf_counter()
        scored = core.score(test.iloc[start : start + batch_size])
        core.commit(scored)
        latencies.append((time.perf_counter() - b0) * 1000.0)
    elapsed = time.perf_counter() - t0
    lat = np.array(latencies)
    return {
        "benchmark": "core (features + detectors + calibration + reasons), in-process",
        "detectors": ",".join(f"{m.name}:{m.weight:g}" for m in bundle.members),
        "supervised": bundle.supervised is not None,
        "trees": None if bundle.supervised is None else bundle.supervised.model.iterations,
        "transactions": len(test),
        "batch_size": batch_size,
        "users": users,
        "tx_per_second": round(len(test) / elapsed),
        "batch_latency_ms": {
            "p50": round(float(np.percentile(lat, 50)), 2),
            "p95": round(float(np.percentile(lat, 95)), 2),
            "p99": round(float(np.percentile(lat, 99)), 2),
        },
        "pinned_to_one_core": pinned,
        "model": bundle.version,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
    }


def bench(
    rows: Annotated[int, typer.Option(help="Simulated transactions to replay")] = 1_000_000,
    batch_size: int = 10_000,
    users: int = 20_000,
    seed: int = 1,
    detectors: Annotated[
        str | None, typer.Option(help="Ensemble to benchmark, e.g. 'seed' (default: IF)")
    ] = None,
    supervised: Annotated[
        bool, typer.Option(help="Train with the simulator's labels: the trees beside the detectors")
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    """Benchmark the scoring core in-process (features + scoring), pinned to one core."""
    result = run_core_bench(
        rows=rows, batch_size=batch_size, users=users, seed=seed, detectors=detectors,
        supervised=supervised,
    )
    typer.echo(json.dumps(result, indent=2))
    if json_out:
        json_out.write_text(json.dumps(result, indent=2))



def register(app: typer.Typer) -> None:
    app.command()(bench)
