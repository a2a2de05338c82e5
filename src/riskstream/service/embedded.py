"""``riskstream run``: the whole system in one process, no external servers.

simulator thread -> in-process queue -> pipeline thread (core + SQLite) ; uvicorn serves the
API, metrics (and dashboard) on one port; the main thread prints a one-line status. Ctrl-C
(or SIGTERM) stops the simulator, lets the pipeline finish and commit its batch, snapshots
user state, then stops the server: nothing is half-written.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time

import uvicorn

from riskstream.api import create_app
from riskstream.pipeline import Pipeline, settle_gc
from riskstream.service.runtime import Runtime
from riskstream.settings import Settings
from riskstream.simulate import SimConfig, stream
from riskstream.transport import InProcessQueue, SimulatorFeeder

log = logging.getLogger("riskstream")


def build_embedded(settings: Settings) -> tuple[Runtime, Pipeline, SimulatorFeeder, uvicorn.Server]:
    runtime = Runtime.build(settings)
    queue = InProcessQueue()
    # The live stream uses a different traffic seed from the first-run training history.
    sim = SimConfig(n_users=settings.sim_users, days=7.0, seed=settings.sim_seed + 1)
    feeder = SimulatorFeeder(stream(sim, rate=None, batch_size=100), queue, rate=settings.sim_rate)
    pipeline = Pipeline(runtime.core, queue, runtime.results, runtime.metrics, lock=runtime.lock)
    runtime.pipeline = pipeline
    runtime.refresh_models(force=True)  # pick up a challenger to shadow from the start
    pipeline.between_batches.append(runtime.refresh_models)
    config = uvicorn.Config(
        create_app(runtime),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    return runtime, pipeline, feeder, server


def _users(runtime: Runtime) -> str:
    """User count for the status line; "?" while a shared state store (Redis) is down."""
    try:
        return f"{runtime.core.state.count('user'):,}"
    except Exception:
        return "?"


def run_embedded(settings: Settings) -> None:
    runtime, pipeline, feeder, server = build_embedded(settings)
    settle_gc()
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    worker = threading.Thread(
        target=pipeline.run,
        args=(settings.batch_size, settings.batch_timeout_ms / 1000),
        name="pipeline",
        daemon=True,
    )
    web = threading.Thread(target=server.run, name="api", daemon=True)
    web.start()
    feeder.start()
    worker.start()
    log.info(
        "riskstream serving on http://%s:%d (model %s); dashboard: http://%s:%d/dashboard",
        settings.host,
        settings.port,
        runtime.core.bundle.version,
        settings.host,
        settings.port,
    )
    last_snapshot = time.monotonic()
    last_count, last_t = 0.0, time.monotonic()
    tty = sys.stderr.isatty()
    try:
        while not stop.wait(1.0):
            now = time.monotonic()
            m = runtime.metrics
            done = m.processed._value.get()
            rate = (done - last_count) / (now - last_t)
            last_count, last_t = done, now
            status = (
                f"processed {int(done):,} | {rate:,.0f} tx/s | "
                f"review {int(m.anomalies.labels('review')._value.get()):,} | "
                f"block {int(m.anomalies.labels('block')._value.get()):,} | "
                f"users {_users(runtime)} | "
                f"{'ok' if all(v == 'ok' for v in pipeline.health.values()) else 'DEGRADED'}"
            )
            if tty:
                sys.stderr.write("\r" + status.ljust(100))
                sys.stderr.flush()
            elif int(now) % 10 == 0:
                log.info(status)
            if now - last_snapshot >= settings.snapshot_every_s:
                runtime.snapshot_state()
                last_snapshot = now
    finally:
        if tty:
            sys.stderr.write("\n")
        log.info("stopping: finishing the current batch")
        feeder.stop_event.set()
        pipeline.stop()
        worker.join(timeout=30)
        runtime.close()  # snapshots state after the last committed batch
        server.should_exit = True
        web.join(timeout=10)
        log.info("stopped cleanly")
