"""Detection-quality metrics for a fraud detector: ranking metrics, alert budgets, card precision.

Contract
--------
* Inputs are scored, labelled transactions: ``score`` (float, higher = more suspicious),
  ``label`` (0/1, the ground truth), ``timestamp`` (float epoch seconds, UTC), ``user_id`` (the
  card/customer) and optionally ``scenario``. Scores must not be NaN, labels must be 0/1,
  timestamps finite and user ids present; violations raise :class:`ValueError` (missing
  columns raise :class:`KeyError`). Nothing is silently dropped.
* **Ranking** is always "descending score, ties broken by original row position" (a stable
  sort of ``-score``). Every top-``k`` metric uses that order, so results are deterministic;
  when scores tie across an alert cut-off the row order decides which rows are alerted.
* ``average_precision`` and ``roc_auc`` equal :func:`sklearn.metrics.average_precision_score`
  and :func:`sklearn.metrics.roc_auc_score` (threshold ties handled the same way), computed
  from one sort so the whole evaluation stays vectorised. Undefined values are ``nan``, never
  a flattering number: AP with no fraud (sklearn returns 0.0 with a warning), ROC AUC with a
  single class.
* An alert **budget** ``b`` (a fraction in ``(0, 1]``) alerts the top ``k = ceil(b * n)``
  transactions (``b * n`` is rounded to 6 decimals first so floating-point noise such as
  ``0.07 * 100 = 7.000000000000001`` does not add an alert; ``k >= 1``).
* ``label`` is the truth; ``scenario`` only *attributes* frauds. Scenario values ``""``,
  ``"0"``, ``0``, ``"none"`` (any case), ``None``/NaN mean "legitimate"; integral floats are
  normalised (``3.0`` -> ``"3"``). A fraud row (``label == 1``) whose scenario looks
  legitimate is reported under ``"unattributed"``; a ``label == 0`` row counts as legitimate
  whatever its scenario says.
* :func:`evaluate` returns plain Python types only (``int``/``float``/``str``/``None``/
  ``list``/``dict``) and maps undefined (NaN) metrics to ``None``, so
  ``json.dumps(result, allow_nan=False)`` works.

>>> frame = pd.DataFrame({"score": [0.9, 0.8, 0.7, 0.6, 0.5], "label": [1, 0, 1, 0, 0],
...                       "timestamp": [1.7e9] * 5, "user_id": ["a", "b", "c", "d", "e"]})
>>> round(average_precision(frame["label"], frame["score"]), 4)
0.8333
>>> precision_recall_at_budget(frame["label"], frame["score"], 0.4)
(0.5, 0.5, 2)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

__all__ = [
    "BUDGETS",
    "LEGIT_SCENARIO_VALUES",
    "UNATTRIBUTED",
    "average_precision",
    "budget_label",
    "card_precision_at_k",
    "evaluate",
    "normalise_scenarios",
    "pr_curve",
    "precision_recall_at_budget",
    "recall_by_scenario",
    "roc_auc",
]

#: Default alert budgets: fraction of all transactions the investigators can review.
BUDGETS: tuple[float, ...] = (0.005, 0.01, 0.02)
#: Scenario values (after ``str``/strip/lower) that mean "legitimate transaction".
LEGIT_SCENARIO_VALUES: frozenset[str] = frozenset({"", "0", "none", "nan", "null"})
#: Scenario name given to fraud rows whose scenario value looks legitimate.
UNATTRIBUTED = "unattributed"
SECONDS_PER_DAY = 86_400


# --------------------------------------------------------------------------- validation


def _as_scores(scores: ArrayLike, name: str = "score") -> np.ndarray:
    arr = np.asarray(scores)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    try:
        arr = arr.astype(np.float64, copy=False)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: scores must be numeric") from None
    if np.isnan(arr).any():
        raise ValueError(f"{name}: {int(np.isnan(arr).sum())} NaN score(s); score every row")
    return arr


def _as_labels(labels: ArrayLike) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"label: expected a 1-D array, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError("label: labels must be 0/1") from None
    is_one = arr == 1
    if not (is_one | (arr == 0)).all():
        raise ValueError("label: labels must be 0/1 (no NaN or other values)")
    return is_one


def _check_pair(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = _as_labels(labels)
    s = _as_scores(scores)
    if len(y) != len(s):
        raise ValueError(f"labels and scores differ in length ({len(y)} != {len(s)})")
    if len(y) == 0:
        raise ValueError("no rows to evaluate")
    return y, s


def _require(frame: pd.DataFrame, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"frame is missing required column(s): {', '.join(missing)}")


def _timestamps(frame: pd.DataFrame) -> np.ndarray:
    ts = pd.to_numeric(frame["timestamp"], errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(ts).all():
        raise ValueError("timestamp: every row needs finite epoch seconds (UTC)")
    return ts


def _card_codes(frame: pd.DataFrame) -> np.ndarray:
    codes, _ = pd.factorize(frame["user_id"], sort=False)
    if (codes < 0).any():
        raise ValueError("user_id: missing card/customer id(s)")
    return codes


def _budget_k(budget: float, n: int) -> int:
    try:
        b = float(budget)
    except (TypeError, ValueError):
        b = float("nan")
    if not (math.isfinite(b) and 0 < b <= 1):
        raise ValueError(f"budget must be a fraction in (0, 1], got {budget!r}")
    return min(n, max(1, math.ceil(round(b * n, 6))))


def budget_label(budget: float) -> str:
    """The display/JSON key of a budget: ``0.005 -> "0.5%"``, ``0.01 -> "1%"``.

    >>> [budget_label(b) for b in BUDGETS]
    ['0.5%', '1%', '2%']
    """
    return f"{budget * 100:g}%"


# --------------------------------------------------------------------------- ranking core


@dataclass(frozen=True, slots=True)
class _Ranked:
    """Rows in alert order: descending score, ties by original position."""

    order: np.ndarray  # original positions, in alert order
    labels: np.ndarray  # bool labels in alert order
    scores: np.ndarray  # scores in alert order

    @classmethod
    def build(cls, labels: np.ndarray, scores: np.ndarray) -> _Ranked:
        order = np.argsort(-scores, kind="stable")
        return cls(order, labels[order], scores[order])


def _curve_counts(labels_sorted: np.ndarray, scores_sorted: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cumulative true/false positives at each distinct threshold (sklearn's binary curve)."""
    n = len(scores_sorted)
    ends = np.flatnonzero(scores_sorted[1:] != scores_sorted[:-1])
    ends = np.append(ends, n - 1)
    tps = np.cumsum(labels_sorted, dtype=np.int64)[ends]
    fps = ends + 1 - tps
    return tps, fps


