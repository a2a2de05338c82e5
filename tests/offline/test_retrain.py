"""Retraining from stored data: the gate window respects the label delay, the challenger never
sees the window's outcomes, and promotion follows average precision there."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from riskstream.models import ModelBundle
from riskstream.offline import replay, retrain
from riskstream.simulate import SimConfig, simulate

DAY = retrain.DAY_S


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    """16 simulated days with ~2 % fraud (labels kept for the outcome feed)."""
    return simulate(SimConfig(n_users=400, n_merchants=60, days=16.0, seed=11, fraud_rate=0.02))


def delayed(frame: pd.DataFrame, days: float = 2.0) -> pd.DataFrame:
    """Every row's label, reported ``days`` after its transaction."""
    return replay.delayed_labels(frame, days)


def transactions(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["label", "scenario"])


def recording_train(calls: list[dict[str, Any]]) -> Callable[..., ModelBundle]:
    def train(frame: pd.DataFrame, **kwargs: Any) -> ModelBundle:
        calls.append(kwargs)
        return replay.train(frame, **kwargs)

    return train


def test_the_challenger_sees_nothing_of_the_gate_window(history: pd.DataFrame) -> None:
    labels = delayed(history)
    calls: list[dict[str, Any]] = []
    result = retrain.retrain(transactions(history), labels, None, delay_days=3, window_days=4,
                             train=recording_train(calls))
    end = float(replay.prepare(history)[0]["timestamp"].max())
    assert result.window == pytest.approx((end - 7 * DAY, end - 3 * DAY))
    (call,) = calls
    assert call["until"] == result.window[0]
    assert (call["labels"]["reported_at"] < result.window[0]).all()
    assert len(call["labels"]) < len(labels)  # the window's (and later) labels were held back
    assert result.promote and result.reason == "no champion yet"
    assert result.challenger["frauds"] >= retrain.MIN_GATE_FRAUDS


def test_a_better_challenger_is_promoted_and_a_worse_one_is_not(history: pd.DataFrame) -> None:
    labels = delayed(history)
    frame = transactions(history)
    window = retrain.window_bounds(float(replay.prepare(frame)[0]["timestamp"].max()), 3, 4)
    unsupervised = replay.train(frame, until=window[0])
    with_labels = retrain.retrain(frame, labels, unsupervised, delay_days=3, window_days=4)
    assert with_labels.bundle.supervised is not None
    ours = with_labels.challenger["average_precision"]
    theirs = with_labels.champion["average_precision"]
    assert ours > theirs and with_labels.promote, with_labels.reason
    # The other way round: the supervised model as champion, a label-blind challenger.
    blind = retrain.retrain(frame, None, with_labels.bundle, delay_days=3, window_days=4,
                            gate=True)
    assert not blind.promote, blind.reason
    assert blind.metrics()["gate_promoted"] == 0.0


def test_too_few_reported_frauds_keep_the_champion(history: pd.DataFrame) -> None:
    frame = transactions(history)
    labels = delayed(history)
    labels = labels[labels["label"] == 0]  # nothing reported as fraud
    champion = replay.train(frame.iloc[: len(frame) // 2])
    result = retrain.retrain(frame, labels, champion, delay_days=3, window_days=4)
    assert not result.promote and "too few" in result.reason
    off = retrain.retrain(frame, labels, champion, delay_days=3, window_days=4, gate=False)
    assert off.promote and off.reason == "gate off"


def test_retrain_command_trains_on_the_store_and_promotes(
    history: pd.DataFrame, make_runtime: Callable[..., Any], tmp_path: Path
) -> None:
    from riskstream.cli import app
    from riskstream.models.registry import CHAMPION, Registry

    rt = make_runtime()
    valid, _, _ = replay.prepare(transactions(history))
    for start in range(0, len(valid), 5000):
        rt.writer.record(rt.core.score(valid.iloc[start : start + 5000]))
    rt.results.upsert_labels(delayed(history), "import")
    home = rt.settings.home
    rt.close()
    out = CliRunner().invoke(app, ["retrain", "--home", str(home), "--delay-days", "3",
                                   "--window-days", "4"])
    assert out.exit_code == 0, out.output
    assert '"promote": true' in out.output and "no champion yet" in out.output
    registry = Registry(home)
    champion = registry.resolve(CHAMPION)
    assert champion is not None and champion.bundle.supervised is not None
    assert champion.bundle.info["source"] == "results store"
    # train --from-db: the same data, no gate.
    trained = CliRunner().invoke(app, ["train", "--from-db", "--home", str(home),
                                       "--no-register", "--model-out", str(tmp_path / "m.npz")])
    assert trained.exit_code == 0, trained.output
    assert "supervised:" in trained.output
    both = CliRunner().invoke(app, ["train", "--from-db", "-i", "x.csv", "--home", str(home)])
    assert both.exit_code == 2 and "--from-db" in both.output
