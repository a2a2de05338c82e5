"""Evaluation helpers of ``train`` and ``evaluate``: the time-ordered hold-out metrics logged
with a trained model, and the rows an evaluation reads. Bad input raises ``ValueError`` with
what is wrong (the CLI shows it as a usage error)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from riskstream.models.bundle import ModelBundle
from riskstream.offline import replay
from riskstream.offline.evaluation import average_precision, precision_recall_at_budget
from riskstream.schema import validate_frame

#: The Fraud Detection Handbook's best supervised figures on its test week, for comparison.
FDH_BASELINES = {
    "handbook random forest (supervised)": {"average_precision": 0.658},
    "handbook logistic regression (supervised)": {"card_precision_at_100": 0.291},
}

DAY_S = 86_400.0


def validation_metrics(
    labelled: pd.DataFrame | None, bundle: ModelBundle, until: float | None, days: float
) -> dict[str, float]:
    """AP and recall at a 1 % budget on the ``days`` after ``until`` (time-ordered hold-out)."""
    if labelled is None or until is None:
        return {}
    scored = replay.score(labelled, bundle)
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
