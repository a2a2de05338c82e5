"""MLflow lifecycle: register, alias, promote, load; hot swap at a batch boundary."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from riskstream.models import IsolationForestDetector, ModelBundle
from riskstream.models.registry import ModelWatcher, Registry, load_model
from riskstream.offline import replay
from riskstream.pipeline import Pipeline
from riskstream.service.runtime import Runtime
from riskstream.settings import Settings
from riskstream.transport import InProcessQueue


@pytest.fixture(scope="module")
def two_bundles(sim_history: pd.DataFrame) -> tuple[ModelBundle, ModelBundle]:
    history = sim_history.drop(columns=["label", "scenario"])
    a = replay.train(history, detector=IsolationForestDetector(n_estimators=50, seed=1))
    b = replay.train(history, detector=IsolationForestDetector(n_estimators=50, seed=2))
    assert a.version != b.version
    return a, b


def register(registry: Registry, bundle: ModelBundle, tmp: Path) -> str:
    path = bundle.save(tmp / f"{bundle.version}.npz")
    return registry.register(path, bundle, metrics={"val_average_precision": 0.5})


def test_register_promote_and_load(tmp_path: Path, two_bundles: Any) -> None:
    a, b = two_bundles
    reg = Registry(tmp_path / "home")
    assert reg.alias_version("champion") is None
    assert register(reg, a, tmp_path) == "1"
    assert reg.alias_version("challenger") == "1"
    assert reg.promote() == "1"  # default: the challenger
    assert register(reg, b, tmp_path) == "2"
    assert (reg.alias_version("champion"), reg.alias_version("challenger")) == ("1", "2")
    rows = reg.versions()
    assert [(r["version"], r["aliases"]) for r in rows] == [
        ("1", ["champion"]), ("2", ["challenger"])]
    loaded = reg.load("2")
    X = np.random.default_rng(0).normal(size=(50, len(b.spec.names)))
    np.testing.assert_array_equal(loaded.scores(X), b.scores(X))
    bundle, label = load_model("challenger", tmp_path / "home")
    assert bundle.version == b.version and "v2" in label
    with pytest.raises(Exception):  # noqa: B017 - MLflow raises its own error type
        reg.promote("99")
    # Artifacts live under the home, not wherever the process was started.
    assert (tmp_path / "home" / "mlartifacts").is_dir()


def test_watcher_reports_moves_once(tmp_path: Path, two_bundles: Any) -> None:
    a, b = two_bundles
    reg = Registry(tmp_path / "home")
    reg.promote(register(reg, a, tmp_path))
    watcher = ModelWatcher(reg, every_s=3600)
    champ, chall, removed = watcher.check(force=True)
    assert champ is not None and champ.bundle.version == a.version and chall is None
    assert watcher.check(force=True) == (None, None, False)
    register(reg, b, tmp_path)
    champ, chall, removed = watcher.check(force=True)
    assert champ is None and chall is not None and chall.bundle.version == b.version
    reg.promote("2")  # the challenger becomes champion: nothing left to shadow
    champ, chall, removed = watcher.check(force=True)
    assert champ is not None and champ.version == "2" and chall is None and removed


def test_promotion_while_streaming_switches_at_a_batch_boundary(
    tmp_path: Path, two_bundles: Any, make_stream: Callable[..., pd.DataFrame]
) -> None:
    a, b = two_bundles
    home = tmp_path / "home"
    reg = Registry(home)
    reg.promote(register(reg, a, tmp_path))
    runtime = Runtime.build(Settings(home=home, registry_poll_s=0.05))
    assert runtime.core.bundle.version == a.version
    queue = InProcessQueue()
    pipe = Pipeline(runtime.core, queue, runtime.results, runtime.metrics, lock=runtime.lock)
    pipe.between_batches.append(runtime.refresh_models)
    worker = threading.Thread(target=pipe.run, args=(100, 0.05), daemon=True)
    worker.start()
    frame = make_stream(n=2000)
    chunks = [frame.iloc[i:i + 100] for i in range(0, len(frame), 100)]

    def feed(parts: list[pd.DataFrame]) -> None:
        for part in parts:
            queue.put(part)
            time.sleep(0.01)

    feed(chunks[:8])
    register(reg, b, tmp_path)  # challenger: scored in shadow, not served
    deadline = time.monotonic() + 10
    while runtime.core.shadow is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert runtime.core.shadow is not None and runtime.core.shadow.version == b.version
    feed(chunks[8:12])
    reg.promote("2")
    feed(chunks[12:])
    deadline = time.monotonic() + 15
    while queue.committed < len(chunks) and time.monotonic() < deadline:
        time.sleep(0.05)
    pipe.stop()
    worker.join(timeout=10)

    rows = pd.DataFrame(runtime.results.transactions(limit=5000))
    assert len(rows) == len(frame) == rows["transaction_id"].nunique()  # none lost, none twice
    # Each batch is written at one instant by one model; order batches by that instant.
    per_batch = rows.groupby("scored_at")["model_version"].agg(["nunique", "first"])
    assert (per_batch["nunique"] == 1).all()
    sequence = per_batch.sort_index()["first"].tolist()
    switch = sequence.index(b.version)
    assert sequence[:switch] == [a.version] * switch
    assert sequence[switch:] == [b.version] * (len(sequence) - switch)
    assert 0 < switch < len(sequence)
    runtime.results.close()
