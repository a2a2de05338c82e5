"""Retraining from the product's own data, behind a champion/challenger gate.

The training data is what the product stored: every scored transaction (the results store's
history) and every outcome label with its ``reported_at``. Labels arrive late, so the most
recent days cannot judge a model yet -- their frauds are mostly not reported. The gate
therefore reads a window that ends ``delay_days`` before the newest stored transaction and
spans ``window_days`` before that; the challenger is trained on everything *before* the
window (and only labels reported before it), so neither model has seen the window's
outcomes, and both are scored on it as they would have scored it live (the label-aware
features replay labels as reported). The challenger is promoted only when its average
precision there is not below the champion's; with too few reported frauds in the window to
tell, the champion stays (a first model, with no champion, is promoted).

>>> window_bounds(end=100 * DAY_S, delay_days=7, window_days=7) == (86 * DAY_S, 93 * DAY_S)
True
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from riskstream.models.bundle import ModelBundle
from riskstream.offline import replay
from riskstream.offline.evaluation import average_precision, precision_recall_at_budget
from riskstream.storage.base import ResultsStore

log = logging.getLogger("riskstream.retrain")

DAY_S = replay.DAY_S
#: Fewer reported frauds than this in the gate window and two models' AP there is noise:
#: one fraud more or less ranked moves AP by tenths. The champion stays.
MIN_GATE_FRAUDS = 5


@dataclass
class RetrainResult:
    """The challenger, the window it was judged on, and the verdict."""

    bundle: ModelBundle
    promote: bool
    reason: str
    window: tuple[float, float]
    challenger: dict[str, float] = field(default_factory=dict)
    champion: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Flat metrics for the training run's log (MLflow)."""
        out = {f"gate_{k}": v for k, v in self.challenger.items()}
        out |= {f"gate_champion_{k}": v for k, v in self.champion.items()}
        return out | {"gate_promoted": float(self.promote)}

    def report(self) -> dict[str, Any]:
        return {
            "model": self.bundle.version,
            "window": [pd.Timestamp(t, unit="s", tz="UTC").isoformat() for t in self.window],
            "challenger": self.challenger,
            "champion": self.champion,
            "promote": self.promote,
            "reason": self.reason,
        }


def stored_data(results: ResultsStore, chunk: int = 50_000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every stored transaction (canonical columns, event order) and every outcome label."""
    frames = list(results.history(chunk))
    if not frames:
        raise ValueError("the results store holds no transactions to train on")
    try:
        labels = results.labels_frame()
    except NotImplementedError:  # a store without outcome labels
        labels = pd.DataFrame(columns=["transaction_id", "label", "reported_at"])
    return pd.concat(frames, ignore_index=True), labels


def _some(labels: pd.DataFrame | None) -> pd.DataFrame | None:
    """``labels``, or None when there are none (the no-labels path of train and score)."""
    return labels if labels is not None and len(labels) else None


def window_bounds(end: float, delay_days: float, window_days: float) -> tuple[float, float]:
    """The gate window ``[end - delay - window, end - delay)``."""
    stop = end - delay_days * DAY_S
    return stop - window_days * DAY_S, stop


def window_quality(
    frame: pd.DataFrame,
    labels: pd.DataFrame | None,
    bundle: ModelBundle,
    window: tuple[float, float],
) -> dict[str, float]:
    """AP, recall and precision at a 1 % budget of ``bundle`` on the window's rows.

    Everything before the window is replayed to warm the state; a row without a label counts
    as legitimate (most transactions are never reported).
    """
    lo, hi = window
    labels = _some(labels)
    ts = frame["timestamp"].to_numpy(dtype=np.float64)
    scored = replay.score(frame[ts < hi], bundle, labels=labels)
    valid = scored["decision"] != "invalid"
    t = scored["timestamp"].to_numpy(dtype=np.float64)
    rows = scored[valid.to_numpy() & (t >= lo)]
    y = np.zeros(len(rows), dtype=np.int8)
    if labels is not None:
        y = replay.row_labels(rows, labels)
    s = rows["score"].to_numpy(dtype=np.float64)
    out = {"rows": float(len(rows)), "frauds": float(y.sum())}
    if 0 < y.sum() < len(y):
        precision, recall, _ = precision_recall_at_budget(y, s, 0.01)
        out |= {"average_precision": average_precision(y, s), "recall_at_1pct": recall,
                "precision_at_1pct": precision}
    return out


def retrain(
    frame: pd.DataFrame,
    labels: pd.DataFrame | None,
    champion: ModelBundle | None,
    delay_days: float = 7.0,
    window_days: float = 7.0,
    gate: bool = True,
    train: Callable[..., ModelBundle] = replay.train,
    **train_kwargs: Any,
) -> RetrainResult:
    """Train a challenger on the data before the gate window and judge it against ``champion``.

    ``train`` (default :func:`replay.train`) receives ``frame``, ``until`` = the window's
    start, the labels reported before it, and ``train_kwargs``.
    """
    end = float(frame["timestamp"].astype(float).max())
    window = window_bounds(end, delay_days, window_days)
    labels = _some(labels)
    known = None if labels is None else _some(labels[labels["reported_at"] < window[0]])
    bundle = train(frame, until=window[0], labels=known, **train_kwargs)
    bundle.info |= {"gate_window": list(window), "source": "results store"}
    if not gate:
        return RetrainResult(bundle, True, "gate off", window)
    mine = window_quality(frame, labels, bundle, window)
    if champion is None:
        return RetrainResult(bundle, True, "no champion yet", window, mine)
    theirs = window_quality(frame, labels, champion, window)
    if mine["frauds"] < MIN_GATE_FRAUDS:
        reason = (f"{int(mine['frauds'])} reported frauds in the gate window, fewer than "
                  f"{MIN_GATE_FRAUDS}: too few to tell the models apart")
        return RetrainResult(bundle, False, reason, window, mine, theirs)
    ours, best = mine.get("average_precision", 0.0), theirs.get("average_precision", 0.0)
    promote = ours >= best
    reason = f"AP {ours:.4f} vs champion {best:.4f}: " + ("promote" if promote else "keep champion")
    log.info("retrain gate on %s: %s", window, reason)
    return RetrainResult(bundle, promote, reason, window, mine, theirs)