def _ap_sorted(labels_sorted: np.ndarray, scores_sorted: np.ndarray) -> float:
    if len(labels_sorted) == 0:
        return float("nan")
    tps, fps = _curve_counts(labels_sorted, scores_sorted)
    positives = tps[-1]
    if positives == 0:
        return float("nan")
    precision = tps / (tps + fps)
    recall_steps = np.diff(tps, prepend=0) / positives
    return float(np.sum(recall_steps * precision))


def _roc_sorted(labels_sorted: np.ndarray, scores_sorted: np.ndarray) -> float:
    tps, fps = _curve_counts(labels_sorted, scores_sorted)
    positives, negatives = tps[-1], fps[-1]
    if positives == 0 or negatives == 0:
        return float("nan")
    tpr = np.concatenate(([0.0], tps / positives))
    fpr = np.concatenate(([0.0], fps / negatives))
    return float(np.trapezoid(tpr, fpr))


def _at_k(ranked: _Ranked, k: int) -> tuple[float, float]:
    hits = int(np.count_nonzero(ranked.labels[:k]))
    positives = int(np.count_nonzero(ranked.labels))
    recall = hits / positives if positives else float("nan")
    return hits / k, recall


# --------------------------------------------------------------------------- public metrics


def average_precision(labels: ArrayLike, scores: ArrayLike) -> float:
    """Average precision (area under the step precision-recall curve), as sklearn computes it.

    ``AP = sum_i (R_i - R_{i-1}) * P_i`` over distinct score thresholds, descending; rows with
    equal scores enter together. ``nan`` when there is no fraud at all.

    >>> round(average_precision([0, 1, 0, 1, 0], [0.9, 0.8, 0.8, 0.3, 0.1]), 6)  # (1/3+1/2)/2
    0.416667
    """
    y, s = _check_pair(labels, scores)
    ranked = _Ranked.build(y, s)
    return _ap_sorted(ranked.labels, ranked.scores)


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve (ties count half, as in sklearn); ``nan`` with only one class.

    >>> round(roc_auc([1, 0, 1, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.5]), 6)  # 5 of 6 pairs right
    0.833333
    >>> roc_auc([0, 0], [0.1, 0.2])
    nan
    """
    y, s = _check_pair(labels, scores)
    ranked = _Ranked.build(y, s)
    return _roc_sorted(ranked.labels, ranked.scores)


def pr_curve(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``(recall, precision)`` at each distinct threshold, descending threshold (rising recall).

    A leading point ``(0, P_1)`` is added so a ``steps-pre`` plot starts at recall 0; the
    area under that step curve is :func:`average_precision`. Raises ``ValueError`` when there
    is no fraud (recall is undefined).

    >>> recall, precision = pr_curve([1, 0, 1], [0.9, 0.5, 0.1])
    >>> recall.tolist(), precision.round(3).tolist()
    ([0.0, 0.5, 0.5, 1.0], [1.0, 1.0, 0.5, 0.667])
    """
    y, s = _check_pair(labels, scores)
    ranked = _Ranked.build(y, s)
    tps, fps = _curve_counts(ranked.labels, ranked.scores)
    if tps[-1] == 0:
        raise ValueError("no fraud among the labels: the precision-recall curve is undefined")
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return np.concatenate(([0.0], recall)), np.concatenate(([precision[0]], precision))


