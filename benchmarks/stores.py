"""End-to-end throughput with the production stores: Redis state + PostgreSQL results.

Replays simulated transactions through the real :class:`~riskstream.pipeline.Pipeline` (an
in-process queue as the source), one worker: every batch is validated, scored against user
state loaded from Redis, written to PostgreSQL (COPY + idempotent INSERT, one transaction),
saved back to Redis (one atomic Lua call) and committed — exactly the stream's path. With
write-behind (the default, as the worker runs with Redis state; ``--sequential`` turns it
off) a batch's writes run on a second thread while the next batch is scored; the batch
latency is then the time ``process`` takes to hand a batch over (its scoring plus waiting
for the batch before it). The model is trained on the first half of the history, which also
warms user state; the second half is timed, up to the last batch's commit.

    .venv/bin/python benchmarks/stores.py --rows 300000 --batch-size 5000

Uses a throwaway PostgreSQL schema and Redis key prefix, both removed afterwards. By default
Redis is a private ``redis-server`` started for the run with the production persistence
settings (AOF, ``appendfsync always``, see deploy/docker-compose.yml), so other clients of a
shared Redis do not skew the figure; ``--redis-url`` uses an existing server instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import subprocess
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np


@contextlib.contextmanager
def private_redis() -> Any:
    """A throwaway redis-server on a free loopback port (AOF, fsync always); yields its URL."""
    import redis

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as workdir:
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir,
             "--save", "", "--appendonly", "yes", "--appendfsync", "always"],
            stdout=subprocess.DEVNULL,
        )
        try:
            client = redis.Redis(port=port)
            for _ in range(100):
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        break
                time.sleep(0.05)
            client.close()
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.kill()
            proc.wait()


class Stopwatch:
    """Wall time spent inside selected methods of the stores (where a batch's time goes)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, obj: Any, method: str, label: str) -> None:
        inner: Callable[..., Any] = getattr(obj, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - t0

        setattr(obj, method, timed)


def run(
    rows: int,
    batch_size: int,
    users: int,
    redis_url: str,
    pg_url: str,
    seed: int = 1,
    gc_freeze: bool = False,
    write_behind: bool = True,
) -> dict[str, Any]:
    """Run the benchmark (see module docstring); ``gc_freeze`` moves everything alive after
    warm-up out of the cyclic GC's reach, as a long-running worker can do at start-up;
    ``write_behind`` overlaps each batch's writes with the next batch's scoring, as the
    worker does with Redis state (``riskstream.pipeline.writebehind``)."""
    import psycopg
    from sqlalchemy.engine import make_url

    from riskstream.features.redis_state import RedisStateStore
    from riskstream.metrics import Metrics
    from riskstream.offline import replay
    from riskstream.pipeline import Pipeline, settle_gc
    from riskstream.scoring.core import ScoringCore
    from riskstream.simulate import SimConfig, simulate
    from riskstream.storage.sql import SQLResultsStore
    from riskstream.transport import InProcessQueue

    # ~2 transactions per user per day in the simulator; 20 % spare, cut to 2 * rows.
    days = max(1.0, 1.2 * 2 * rows / (users * 2.0))
    frame = simulate(
        SimConfig(n_users=users, n_merchants=max(50, users // 10), days=days, seed=seed)
    ).drop(columns=["label", "scenario"])
    frame = frame.iloc[: 2 * rows]
    half = len(frame) // 2
    valid, _, _ = replay.prepare(frame)
    bundle = replay.train(valid.iloc[:half])

    schema = f"rs_bench_{uuid.uuid4().hex[:10]}"
    url = make_url(pg_url)
    conninfo = {
        "host": url.host or "127.0.0.1",
        "port": url.port or 5432,
        "user": url.username or "postgres",
        "dbname": url.database or "postgres",
    }
    if url.password:
        conninfo["password"] = url.password
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    results = SQLResultsStore(
        url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
    )
    state = RedisStateStore.from_url(redis_url, prefix=f"rs-bench-{uuid.uuid4().hex[:10]}:")
    try:
        core = ScoringCore(bundle, state)
        for start in range(0, half, 50_000):  # warm state (and the JIT), untimed
            core.commit(core.score(valid.iloc[start : min(start + 50_000, half)]))
        source = InProcessQueue(maxsize=0)
        test = valid.iloc[half:].reset_index(drop=True)
        for start in range(0, len(test), batch_size):
            source.put(test.iloc[start : start + batch_size])
        if gc_freeze:
            # As a worker does: full collections otherwise rescan the model, frames and
            # caches every few batches (~150 ms pauses that set the p95 batch latency), and
            # young ones run ~13 times a batch for nothing.
            settle_gc()
        pipe = Pipeline(core, source, results, Metrics(), write_behind=write_behind)
        watch = Stopwatch()
        watch.wrap(state, "load", "redis_load")
        watch.wrap(state, "save_many", "redis_save")
        watch.wrap(results, "write", "postgres_write")
        latencies = []
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        while (batch := source.poll(batch_size, 0.0)) is not None:
            b0 = time.perf_counter()
            pipe.process(batch)
            latencies.append((time.perf_counter() - b0) * 1000.0)
        pipe.drain()  # write-behind: the last batch's writes
        elapsed = time.perf_counter() - t0
        # CPU of this process alone: on a shared machine it moves far less than wall time.
        client_cpu = time.process_time() - cpu0
        lat = np.array(latencies)
        stored = results.counts()["transactions"]
        user_bytes = state.memory_per_record("user")
        index_bytes = float(
            state.client.memory_usage(state._index("user"), samples=0) or 0
        ) / max(state.count("user"), 1)
        return {
            "benchmark": "pipeline, Redis state + PostgreSQL results, one worker",
            "transactions": len(test),
            "stored": stored,
            "batch_size": batch_size,
            "users": int(state.count("user")),
            "tx_per_second": round(len(test) / elapsed),
            "batch_latency_ms": {
                "p50": round(float(np.percentile(lat, 50)), 1),
                "p95": round(float(np.percentile(lat, 95)), 1),
                "p99": round(float(np.percentile(lat, 99)), 1),
            },
            "client_cpu_us_per_tx": round(client_cpu / len(test) * 1e6, 1),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            "ms_per_batch_in": {
                k: round(1000 * v / max(len(latencies), 1), 1) for k, v in watch.seconds.items()
            },
            "redis_bytes_per_user": {
                "record": round(user_bytes),
                "expiry_index": round(index_bytes),
            },
            "gc_freeze": gc_freeze,
            "write_behind": write_behind,
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
        }
    finally:
        state.clear()
        state.close()
        results.close()
        with psycopg.connect(**conninfo, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000, help="timed transactions")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--redis-url", default=None,
                        help="existing Redis (default: a private redis-server with AOF)")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="settle the GC after warm-up as a worker does "
                             "(riskstream.pipeline.settle_gc: freeze, rarer young collections)")
    parser.add_argument("--sequential", action="store_true",
                        help="no write-behind: each batch's writes finish before the next")
    parser.add_argument("--json", dest="json_out", help="also write the result here")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = args.redis_url or stack.enter_context(private_redis())
        result = run(args.rows, args.batch_size, args.users, url, args.pg_url,
                     gc_freeze=args.gc_freeze, write_behind=not args.sequential)
        result["redis"] = "existing server" if args.redis_url else "private, AOF fsync always"
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        with open(args.json_out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
