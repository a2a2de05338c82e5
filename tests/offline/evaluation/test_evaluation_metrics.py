"""Metrics against hand-computed toy examples, scikit-learn and a naive CP@k reference."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from riskstream.offline.evaluation import (
    BUDGETS,
    average_precision,
    card_precision_at_k,
    evaluate,
    normalise_scenarios,
    precision_recall_at_budget,
    recall_by_scenario,
    roc_auc,
)

DAY1 = 1704067200.0  # 2024-01-01T00:00:00Z
DAY2 = DAY1 + 86_400.0


# --------------------------------------------------------------------------- AP / ROC AUC


def test_average_precision_hand_computed() -> None:
    # Ranking: +, -, +, -, -  -> precision at each fraud: 1/1 and 2/3 -> AP = (1 + 2/3) / 2.
    assert average_precision([1, 0, 1, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.5]) == pytest.approx(5 / 6)


def test_average_precision_with_tied_scores() -> None:
    # Thresholds 0.9: (tp 0, fp 1); 0.8 (tie, enter together): tp 1, fp 2 -> P 1/3, R 1/2;
    # 0.3: tp 2, fp 2 -> P 1/2, R 1.  AP = 1/2 * 1/3 + 1/2 * 1/2 = 5/12.
    labels, scores = [0, 1, 0, 1, 0], [0.9, 0.8, 0.8, 0.3, 0.1]
    assert average_precision(labels, scores) == pytest.approx(5 / 12)
    # Tie handling does not depend on row order inside the tie.
    assert average_precision([0, 0, 1, 1, 0], [0.9, 0.8, 0.8, 0.3, 0.1]) == pytest.approx(5 / 12)


def test_average_precision_undefined_and_perfect() -> None:
    assert math.isnan(average_precision([0, 0, 0], [0.1, 0.2, 0.3]))
    assert average_precision([1, 1, 0], [0.9, 0.8, 0.1]) == 1.0
    assert average_precision([True, False], [0.2, 0.1]) == 1.0


def test_roc_auc_hand_computed() -> None:
    # 2 frauds x 3 legit = 6 pairs; fraud@0.9 beats 3, fraud@0.7 beats 2 -> 5/6.
    assert roc_auc([1, 0, 1, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.5]) == pytest.approx(5 / 6)
    assert roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts half
    assert roc_auc([0, 1], [0.9, 0.1]) == pytest.approx(0.0)


def test_roc_auc_nan_with_one_class() -> None:
    assert math.isnan(roc_auc([0, 0, 0], [0.1, 0.2, 0.3]))
    assert math.isnan(roc_auc([1, 1], [0.1, 0.2]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranking_metrics_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.random(5_000) < 0.05
    scores = np.round(rng.random(5_000) + 0.3 * labels, 2)  # plenty of ties
    assert average_precision(labels, scores) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-12
    )
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


@pytest.mark.parametrize(
    ("labels", "scores"),
    [
        ([0, 2], [0.1, 0.2]),
        ([0, np.nan], [0.1, 0.2]),
        ([0, 1], [0.1, np.nan]),
        ([0, 1, 1], [0.1, 0.2]),
        ([], []),
    ],
)
def test_invalid_inputs_raise(labels: list[Any], scores: list[Any]) -> None:
    with pytest.raises(ValueError):
        average_precision(labels, scores)


# --------------------------------------------------------------------------- budgets


def test_precision_recall_at_budget_ties_broken_by_position() -> None:
    # n = 10, budget 20% -> k = 2. Rows 1, 2, 3 tie at 0.9: rows 1 (legit) and 2 (fraud) are
    # alerted, row 3 (fraud) is not. 3 frauds in total -> precision 1/2, recall 1/3.
    labels = [0, 0, 1, 1, 0, 0, 0, 0, 0, 1]
    scores = [0.5, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2]
    precision, recall, k = precision_recall_at_budget(labels, scores, 0.2)
    assert (precision, recall, k) == (0.5, pytest.approx(1 / 3), 2)
    # Same scores, fraud moved to the front of the tie: now both alerts are frauds.
    labels2 = [0, 1, 1, 0, 0, 0, 0, 0, 0, 1]
    assert precision_recall_at_budget(labels2, scores, 0.2) == (1.0, pytest.approx(2 / 3), 2)


@pytest.mark.parametrize(
    ("budget", "n", "k"),
    [(0.15, 10, 2), (0.2, 10, 2), (0.07, 100, 7), (0.005, 1000, 5), (1e-6, 10, 1), (1.0, 7, 7)],
)
def test_budget_alert_count_is_ceil(budget: float, n: int, k: int) -> None:
    labels = np.zeros(n, dtype=int)
    labels[0] = 1
    assert precision_recall_at_budget(labels, np.linspace(1, 0, n), budget)[2] == k


def test_precision_recall_at_budget_values_and_no_fraud() -> None:
    # Top 2 of 5: one fraud (0.9) and one legit (0.8); 2 frauds in total.
    assert precision_recall_at_budget([1, 0, 1, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.5], 0.4) == (
        0.5,
        0.5,
        2,
    )
    precision, recall, k = precision_recall_at_budget([0, 0], [0.2, 0.1], 0.5)
    assert precision == 0.0 and math.isnan(recall) and k == 1


@pytest.mark.parametrize("budget", [0.0, -0.1, 1.5, float("nan"), "1%"])
def test_invalid_budget_raises(budget: Any) -> None:
    with pytest.raises(ValueError):
        precision_recall_at_budget([0, 1], [0.1, 0.2], budget)


# --------------------------------------------------------------------------- CP@k


def _cp_frame() -> pd.DataFrame:
    rows = [
        # day 1 (2024-01-01)
        ("A", DAY1 + 600, 0.9, 0),  # card A: max score 0.9, max label 1 (from the 0.2 row)
        ("A", DAY1 + 43_200, 0.2, 1),
        ("B", DAY1 + 700, 0.8, 0),
        ("C", DAY1 + 800, 0.3, 0),  # card C: max score 0.7, max label 1
        ("C", DAY1 + 900, 0.7, 1),
        ("D", DAY2 - 1, 0.6, 1),  # 23:59:59 -> still day 1; ranked 4th
        ("E", DAY1 + 1_000, 0.1, 0),
        # day 2 (2024-01-02): only two cards
        ("D", DAY2, 0.95, 0),  # 00:00:00 -> day 2, legit that day
        ("A", DAY2 + 5_000, 0.4, 1),
    ]
    return pd.DataFrame(rows, columns=["user_id", "timestamp", "score", "label"])


def test_card_precision_hand_computed() -> None:
    frame = _cp_frame()
    # k=3. Day 1 cards by max score: A(.9, fraud) B(.8) C(.7, fraud) D(.6, fraud) E(.1)
    #   -> top 3 hold A and C -> 2/3.
    # Day 2 has 2 < k cards: D(.95, legit), A(.4, fraud) -> 1 fraud / 3 = 1/3.
    mean, per_day = card_precision_at_k(frame, k=3)
    assert per_day == pytest.approx([2 / 3, 1 / 3])
    assert mean == pytest.approx(0.5)
    # k=1: day 1 A (fraud) -> 1; day 2 D (legit) -> 0.
    assert card_precision_at_k(frame, k=1) == (0.5, [1.0, 0.0])
    # k=5: day 1 has 3 fraudulent cards of 5 -> 3/5; day 2 -> 1/5.
    assert card_precision_at_k(frame, k=5)[1] == pytest.approx([0.6, 0.2])


def test_card_precision_independent_of_row_order() -> None:
    frame = _cp_frame()
    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert card_precision_at_k(shuffled, k=3)[1] == pytest.approx([2 / 3, 1 / 3])


def test_card_precision_custom_score_column_and_card_ties() -> None:
    frame = pd.DataFrame(
        {
            "user_id": ["X", "Y"],
            "timestamp": [DAY1, DAY1 + 1],
            "score": [0.0, 0.0],
            "alt": [0.5, 0.5],  # tie: the card seen first that day (X, legit) ranks first
            "label": [0, 1],
        }
    )
    assert card_precision_at_k(frame, k=1, score_col="alt") == (0.0, [0.0])


def _naive_cp(frame: pd.DataFrame, k: int) -> list[float]:
    out = []
    days = np.floor(frame["timestamp"] / 86_400)
    for _, day in frame.groupby(days):
        cards = day.groupby("user_id")[["score", "label"]].max()
        out.append(cards.sort_values("score", ascending=False).head(k)["label"].sum() / k)
    return out


def test_card_precision_matches_naive_reference() -> None:
    rng = np.random.default_rng(7)
    n = 3_000
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, 300, n).astype(str),
            "timestamp": DAY1 + rng.random(n) * 5 * 86_400,
            "score": rng.random(n),  # continuous: no ties, so tie order cannot matter
            "label": (rng.random(n) < 0.05).astype(int),
        }
    )
    mean, per_day = card_precision_at_k(frame, k=20)
    expected = _naive_cp(frame, 20)
    assert per_day == pytest.approx(expected)
    assert mean == pytest.approx(np.mean(expected))


def test_card_precision_validation() -> None:
    frame = _cp_frame()
    with pytest.raises(ValueError):
        card_precision_at_k(frame, k=0)
    with pytest.raises(KeyError):
        card_precision_at_k(frame.drop(columns="user_id"))
    with pytest.raises(ValueError):
        card_precision_at_k(frame.assign(user_id=[None] + ["A"] * (len(frame) - 1)))
    with pytest.raises(ValueError):
        card_precision_at_k(frame.assign(timestamp=np.nan))


# --------------------------------------------------------------------------- scenarios


def _scenario_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "score": [0.95, 0.90, 0.85, 0.80, 0.60, 0.50, 0.40, 0.30, 0.20, 0.10],
            "label": [1, 1, 0, 1, 0, 0, 1, 0, 1, 0],
            "scenario": ["ato", "testing", "", "testing", "0", None, "ato", "none", "testing", 0],
        }
    )


def test_recall_by_scenario_hand_computed() -> None:
    # n = 10, budget 30% -> top 3 = rows 0 (ato), 1 (testing), 2 (legit).
    out = recall_by_scenario(_scenario_frame(), 0.3)
    assert list(out) == ["ato", "testing"]
    assert out["ato"]["n"] == 2 and out["ato"]["recall"] == pytest.approx(1 / 2)
    assert out["testing"]["n"] == 3 and out["testing"]["recall"] == pytest.approx(1 / 3)
    # ato vs legit: .95(+) .85 .60 .50 .40(+) .30 .10 -> (1/1 + 2/5) / 2 = 0.7
    assert out["ato"]["ap"] == pytest.approx(0.7)
    # testing vs legit: .90(+) .85 .80(+) .60 .50 .30 .20(+) .10 -> (1 + 2/3 + 3/7) / 3
    assert out["testing"]["ap"] == pytest.approx((1 + 2 / 3 + 3 / 7) / 3)


def test_recall_by_scenario_label_is_truth() -> None:
    frame = pd.DataFrame(
        {
            "score": [0.9, 0.8, 0.7, 0.1],
            "label": [1, 0, 1, 0],
            # row 0: fraud without a scenario; row 1: scenario name but labelled legit.
            "scenario": ["", "ato", "ato", ""],
        }
    )
    out = recall_by_scenario(frame, 0.25)  # k = 1 -> row 0 only
    assert out == {
        "ato": {"n": 1, "recall": 0.0, "ap": pytest.approx(1 / 2)},
        "unattributed": {"n": 1, "recall": 1.0, "ap": 1.0},
    }


def test_recall_by_scenario_numeric_scenarios() -> None:
    frame = pd.DataFrame(
        {"score": [0.1, 0.9, 0.2, 0.8], "label": [0, 1, 0, 1], "scenario": [0, 3, 0, 5]}
    )
    out = recall_by_scenario(frame, 0.25)
    assert list(out) == ["3", "5"] and out["3"]["recall"] == 1.0 and out["5"]["recall"] == 0.0
    floats = frame.assign(scenario=[np.nan, 3.0, np.nan, 5.0])
    assert recall_by_scenario(floats, 0.25) == out


def test_recall_by_scenario_needs_scenario_column() -> None:
    with pytest.raises(KeyError):
        recall_by_scenario(_scenario_frame().drop(columns="scenario"), 0.01)


def test_normalise_scenarios() -> None:
    values = pd.Series(["", 0, "0", None, np.nan, "NONE", 3.0, " ato ", 7], index=list("abcdefghi"))
    out = normalise_scenarios(values)
    assert out.tolist() == ["", "", "", "", "", "", "3", "ato", "7"]
    assert list(out.index) == list("abcdefghi")


# --------------------------------------------------------------------------- evaluate


def _assert_plain(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str
            _assert_plain(item)
    elif isinstance(value, list):
        for item in value:
            _assert_plain(item)
    else:
        assert value is None or type(value) in (str, int, float, bool), (value, type(value))


def _toy_frame() -> pd.DataFrame:
    frame = _scenario_frame()
    frame["timestamp"] = [DAY1 + 10 * i for i in range(5)] + [DAY2 + 10 * i for i in range(5)]
    frame["user_id"] = ["a", "b", "c", "a", "d", "e", "a", "f", "g", "h"]
    frame["alt"] = frame["score"][::-1].to_numpy()
    return frame


def test_evaluate_keys_values_and_json() -> None:
    frame = _toy_frame()
    result = evaluate(frame, name="champion")
    assert set(result) == {
        "name", "n", "n_fraud", "fraud_rate", "period", "average_precision", "roc_auc",
        "card_precision_at_100", "cp100_per_day", "budgets", "scenarios", "alert_quality",
    }  # fmt: skip
    assert result["alert_quality"] == []  # no decision column
    with_decisions = evaluate(frame.assign(decision=["review"] * 3 + ["allow"] * 7))
    days = with_decisions["alert_quality"]
    assert sum(d["alerts"] for d in days) == 3
    assert sum(d["frauds"] for d in days) == 5
    assert all(d["confirmed"] + d["frauds_missed"] == d["frauds"] for d in days)
    assert result["name"] == "champion"
    assert (result["n"], result["n_fraud"], result["fraud_rate"]) == (10, 5, 0.5)
    assert result["period"] == {"start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:40Z"}
    assert result["average_precision"] == pytest.approx(
        average_precision(frame["label"], frame["score"])
    )
    assert result["roc_auc"] == pytest.approx(roc_auc(frame["label"], frame["score"]))
    mean, per_day = card_precision_at_k(frame, k=100)
    assert result["card_precision_at_100"] == pytest.approx(mean)
    assert result["cp100_per_day"] == pytest.approx(per_day)
    assert list(result["budgets"]) == ["0.5%", "1%", "2%"]
    for b, key in zip(BUDGETS, result["budgets"], strict=True):
        p, r, k = precision_recall_at_budget(frame["label"], frame["score"], b)
        assert result["budgets"][key] == {"precision": p, "recall": r, "alerts": k}
    assert set(result["scenarios"]) == {"ato", "testing"}
    ato = result["scenarios"]["ato"]
    assert ato["n"] == 2 and ato["ap"] == pytest.approx(0.7)
    assert ato["recall_at"] == {"0.5%": 0.5, "1%": 0.5, "2%": 0.5}  # k = 1: row 0 is ato
    _assert_plain(result)
    assert json.loads(json.dumps(result, allow_nan=False)) == result


def test_evaluate_other_score_column_and_custom_budgets() -> None:
    frame = _toy_frame()
    result = evaluate(frame, score_col="alt", budgets=(0.3,), name="challenger")
    assert result["name"] == "challenger" and list(result["budgets"]) == ["30%"]
    assert result["average_precision"] == pytest.approx(
        average_precision(frame["label"], frame["alt"])
    )
    assert result["scenarios"]["testing"]["recall_at"] == {
        "30%": recall_by_scenario(frame, 0.3, score_col="alt")["testing"]["recall"]
    }


def test_evaluate_undefined_metrics_are_none_and_no_scenarios() -> None:
    frame = _toy_frame().drop(columns="scenario").assign(label=0)
    result = evaluate(frame)
    assert result["average_precision"] is None and result["roc_auc"] is None
    assert result["budgets"]["1%"]["recall"] is None
    assert result["scenarios"] == {}
    json.dumps(result, allow_nan=False)


def test_evaluate_500k_rows_is_fast() -> None:
    rng = np.random.default_rng(11)
    n = 500_000
    label = rng.random(n) < 0.01
    frame = pd.DataFrame(
        {
            "score": np.round(rng.random(n) + 0.3 * label, 4),
            "label": label.astype(np.int64),
            "timestamp": DAY1 + rng.random(n) * 30 * 86_400,
            "user_id": rng.integers(0, 50_000, n).astype(str),
            "scenario": np.where(label, rng.choice(["ato", "testing", "skim"], n), ""),
        }
    )
    start = time.perf_counter()
    result = evaluate(frame)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"evaluate took {elapsed:.2f}s on {n} rows"
    assert result["n"] == n and len(result["cp100_per_day"]) in (30, 31)
    assert result["average_precision"] == pytest.approx(
        average_precision_score(label, frame["score"]), abs=1e-12
    )


def test_alert_quality_belongs_to_the_served_score_only() -> None:
    frame = _toy_frame().assign(decision=["review"] * 3 + ["allow"] * 7,
                                score_member=np.linspace(0, 1, 10))
    assert evaluate(frame)["alert_quality"]
    assert evaluate(frame, score_col="score_member")["alert_quality"] == []