def precision_recall_at_budget(
    labels: ArrayLike, scores: ArrayLike, budget: float
) -> tuple[float, float, int]:
    """Precision and recall when the top ``k = ceil(budget * n)`` transactions are alerted.

    Rows are ranked by descending score; ties are broken by original position (earlier row
    first), so exactly ``k`` rows are alerted even when scores tie at the cut-off. Returns
    ``(precision, recall, k)``; recall is ``nan`` when there is no fraud.

    >>> # k = ceil(0.2 * 10) = 2; three rows tie at 0.9 -> positions 1 and 2 are alerted.
    >>> precision_recall_at_budget([0, 0, 1, 1, 0, 0, 0, 0, 0, 1],
    ...                            [0.5, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2], 0.2)
    (0.5, 0.3333333333333333, 2)
    """
    y, s = _check_pair(labels, scores)
    k = _budget_k(budget, len(y))
    precision, recall = _at_k(_Ranked.build(y, s), k)
    return precision, recall, k


def _cp_at_k(
    scores: np.ndarray, labels: np.ndarray, ts: np.ndarray, cards: np.ndarray, k: int
) -> tuple[float, list[float]]:
    if not (isinstance(k, int | np.integer) and k >= 1):
        raise ValueError(f"k must be a positive integer, got {k!r}")
    days = np.floor(ts / SECONDS_PER_DAY).astype(np.int64)
    days -= days.min()
    n_cards = int(cards.max()) + 1
    # One group per (day, card); factorize keeps first-appearance order, so the group code is
    # also the deterministic tie-break ("the card seen first that day ranks first").
    group, keys = pd.factorize(days * n_cards + cards, sort=False)
    agg = pd.DataFrame({"s": scores, "y": labels}).groupby(group, sort=True).max()
    g_score = agg["s"].to_numpy()
    g_label = agg["y"].to_numpy(dtype=bool)
    g_day = np.asarray(keys) // n_cards
    order = np.lexsort((np.arange(len(g_day)), -g_score, g_day))
    day_sorted = g_day[order]
    new_day = np.concatenate(([True], day_sorted[1:] != day_sorted[:-1]))
    starts = np.flatnonzero(new_day)
    run = np.cumsum(new_day) - 1
    rank = np.arange(len(order)) - starts[run]
    hits = np.bincount(run, weights=(g_label[order] & (rank < k)), minlength=len(starts))
    per_day = (hits / k).tolist()
    return float(np.mean(per_day)), per_day


