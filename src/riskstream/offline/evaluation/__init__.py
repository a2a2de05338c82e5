"""Honest detection-quality metrics and reports for a fraud detector.

Contract
--------
Input is a :class:`pandas.DataFrame` of scored, labelled transactions:

* ``score``: float, higher = more suspicious (other score columns can be evaluated through
  ``score_col``, e.g. to compare a champion and a challenger on the same rows);
* ``label``: 0/1, the ground truth;
* ``timestamp``: float epoch seconds, UTC (days for CP@k are UTC calendar days);
* ``user_id``: the card/customer;
* ``scenario`` (optional): fraud scenario name; ``""``, ``0``, ``"0"``, ``"none"`` and NaN
  mean legitimate. ``label`` decides fraud vs legitimate; ``scenario`` only attributes
  frauds (fraud rows without one are reported as ``"unattributed"``).

What you get:

* :func:`average_precision`, :func:`roc_auc`: equal to scikit-learn's, ``nan`` when undefined;
* :func:`precision_recall_at_budget`: alert the top ``ceil(budget * n)`` rows (descending
  score, ties by row position) and return ``(precision, recall, alerts)``;
* :func:`card_precision_at_k`: the Fraud Detection Handbook's card precision top-k, plain
  per-day variant (no removal of cards detected on earlier days);
* :func:`recall_by_scenario`: per-scenario count, recall within the global alert budget and
  AP against legitimate rows;
* :func:`evaluate`: all of the above as one JSON-serialisable dict (undefined -> ``None``);
* :func:`write_report` / :func:`format_markdown`: ``evaluation.json``, ``summary.md`` and
  ``pr_curve.png`` comparing several models, with reference baselines kept apart.

Invalid input (NaN scores, non-0/1 labels, missing ids or timestamps) raises; nothing is
silently dropped. Everything is vectorised: one sort per model serves every ranking metric.

>>> import pandas as pd
>>> frame = pd.DataFrame({"score": [0.9, 0.8, 0.3, 0.1], "label": [1, 0, 1, 0],
...     "timestamp": [1704067200.0, 1704067260.0, 1704153600.0, 1704153660.0],
...     "user_id": ["a", "b", "a", "c"], "scenario": ["ato", "", "ato", 0]})
>>> result = evaluate(frame, name="champion")
>>> result["n_fraud"], result["cp100_per_day"], result["scenarios"]["ato"]["n"]
(2, [0.01, 0.01], 2)
"""

from riskstream.offline.evaluation.metrics import (
    BUDGETS,
    average_precision,
    budget_label,
    card_precision_at_k,
    evaluate,
    normalise_scenarios,
    pr_curve,
    precision_recall_at_budget,
    recall_by_scenario,
    roc_auc,
)
from riskstream.offline.evaluation.report import format_markdown, write_report

__all__ = [
    "BUDGETS",
    "average_precision",
    "budget_label",
    "card_precision_at_k",
    "evaluate",
    "format_markdown",
    "normalise_scenarios",
    "pr_curve",
    "precision_recall_at_budget",
    "recall_by_scenario",
    "roc_auc",
    "write_report",
]
