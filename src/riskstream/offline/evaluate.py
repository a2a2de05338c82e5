"""Evaluation helpers of ``train`` and ``evaluate``: the time-ordered hold-out metrics logged
with a trained model, and the rows an evaluation reads. Bad input raises ``ValueError`` with
what is wrong (the CLI shows it as a usage error)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from riskstream.models.bundle import ModelBundle
from riskstream.offline import replay
from riskstream.offline.evaluation import average_precision, precision_recall_at_budget
from riskstream.schema import validate_frame

#: The Fraud Detection Handbook's best supervised figures on its test week, for comparison.
FDH_BASELINES = {
    "handbook random forest (supervised)": {"average_precision": 0.658, "roc_auc": 0.867,
                                            "card_precision_at_100": 0.287},
    "handbook logistic regression (supervised)": {"average_precision": 0.606, "roc_auc": 0.871,
                                                  "card_precision_at_100": 0.291},
    "handbook prequential XGBoost (supervised)": {"average_precision": 0.687, "roc_auc": 0.869,
                                                  "card_precision_at_100": 0.303},
}

DAY_S = replay.DAY_S


def validation_metrics(
    labelled: pd.DataFrame | None,
    bundle: ModelBundle,
    until: float | None,
    days: float,
    outcomes: pd.DataFrame | None = None,
) -> dict[str, float]:
    """AP and recall at a 1 % budget on the ``days`` after ``until`` (time-ordered hold-out);
    ``outcomes`` are replayed as reported, as the trained model saw them."""
    if labelled is None or until is None:
        return {}
    scored = replay.score(labelled, bundle, labels=outcomes)
    scored = scored[scored["decision"] != "invalid"]
    if "timestamp" not in scored:
        return {}
    ts = numeric_timestamps(scored["timestamp"])
    window = scored[(ts >= until) & (ts < until + days * DAY_S)]
    if window.empty or window["label"].nunique() < 2:
        return {}
    y, s = window["label"].to_numpy(), window["score"].to_numpy()
    precision, recall, _ = precision_recall_at_budget(y, s, 0.01)
    return {
        "val_average_precision": average_precision(y, s),
        "val_recall_at_1pct": recall,
        "val_precision_at_1pct": precision,
        "val_rows": float(len(window)),
    }


def evaluation_rows(
    frame: pd.DataFrame, score_col: str, lo: float | None, hi: float | None
) -> pd.DataFrame:
    """Valid, labelled rows of the evaluation period, with numeric timestamps."""
    for col in ("label", score_col, "timestamp", "user_id"):
        if col not in frame.columns:
            raise ValueError(f"input lacks column {col!r}")
    if "decision" in frame:
        frame = frame[frame["decision"] != "invalid"]
    if not pd.api.types.is_numeric_dtype(frame["timestamp"]):
        frame = frame.assign(timestamp=numeric_timestamps(frame["timestamp"]))
    if lo is not None:
        frame = frame[frame["timestamp"] >= lo]
    if hi is not None:
        frame = frame[frame["timestamp"] < hi]
    return frame.assign(user_id=frame["user_id"].astype(str))


def numeric_timestamps(col: pd.Series) -> np.ndarray:
    """Any timestamp column the input contract accepts -> epoch seconds (float64)."""
    probe = pd.DataFrame({"transaction_id": "x", "user_id": "x", "amount": 1.0, "timestamp": col})
    valid, errors = validate_frame(probe)
    if errors:
        raise ValueError(f"bad timestamp: {errors[0].reason}")
    return valid["timestamp"].to_numpy()


def handbook_view(
    frame: pd.DataFrame,
    test_start: float,
    train_days: int = 7,
    delay_days: int = 7,
    test_days: int = 7,
) -> pd.DataFrame:
    """The Fraud Detection Handbook's test set (its ``get_train_test_set``): the
    ``test_days`` from ``test_start``, less the cards already known compromised -- those
    with a fraud in the training week (the ``train_days`` ending ``delay_days`` before the
    test), then, for each test day, also those with a fraud on the matching day of the delay
    period (the day whose labels have just become known). ``frame`` needs ``timestamp``
    (epoch s), ``user_id`` and ``label``; every row of the period is kept otherwise.

    >>> day = 86400.0
    >>> f = pd.DataFrame({"timestamp": [0.0, 8 * day, 14 * day, 14 * day, 16 * day],
    ...                   "user_id": ["a", "b", "a", "c", "b"], "label": [1, 1, 0, 0, 0]})
    >>> handbook_view(f, 14 * day)["user_id"].tolist()
    ['c']
    """
    ts = frame["timestamp"].to_numpy(dtype=np.float64)
    train_start = test_start - (train_days + delay_days) * DAY_S
    day = np.floor((ts - train_start) / DAY_S).astype(np.int64)
    fraud = frame["label"].to_numpy() == 1
    users = frame["user_id"].astype(str).to_numpy()
    known = set(users[fraud & (day >= 0) & (day < train_days)].tolist())
    keep = np.zeros(len(frame), dtype=bool)
    for d in range(test_days):
        known |= set(users[fraud & (day == train_days + d - 1)].tolist())
        today = day == train_days + delay_days + d
        keep |= today & ~np.isin(users, list(known))
    return frame[keep]


def fold_views(
    scored: pd.DataFrame, test_start: float, test_days: int = 7, delay_days: int = 7
) -> dict[str, pd.DataFrame]:
    """The two evaluation views of a scored file's test period: ``every`` row of the
    ``test_days`` from ``test_start``, and the ``handbook`` one (:func:`handbook_view`, which
    reads the two weeks before for the known-compromised cards)."""
    rows = evaluation_rows(scored, "score", test_start - (7 + delay_days) * DAY_S,
                           test_start + test_days * DAY_S)
    ts = rows["timestamp"].to_numpy(dtype=np.float64)
    return {
        "every": rows[ts >= test_start],
        "handbook": handbook_view(rows, test_start, delay_days=delay_days, test_days=test_days),
    }


def prequential(
    frame: pd.DataFrame,
    labels: pd.DataFrame | None,
    first_test: float,
    folds: int = 4,
    delay_days: int = 7,
    test_days: int = 7,
    **train_kwargs: Any,
) -> list[dict[str, Any]]:
    """The prequential protocol: fold ``k`` tests the ``test_days`` from
    ``first_test + k * test_days`` and trains on every row before its test week less the
    label delay, with those rows' labels; scoring replays ``labels`` as reported (a label
    counts from its ``reported_at`` on). ``frame`` carries ``label`` (and ``scenario``) for
    the measurement only. Returns per fold ``until``, ``test_start``, the bundle's version
    and ``supervised`` report, the seconds to train and to score, and the scored rows of
    both views (:func:`fold_views`).
    """
    features = frame.drop(columns=[c for c in ("label", "scenario") if c in frame.columns])
    out: list[dict[str, object]] = []
    for k in range(folds):
        test_start = first_test + k * test_days * DAY_S
        until = test_start - delay_days * DAY_S
        t0 = time.perf_counter()
        bundle = replay.train(features, until=until, labels=labels, **train_kwargs)
        trained = time.perf_counter() - t0
        scored = replay.score(frame, bundle, labels=labels)
        out.append({"until": until, "test_start": test_start, "model": bundle.version,
                    "supervised": bundle.info.get("supervised"), "train_s": round(trained, 1),
                    "score_s": round(time.perf_counter() - t0 - trained, 1),
                    "views": fold_views(scored, test_start, test_days, delay_days)})
    return out