def card_precision_at_k(
    frame: pd.DataFrame, k: int = 100, score_col: str = "score"
) -> tuple[float, list[float]]:
    """Card precision top-``k`` (Fraud Detection Handbook, ch. 4.2), plain per-day variant.

    For each UTC calendar day (``floor(timestamp / 86400)``) with at least one transaction,
    transactions are aggregated per card (``user_id``) taking the **max** score and the
    **max** label of that card's transactions that day; cards are ranked by that max score
    (ties: the card whose first transaction that day comes first in ``frame``) and
    ``CP@k(day) = (# fraudulent cards among the top k) / k``. Days with fewer than ``k``
    cards still divide by ``k`` (so CP@k is capped by the number of compromised cards).
    Returns ``(mean over days, per-day values in chronological order)``.

    Differences from the handbook's reference code, which matter when comparing numbers:
    its ``card_precision_top_k`` by default (``remove_detected_compromised_cards=True``)
    drops cards already detected as compromised on earlier days from later days; this is the
    plain per-day version without that removal (a card can count on several days). The
    handbook's "day" is also days since the start of its simulation rather than the UTC
    calendar day, and its tie order is unspecified.

    >>> frame = pd.DataFrame({"score": [0.9, 0.2, 0.8, 0.7], "label": [0, 1, 0, 0],
    ...     "timestamp": [0.0, 10.0, 20.0, 86_400.0], "user_id": ["a", "a", "b", "a"]})
    >>> card_precision_at_k(frame, k=2)  # day 0: cards a (0.9, fraud), b -> 1/2; day 1: 0/2
    (0.25, [0.5, 0.0])
    """
    _require(frame, (score_col, "label", "timestamp", "user_id"))
    if len(frame) == 0:
        raise ValueError("no rows to evaluate")
    scores = _as_scores(frame[score_col], score_col)
    labels = _as_labels(frame["label"])
    return _cp_at_k(scores, labels, _timestamps(frame), _card_codes(frame), k)


# --------------------------------------------------------------------------- scenarios


def _normalise_value(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    text = str(value).strip()
    return "" if text.lower() in LEGIT_SCENARIO_VALUES else text


def normalise_scenarios(values: ArrayLike | pd.Series) -> pd.Series:
    """Scenario values as ``str``; every legitimate-looking value becomes ``""``.

    Vectorised through :func:`pandas.factorize`: only the distinct values go through Python.

    >>> normalise_scenarios(["", 0, "0", None, float("nan"), "None", 3.0, " ato "]).tolist()
    ['', '', '', '', '', '', '3', 'ato']
    """
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), sort=False)
    names = np.array([_normalise_value(u) for u in uniques] + [""], dtype=object)
    index = values.index if isinstance(values, pd.Series) else None
    return pd.Series(names[codes], index=index, dtype=object)


