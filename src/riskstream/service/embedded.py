"""``riskstream run``: the whole system in one process, no external servers.

simulator thread -> in-process queue -> pipeline thread (core + SQLite); the API, metrics (and
dashboard) are served on one port (:mod:`riskstream.service.server`); the main thread prints a
one-line status. Ctrl-C (or SIGTERM) stops the simulator, lets the pipeline finish and commit
its batch, snapshots user state, then stops the server: nothing is half-written.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass

import pandas as pd

from riskstream.pipeline import Pipeline, settle_gc
from riskstream.service.runtime import Runtime
from riskstream.service.server import AppFactory, serving, stop_on_signals
from riskstream.settings import Settings
from riskstream.simulate import SimConfig, stream
from riskstream.transport import Feeder, InProcessQueue

log = logging.getLogger("riskstream")

#: Simulated transactions per frame handed to the queue.
_FEED_BATCH = 100
#: Seconds the pipeline thread may take to finish its batch after a stop.
_DRAIN_TIMEOUT_S = 30.0


@dataclass
class Embedded:
    """The parts of an embedded run, built from settings (:func:`build_embedded`)."""

    runtime: Runtime
    pipeline: Pipeline
    feeder: Feeder[pd.DataFrame]


def build_embedded(settings: Settings) -> Embedded:
    runtime = Runtime.build(settings)
    queue = InProcessQueue()
    # The live stream uses a different traffic seed from the first-run training history.
    sim = SimConfig(n_users=settings.sim_users, days=7.0, seed=settings.sim_seed + 1)
    feeder = Feeder(stream(sim, rate=None, batch_size=_FEED_BATCH), queue.offer,
                    rate=settings.sim_rate, name="simulator")
    pipeline = Pipeline(runtime.core, queue, runtime.results, runtime.metrics, lock=runtime.lock)
    runtime.pipeline = pipeline
    runtime.refresh_models(force=True)  # pick up a challenger to shadow from the start
    pipeline.between_batches.append(runtime.refresh_models)
    runtime.sweep_labels(force=True)  # labels imported while the service was down
    pipeline.between_batches.append(runtime.sweep_labels)
    pipeline.between_batches.append(pipeline.apply_waiting_labels)
    pipeline.between_batches.append(runtime.maybe_retrain)
    pipeline.between_batches.append(runtime.refresh_quality)
    return Embedded(runtime, pipeline, feeder)


def _users(runtime: Runtime) -> str:
    """User count for the status line; "?" while a shared state store (Redis) is down."""
    try:
        return f"{runtime.core.state.count('user'):,}"
    except Exception:
        return "?"


class _Status:
    """The one-line status: throughput since the last line, decisions, users, health."""

    def __init__(self, runtime: Runtime, pipeline: Pipeline) -> None:
        self.runtime, self.pipeline = runtime, pipeline
        self.count, self.at = 0.0, time.monotonic()

    def line(self) -> str:
        m, now = self.runtime.metrics, time.monotonic()
        done = m.value("transactions_processed_total")
        rate = (done - self.count) / max(now - self.at, 1e-9)
        self.count, self.at = done, now
        healthy = all(v == "ok" for v in self.pipeline.health.values())
        return (
            f"processed {int(done):,} | {rate:,.0f} tx/s | "
            f"review {int(m.value('anomalies_total', decision='review')):,} | "
            f"block {int(m.value('anomalies_total', decision='block')):,} | "
            f"users {_users(self.runtime)} | {'ok' if healthy else 'DEGRADED'}"
        )


def run_embedded(settings: Settings, app_factory: AppFactory | None = None) -> None:
    parts = build_embedded(settings)
    runtime, pipeline, feeder = parts.runtime, parts.pipeline, parts.feeder
    settle_gc()
    stop = threading.Event()
    worker = threading.Thread(
        target=pipeline.run,
        args=(settings.batch_size, settings.batch_timeout_ms / 1000),
        name="pipeline",
        daemon=True,
    )
    with stop_on_signals(lambda _name: stop.set()), \
            serving(runtime, app_factory, settings.host, settings.port):
        feeder.start()
        worker.start()
        log.info(
            "riskstream serving on http://%s:%d (model %s); dashboard: http://%s:%d/dashboard",
            settings.host, settings.port, runtime.core.bundle.version,
            settings.host, settings.port,
        )
        try:
            _watch(settings, runtime, _Status(runtime, pipeline), stop)
        finally:
            log.info("stopping: finishing the current batch")
            feeder.stop_event.set()
            pipeline.stop()
            worker.join(timeout=_DRAIN_TIMEOUT_S)
            runtime.close()  # snapshots state after the last committed batch
    log.info("stopped cleanly")


def _watch(settings: Settings, runtime: Runtime, status: _Status, stop: threading.Event) -> None:
    """Until ``stop``: a status line every second (every 10 s to a log), state snapshots."""
    last_snapshot = time.monotonic()
    tty = sys.stderr.isatty()
    try:
        while not stop.wait(1.0):
            now = time.monotonic()
            line = status.line()
            if tty:
                sys.stderr.write("\r" + line.ljust(100))
                sys.stderr.flush()
            elif int(now) % 10 == 0:
                log.info(line)
            if now - last_snapshot >= settings.snapshot_every_s:
                runtime.snapshot_state()
                last_snapshot = now
    finally:
        if tty:
            sys.stderr.write("\n")
