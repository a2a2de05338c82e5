"""Detection with outcome labels on the Fraud Detection Handbook data (FDH), honestly delayed.

Every transaction's label is reported 7 days after it (the handbook's delay). The product is
run as a user would run it -- ``riskstream train --until T --labels L`` then ``riskstream
score --labels L``, here through the same library calls with the CLI's defaults -- and the
test week after the delay is evaluated in two views:

* **handbook**: its ``get_train_test_set`` test set (cards already known compromised left
  out), comparable with the handbook's published figures;
* **every**: every transaction of the week, what the product sees, with recall at a 1 %
  alert budget per fraud scenario.

The first fold is the handbook's split (train to 2018-08-01, test 2018-08-08..14); further
folds move both a week later (prequential: each trained on all weeks before its test week
less the delay). ``--no-labels`` also runs the unsupervised default for comparison.

    .venv/bin/python benchmarks/report.py run fdh-labels \\
        --fdh ../shared/datasets/fdh_simulated_transactions/transactions.csv.gz

runs ``fdh_labels.py FILE --folds 4 --no-labels`` and keeps the result with the machine and
load. ``--folds 0 --labels-out L`` only writes the labels file the CLI contract reads
(``riskstream train/score --labels L``). One fold takes ~2 minutes on 2 cores (replay for
training and for scoring, trees on ~1M rows).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from riskstream.io import read_transactions
from riskstream.offline import replay
from riskstream.offline.evaluate import DAY_S, prequential
from riskstream.offline.evaluation.metrics import evaluate
from riskstream.schema import parse_timestamp

FIRST_TRAIN_END = "2018-08-01T00:00:00Z"
DELAY_DAYS = 7


def fdh_labels(frame: pd.DataFrame, delay_days: float = DELAY_DAYS) -> pd.DataFrame:
    """Every row's label, reported ``delay_days`` after its transaction."""
    return replay.delayed_labels(frame, delay_days)


def summary(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("n", "n_fraud", "average_precision", "roc_auc", "card_precision_at_100")
    out = {k: result[k] for k in keys}
    out["recall_at_1pct"] = {s: v["recall_at"]["1%"] for s, v in result["scenarios"].items()}
    return out


def run_fold(frame: pd.DataFrame, labels: pd.DataFrame | None, until: float) -> dict[str, Any]:
    """One fold of ``riskstream evaluate --prequential``: trained to ``until``, tested on the
    week after the label delay."""
    [fold] = prequential(frame, labels, until + DELAY_DAYS * DAY_S, folds=1,
                         delay_days=DELAY_DAYS)
    views = fold.pop("views")
    return {**fold, **{view: summary(evaluate(rows)) for view, rows in views.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input", type=Path)
    ap.add_argument("--folds", type=int, default=1)
    ap.add_argument("--no-labels", action="store_true", help="also the unsupervised default")
    ap.add_argument("--labels-out", type=Path, help="write the labels file the CLI reads")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    frame = read_transactions(args.input, "fdh")
    labels = fdh_labels(frame)
    if args.labels_out:
        out = labels.assign(reported_at=pd.to_datetime(labels["reported_at"], unit="s", utc=True)
                            .dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        out.to_csv(args.labels_out, index=False)
    first = parse_timestamp(FIRST_TRAIN_END)
    report: dict[str, Any] = {
        "benchmark": "fdh-labels",
        "input": args.input.name,
        "delay_days": DELAY_DAYS,
        "host": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "folds": [],
    }
    for k in range(args.folds):
        fold = run_fold(frame, labels, first + 7 * k * DAY_S)
        print(json.dumps(fold), flush=True)
        report["folds"].append(fold)
    if args.no_labels:
        report["unsupervised"] = run_fold(frame, None, first)
        print(json.dumps(report["unsupervised"]), flush=True)
    for view in ("every", "handbook"):
        aps = [f[view]["average_precision"] for f in report["folds"]]
        if aps:
            report[f"mean_ap_{view}"] = float(np.mean(aps))
    print(json.dumps({k: v for k, v in report.items() if k.startswith("mean")}))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