def _scenario_codes(frame: pd.DataFrame, labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Per-row scenario index (``-1`` = legitimate) and the sorted scenario names."""
    names = normalise_scenarios(frame["scenario"]).to_numpy()
    fraud_names = np.where(names == "", UNATTRIBUTED, names)[labels]
    codes, uniques = pd.factorize(fraud_names, sort=True)
    out = np.full(len(labels), -1, dtype=np.int64)
    out[labels] = codes
    return out, [str(u) for u in uniques]


def _scenario_stats(
    ranked: _Ranked, codes: np.ndarray, names: list[str], budgets: Iterable[float]
) -> dict[str, dict[str, Any]]:
    n = len(ranked.order)
    codes_sorted = codes[ranked.order]
    counts = np.bincount(codes[codes >= 0], minlength=len(names))
    legit = codes_sorted == -1
    ks = {budget_label(b): _budget_k(b, n) for b in budgets}
    out: dict[str, dict[str, Any]] = {}
    for j, name in enumerate(names):
        mine = codes_sorted == j
        keep = legit | mine
        recall_at = {
            label: int(np.count_nonzero(mine[:k])) / int(counts[j]) for label, k in ks.items()
        }
        out[name] = {
            "n": int(counts[j]),
            "ap": _ap_sorted(ranked.labels[keep], ranked.scores[keep]),
            "recall_at": recall_at,
        }
    return out


def recall_by_scenario(
    frame: pd.DataFrame, budget: float, score_col: str = "score"
) -> dict[str, dict[str, Any]]:
    """Per fraud scenario: how many, how many the global alert budget catches, and AP.

    ``{scenario: {"n": frauds of that scenario, "recall": share of them within the global
    top-ceil(budget * n) alerts, "ap": AP of that scenario's frauds ranked against all
    legitimate rows (frauds of other scenarios excluded)}}``, scenarios sorted by name.
    Requires a ``scenario`` column (see the module contract for normalisation).

    >>> frame = pd.DataFrame({"score": [0.9, 0.8, 0.7, 0.6], "label": [1, 0, 1, 0],
    ...                       "scenario": ["ato", "", "testing", 0]})
    >>> recall_by_scenario(frame, 0.25)
    {'ato': {'n': 1, 'recall': 1.0, 'ap': 1.0}, 'testing': {'n': 1, 'recall': 0.0, 'ap': 0.5}}
    """
    _require(frame, (score_col, "label", "scenario"))
    labels, scores = _check_pair(frame["label"], _as_scores(frame[score_col], score_col))
    _budget_k(budget, len(labels))
    codes, names = _scenario_codes(frame, labels)
    stats = _scenario_stats(_Ranked.build(labels, scores), codes, names, [budget])
    key = budget_label(budget)
    return {
        name: {"n": s["n"], "recall": s["recall_at"][key], "ap": s["ap"]}
        for name, s in stats.items()
    }


# --------------------------------------------------------------------------- evaluate


def _iso_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    """Recursively convert to JSON-safe Python types; NaN/inf become ``None``."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


#: Decisions that raise an alert (the analyst's queue).
ALERT_DECISIONS = ("review", "block")


def alert_quality(frame: pd.DataFrame, labels: np.ndarray, ts: np.ndarray) -> list[dict[str, Any]]:
    """Per UTC day: the rows the model's ``decision`` alerted on, how many were fraud
    (``precision``), and the day's frauds alerted and missed (``recall``); the offline
    counterpart of the results store's ``alert_quality`` (here every row has its outcome).
    Empty without a ``decision`` column.

    >>> frame = pd.DataFrame({"decision": ["review", "allow", "block", "allow"]})
    >>> [(d["alerts"], d["precision"], d["frauds_missed"], d["recall"]) for d in alert_quality(
    ...     frame, np.array([1, 1, 0, 0]), np.array([0.0, 10.0, 20.0, 86_400.0]))]
    [(2, 0.5, 1, 0.5), (0, None, 0, None)]
    """
    if "decision" not in frame.columns or not len(frame):
        return []
    alerted = frame["decision"].isin(ALERT_DECISIONS).to_numpy()
    fraud = np.asarray(labels) > 0
    day = np.floor(ts / 86_400.0).astype(np.int64)
    days, index = np.unique(day, return_inverse=True)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(index, weights=mask.astype(np.float64), minlength=len(days))

    n_alerts, hits, frauds = count(alerted), count(alerted & fraud), count(fraud)
    out = []
    for k, d in enumerate(days):
        a, h, f = int(n_alerts[k]), int(hits[k]), int(frauds[k])
        out.append({"day": _iso_utc(float(d) * 86_400.0)[:10], "alerts": a, "confirmed": h,
                    "precision": h / a if a else None, "frauds": f, "frauds_missed": f - h,
                    "recall": h / f if f else None})
    return out


def evaluate(
    frame: pd.DataFrame,
    score_col: str = "score",
    budgets: Iterable[float] = BUDGETS,
    name: str = "model",
) -> dict[str, Any]:
    """Every headline metric of one model's scores, as a JSON-serialisable dict.

    Keys: ``name``, ``n``, ``n_fraud``, ``fraud_rate``, ``period`` (``{"start", "end"}``, ISO
    8601 UTC), ``average_precision``, ``roc_auc``, ``card_precision_at_100`` (mean over days)
    with ``cp100_per_day``, ``budgets`` (``{"0.5%": {"precision", "recall", "alerts"}, ...}``)
    , ``scenarios`` (``{name: {"n", "ap", "recall_at": {"0.5%": r, ...}}}``; empty without a
    ``scenario`` column) and ``alert_quality`` (:func:`alert_quality`: per day, the precision
    of the alerts the served decisions raised and the recall of the frauds; empty without a
    ``decision`` column). Undefined metrics are ``None``. One sort serves all ranking metrics,
    so millions of rows take seconds at most.

    >>> frame = pd.DataFrame({"score": [0.9, 0.1, 0.8, 0.2], "label": [1, 0, 0, 1],
    ...     "timestamp": [1704067200.0] * 4, "user_id": ["a", "b", "c", "d"]})
    >>> result = evaluate(frame, budgets=(0.5,))
    >>> round(result["average_precision"], 4), result["budgets"], result["period"]["start"]
    (0.8333, {'50%': {'precision': 0.5, 'recall': 0.5, 'alerts': 2}}, '2024-01-01T00:00:00Z')
    """
    _require(frame, (score_col, "label", "timestamp", "user_id"))
    budgets = tuple(budgets)
    labels, scores = _check_pair(frame["label"], _as_scores(frame[score_col], score_col))
    ts = _timestamps(frame)
    n = len(labels)
    ks = {budget_label(b): _budget_k(b, n) for b in budgets}
    ranked = _Ranked.build(labels, scores)
    n_fraud = int(np.count_nonzero(labels))

    budget_stats: dict[str, dict[str, Any]] = {}
    for label, k in ks.items():
        precision, recall = _at_k(ranked, k)
        budget_stats[label] = {"precision": precision, "recall": recall, "alerts": k}

    cp_mean, cp_days = _cp_at_k(scores, labels, ts, _card_codes(frame), 100)
    scenarios: dict[str, dict[str, Any]] = {}
    if "scenario" in frame.columns:
        codes, names = _scenario_codes(frame, labels)
        scenarios = _scenario_stats(ranked, codes, names, budgets)

    return _plain(
        {
            "name": str(name),
            "n": n,
            "n_fraud": n_fraud,
            "fraud_rate": n_fraud / n,
            "period": {"start": _iso_utc(float(ts.min())), "end": _iso_utc(float(ts.max()))},
            "average_precision": _ap_sorted(ranked.labels, ranked.scores),
            "roc_auc": _roc_sorted(ranked.labels, ranked.scores),
            "card_precision_at_100": cp_mean,
            "cp100_per_day": cp_days,
            "budgets": budget_stats,
            "scenarios": scenarios,
            # The decisions served came from the model's own score, not from a member's.
            "alert_quality": alert_quality(frame, labels, ts) if score_col == "score" else [],
        }
    )
