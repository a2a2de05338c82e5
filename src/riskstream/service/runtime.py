"""Wiring: build the core, stores, metrics and pipeline from :class:`Settings`."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from riskstream.errors import ConfigurationError, Unavailable
from riskstream.features import InMemoryStateStore, LabelChanges, StateStore
from riskstream.metrics import QUALITY_WINDOWS, Metrics
from riskstream.models.bundle import ModelBundle
from riskstream.models.registry import CHAMPION, ModelWatcher, Registry, parse_model_uri
from riskstream.pipeline import Pipeline, ResultWriter
from riskstream.scoring.core import ScoringCore, Thresholds
from riskstream.settings import Settings
from riskstream.storage import ResultsStore, SQLResultsStore
from riskstream.storage.outcomes import alert_quality_summary, quality_totals

log = logging.getLogger("riskstream")


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
#: Seconds between refreshes of the alert-quality gauges: two aggregate queries over 30
#: days; labels arrive over days, so a minute is fresh enough.
QUALITY_EVERY_S = 60.0
#: How long a swept label is held for this process (other workers skip it). Queued labels
#: are folded in with the next batch, or within a second on an idle stream
#: (Pipeline.apply_waiting_labels); two minutes leaves room for retries of a slow store, and
#: a process that died lets go of its labels that much later.
LABEL_LEASE_S = 120.0


def open_state(settings: Settings) -> StateStore:
    """The configured state store: in-memory (restored from its snapshot) or Redis."""
    url = settings.state_url
    if url.startswith("memory://"):
        path = settings.state_snapshot_path
        if path.exists():
            log.info("restoring user state from %s", path)
            return InMemoryStateStore.restore(path)
        return InMemoryStateStore()
    if url.startswith(REDIS_SCHEMES):
        from riskstream.features.redis_state import RedisStateStore

        # No connection is made here: a Redis that is down at start-up shows in /health and
        # is retried by the pipeline like an outage mid-stream.
        return RedisStateStore.from_url(
            url, prefix=settings.state_prefix, ttl_s=settings.state_ttl_s
        )
    raise ConfigurationError(
        f"unsupported state backend {url!r} (supported: memory://, redis://, rediss://, unix://)"
    )


def open_results(settings: Settings) -> ResultsStore:
    """The configured results store: SQLite (default) or PostgreSQL, schema at head."""
    return SQLResultsStore(settings.resolved_db_url(), migrate=settings.db_auto_migrate)


def first_model(settings: Settings) -> ModelBundle:
    """Train a first model on simulated history, for a system that has none yet."""
    from riskstream.offline import replay
    from riskstream.simulate import SimConfig, simulate

    log.info("no model yet: training a first one on 7 simulated days")
    history = simulate(SimConfig(n_users=settings.sim_users, days=7.0, seed=settings.sim_seed))
    bundle = replay.train(history.drop(columns=["label", "scenario"]))
    bundle.info["trained_on"] = "simulator (7 days, first-run model)"
    return bundle


def ensure_model(settings: Settings) -> tuple[ModelBundle, Registry | None]:
    """Load the configured model (registry alias or file); with none yet, train a first one.

    In registry mode a first model is registered and promoted to champion, so the next start,
    and every other worker, serve the same version.
    """
    target = parse_model_uri(settings.model_uri)
    if target is None:
        path = Path(settings.model_uri)
        if path.exists():
            return ModelBundle.load(path), None
        bundle = first_model(settings)
        bundle.save(path)
        return bundle, None
    registry = Registry(settings.home, name=target[0])
    found = registry.resolve(target[1])
    if found is not None:
        return found.bundle, registry
    if target[1] != CHAMPION:
        raise ConfigurationError(f"no model version has the alias @{target[1]}")
    bundle = first_model(settings)
    path = bundle.save(settings.resolved_model_path())
    version = registry.register(path, bundle, params={"source": "first run"})
    registry.promote(version)
    bundle.info["registry_version"] = version
    return bundle, registry


@dataclass
class Runtime:
    settings: Settings
    core: ScoringCore
    results: ResultsStore
    metrics: Metrics
    lock: threading.Lock = field(default_factory=threading.Lock)
    started_at: float = field(default_factory=time.time)
    #: The loop feeding this runtime, when it streams (its health shows in ``/health``).
    pipeline: Pipeline | None = None
    registry: Registry | None = None
    watcher: ModelWatcher | None = None
    #: Set when the runtime is closing: long-lived responses (the dashboard's event stream)
    #: end on it, so they never hold up the server's shutdown. close() sets it first.
    stopping: threading.Event = field(default_factory=threading.Event)
    _label_sweep_at: float = field(default=-float("inf"), repr=False)
    _quality_at: float = field(default=-float("inf"), repr=False)
    _retrain_at: float = field(default_factory=time.monotonic, repr=False)
    _retrain: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls, settings: Settings, bundle: ModelBundle | None = None, state: StateStore | None = None
    ) -> Runtime:
        settings.home.mkdir(parents=True, exist_ok=True)
        registry = None
        if bundle is None:
            bundle, registry = ensure_model(settings)
        core = ScoringCore(
            bundle,
            state or open_state(settings),
            Thresholds(settings.review_threshold, settings.block_threshold),
        )
        results = open_results(settings)
        results.record_model(bundle.version, bundle.info)
        metrics = Metrics()
        metrics.model.info({"version": bundle.version, "created_at": bundle.created_at})
        runtime = cls(settings, core, results, metrics, registry=registry)
        if registry is not None:
            runtime.watcher = ModelWatcher(registry, settings.registry_poll_s)
            runtime.watcher.champion = bundle.info.get("registry_version")
        return runtime

    @property
    def writer(self) -> ResultWriter:
        """The stream's write path for what the API scores (results, state, metrics)."""
        return ResultWriter(self.core, self.results, self.metrics)

    def refresh_models(self, force: bool = False) -> None:
        """Between batches: follow registry alias moves (champion swap, challenger shadow).

        A registry outage is logged and retried later, and so is a model that cannot be read;
        scoring goes on with the model in hand.
        """
        if self.watcher is None:
            return
        try:
            champion, challenger, removed = self.watcher.check(force)
        except Unavailable as exc:
            log.warning("model registry unavailable (%s); keeping the current model", exc)
            return
        except (ValueError, OSError) as exc:  # an unreadable or corrupt model file
            log.error("refusing the registry's new model (%s); keeping the current one", exc)
            return
        with self.lock:
            if champion is not None and champion.bundle.version != self.core.bundle.version:
                self.core.swap(champion.bundle)
                self.results.record_model(champion.bundle.version, champion.bundle.info)
                self.metrics.model.info(
                    {"version": champion.bundle.version, "created_at": champion.bundle.created_at}
                )
                log.info(
                    "now serving %s (registry version %s)",
                    champion.bundle.version,
                    champion.version,
                )
            if challenger is not None:
                self.core.set_shadow(challenger.bundle)
                log.info("shadow-scoring challenger %s", challenger.bundle.version)
            elif removed:
                self.core.set_shadow(None)

    # -- outcome labels -----------------------------------------------------------------------
    def ingest_labels(self, items: list[Any], source: str) -> dict[str, Any]:
        """Validate, store and queue outcome-label items (dicts as ``POST /labels`` takes
        them; an item's own ``source`` wins over ``source``), counting both outcomes.

        Returns ``accepted``, ``new`` / ``updated`` / ``unchanged`` and ``errors`` (``index``,
        ``field``, ``reason`` per refused item, in item order). Store outages raise
        (:class:`~riskstream.errors.StoreUnavailable`): nothing is counted as accepted then.
        """
        import pandas as pd

        from riskstream.schema import validate_labels

        errors = [{"index": i, "field": "body", "reason": "must be a JSON object"}
                  for i, item in enumerate(items) if not isinstance(item, dict)]
        if errors:
            self.metrics.labels.labels(source, "rejected").inc(len(errors))
        by_source: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            if isinstance(item, dict):
                own = item.get("source")
                by_source.setdefault(str(own)[:32] if own else source, []).append(i)
        done = {"accepted": 0, "new": 0, "updated": 0, "unchanged": 0}
        stored: list[tuple[str, pd.DataFrame]] = []
        for name, indices in by_source.items():
            valid, refused = validate_labels(pd.DataFrame([items[i] for i in indices]),
                                             time.time())
            errors += [{"index": indices[e.index], "field": e.field, "reason": e.reason}
                       for e in refused]
            if refused:
                self.metrics.labels.labels(name, "rejected").inc(len(refused))
            if len(valid):
                stored.append((name, valid))
        for name, valid in stored:
            counts = self.results.upsert_labels(valid, name)
            self.metrics.labels.labels(name, "accepted").inc(len(valid))
            done = {k: done[k] + counts.get(k, len(valid) if k == "accepted" else 0)
                    for k in done}
            if counts["new"] or counts["updated"]:
                self.labels_received(valid["transaction_id"].tolist())
        errors.sort(key=lambda e: e["index"])
        return {**done, "errors": errors}

    def labels_received(self, ids: list[str]) -> int:
        """Queue the stored labels of ``ids`` for the label-aware state (those whose transaction
        is not stored yet wait for it: :meth:`sweep_labels` finds them once it is). Returns
        how many were queued."""
        if not ids:
            return 0
        rows = self.results.labels_to_apply(ids, limit=len(ids), lease_s=LABEL_LEASE_S)
        return self._queue_labels(rows)

    def sweep_labels(self, force: bool = False) -> int:
        """Between batches, every ``label_sweep_s``: queue every stored label not yet folded
        into the state (imported by ``riskstream labels import``, received while the
        transaction was unknown, or left over by a stop before its batch was saved)."""
        now = time.monotonic()
        if not force and now - self._label_sweep_at < self.settings.label_sweep_s:
            return 0
        self._label_sweep_at = now
        try:
            rows = self.results.labels_to_apply(lease_s=LABEL_LEASE_S)
        except NotImplementedError:  # a store without outcome labels
            return 0
        except Unavailable as exc:
            log.warning("labels not swept (%s); retrying at the next sweep", exc)
            return 0
        return self._queue_labels(rows)

    def _queue_labels(self, rows: list[dict]) -> int:
        if not rows:
            return 0
        return self.core.queue_labels(LabelChanges.from_records(rows, at=-float("inf")))

    def refresh_quality(self, force: bool = False) -> None:
        """Every :data:`QUALITY_EVERY_S`: the alert-precision and fraud-recall gauges from the
        stored alerts and outcome labels (between batches, and when ``/metrics`` is read)."""
        now = time.monotonic()
        if not force and now - self._quality_at < QUALITY_EVERY_S:
            return
        self._quality_at = now
        try:
            # One read of the longest window; the shorter ones are its last days.
            read = alert_quality_summary(self.results, max(QUALITY_WINDOWS.values()))
            last = datetime.fromtimestamp(read["until"], UTC).date()
            for window, days in QUALITY_WINDOWS.items():
                first = (last - timedelta(days=days - 1)).isoformat()  # ISO dates sort as text
                totals = quality_totals([r for r in read["days"] if r["day"] >= first])
                nan = float("nan")
                precision, recall = totals["precision"], totals["recall"]
                self.metrics.alert_precision.labels(window).set(
                    nan if precision is None else precision)
                self.metrics.fraud_recall.labels(window).set(nan if recall is None else recall)
        except Unavailable as exc:
            log.warning("alert quality not refreshed (%s)", exc)

    # -- retraining ---------------------------------------------------------------------------
    def maybe_retrain(self) -> bool:
        """Between batches: every ``retrain_every_s``, start ``riskstream retrain`` as a child
        process (one at a time). It trains and gates in its own process, so scoring keeps its
        CPU share; a promotion reaches this server through the registry watch. True when one
        was started."""
        every = self.settings.retrain_every_s
        if every <= 0:
            return False
        if self._retrain is not None:
            code = self._retrain.poll()
            if code is None:
                return False  # still running
            (log.info if code == 0 else log.error)("scheduled retrain exited with %s", code)
            self._retrain = None
        now = time.monotonic()
        if now - self._retrain_at < every:
            return False
        self._retrain_at = now
        command = [sys.executable, "-m", "riskstream.cli", "retrain",
                   "--home", str(self.settings.home),
                   "--db-url", self.settings.resolved_db_url()]
        log.info("starting a scheduled retrain")
        self._retrain = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        return True

    def snapshot_state(self) -> Path | None:
        """Persist in-memory state (taken under the lock, so between batches)."""
        state = self.core.state
        if isinstance(state, InMemoryStateStore):
            with self.lock:
                state.snapshot(self.settings.state_snapshot_path)
            return self.settings.state_snapshot_path
        return None

    def close(self) -> None:
        self.stopping.set()
        if self._retrain is not None and self._retrain.poll() is None:
            self._retrain.terminate()  # a half-done retrain registers nothing
        self.snapshot_state()
        self.core.state.close()
        self.results.close()
