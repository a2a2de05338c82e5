"""Wiring: build the core, stores, metrics and pipeline from :class:`Settings`."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from riskstream.core import ScoringCore, Thresholds
from riskstream.features import InMemoryStateStore, StateStore
from riskstream.metrics import Metrics
from riskstream.models.bundle import ModelBundle
from riskstream.settings import Settings
from riskstream.storage import ResultsStore, SQLResultsStore

log = logging.getLogger("riskstream")


def open_state(settings: Settings) -> StateStore:
    url = settings.state_url
    if url.startswith("memory://"):
        path = settings.state_snapshot_path
        if path.exists():
            log.info("restoring user state from %s", path)
            return InMemoryStateStore.restore(path)
        return InMemoryStateStore()
    raise ValueError(f"unsupported state backend {url!r} (supported: memory://)")


def ensure_model(settings: Settings) -> ModelBundle:
    """Load the configured model; with none yet, train a first one on simulated history."""
    path = settings.resolved_model_path()
    if path.exists():
        return ModelBundle.load(path)
    from riskstream import replay
    from riskstream.simulate import SimConfig, simulate

    log.info("no model at %s: training a first one on 7 simulated days", path)
    history = simulate(SimConfig(n_users=settings.sim_users, days=7.0, seed=settings.sim_seed))
    bundle = replay.train(history.drop(columns=["label", "scenario"]))
    bundle.info["trained_on"] = "simulator (7 days, first-run model)"
    bundle.save(path)
    return bundle


@dataclass
class Runtime:
    settings: Settings
    core: ScoringCore
    results: ResultsStore
    metrics: Metrics
    lock: threading.Lock = field(default_factory=threading.Lock)
    started_at: float = field(default_factory=time.time)
    pipeline: object | None = None  # riskstream.pipeline.Pipeline when streaming

    @classmethod
    def build(
        cls, settings: Settings, bundle: ModelBundle | None = None, state: StateStore | None = None
    ) -> Runtime:
        settings.home.mkdir(parents=True, exist_ok=True)
        bundle = bundle or ensure_model(settings)
        core = ScoringCore(
            bundle,
            state or open_state(settings),
            Thresholds(settings.review_threshold, settings.block_threshold),
        )
        results = SQLResultsStore(settings.resolved_db_url())
        results.record_model(bundle.version, bundle.info)
        metrics = Metrics()
        metrics.model.info({"version": bundle.version, "created_at": bundle.created_at})
        return cls(settings, core, results, metrics)

    def snapshot_state(self) -> Path | None:
        """Persist in-memory state (taken under the lock, so between batches)."""
        state = self.core.state
        if isinstance(state, InMemoryStateStore):
            with self.lock:
                state.snapshot(self.settings.state_snapshot_path)
            return self.settings.state_snapshot_path
        return None

    def close(self) -> None:
        self.snapshot_state()
        self.core.state.close()
        self.results.close()
