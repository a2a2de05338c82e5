"""A supervised reference for the FDH test week: how far can *labels* take our features?

Not a product path: it answers one question about issue 5's target (scenario-3 recall at a
1 % alert budget >= 0.95 for the *unsupervised* ensemble). It computes every transaction's
features with riskstream's own replay (the scoring core's kernel, state warmed on all
earlier history), then fits scikit-learn's gradient-boosted trees on the *labels* of
windows before the test week and ranks the test week 2018-08-08..14 with them, scored by the
same metric code as ``riskstream evaluate``. If a supervised model that sees months of labels
does not reach a figure, an unsupervised one is not expected to.

Two feature sets: ``riskstream`` (every feature our kernel computes that varies on this data)
and ``+card 14 d`` (those plus four per-card window features the product does not compute,
read off the whole history with pandas: the number of the card's earlier payments in 14 days
more than ``clip_z`` spreads above usual, the largest amount z in those 14 days, days and
payments since the card's last such outlier) — a generous view of a compromised card.
Training windows end 2018-07-31 (the handbook's training week, then longer ones); the week
before the test week is skipped as in the handbook, so no label the test week could not have
had is used. Three seeds each (the trees' bin thresholds are fitted on a random subsample).

    .venv/bin/python benchmarks/fdh_supervised_reference.py \
        ../shared/datasets/fdh_simulated_transactions/transactions.csv.gz

Takes ~3 minutes on 2 cores (2 min 41 s measured); prints one line per (window, feature
set) and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from riskstream.features import FEATURES, FeatureSpec
from riskstream.io import read_transactions
from riskstream.offline.evaluation.metrics import average_precision, recall_by_scenario
from riskstream.offline.replay import prepare, replay_features

TEST = ("2018-08-08", "2018-08-15")
#: Training windows, all ending where the handbook's training week ends (2018-07-31).
WINDOWS = {"1 week (handbook)": "2018-07-25", "1 month": "2018-07-01", "3 months": "2018-05-01"}
BUDGET = 0.01
SEEDS = (0, 1, 2)
DAY = 86_400.0
CARD_COLUMNS = ("outliers_14d", "max_z_14d", "days_since_outlier", "payments_since_outlier")


def card_window_features(frame: pd.DataFrame, clip_z: float) -> pd.DataFrame:
    """Per payment, from the same card's *earlier* payments only: outliers (amount z above
    ``clip_z``) in 14 days, the largest amount z in 14 days, and days / payments since the
    card's last outlier (large when it has none)."""
    order = np.lexsort((frame["timestamp"].to_numpy(), frame["user_id"].to_numpy()))
    users = frame["user_id"].to_numpy()[order]
    ts = frame["timestamp"].to_numpy(dtype=float)[order]
    z = frame["amount_z"].to_numpy()[order]
    n = len(order)
    count = np.zeros(n)
    max_z = np.full(n, -10.0)  # "no earlier payment in 14 days": below any real z
    days_since = np.full(n, 1e3)
    payments_since = np.full(n, 1e3)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    for s, e in zip(starts, np.r_[starts[1:], n], strict=True):
        t, zz = ts[s:e], z[s:e]
        lo = np.searchsorted(t, t - 14 * DAY)
        out = np.r_[0, np.cumsum(zz > clip_z)]
        idx = np.arange(e - s)
        count[s:e] = out[idx] - out[lo]
        last = -1
        for i in range(e - s):
            if i > lo[i]:
                max_z[s + i] = zz[lo[i] : i].max()
            if last >= 0:
                days_since[s + i] = (t[i] - t[last]) / DAY
                payments_since[s + i] = i - last
            if zz[i] > clip_z:
                last = i
    extra = np.column_stack([count, max_z, days_since, payments_since])
    back = np.empty_like(extra)
    back[order] = extra
    return pd.DataFrame(back, columns=list(CARD_COLUMNS), index=frame.index)


def day(date: str) -> float:
    """UTC midnight of ``date`` as epoch seconds (the FDH times are UTC)."""
    return pd.Timestamp(date, tz="UTC").timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", help="FDH transactions file (csv, csv.gz or parquet)")
    args = parser.parse_args()

    t0 = time.perf_counter()
    valid, _, _ = prepare(read_transactions(args.path, mapping="fdh"))
    spec = FeatureSpec()
    features, _ = replay_features(valid, spec)
    frame = pd.DataFrame(features, columns=FEATURES)
    for col in ("timestamp", "user_id", "label", "scenario"):
        frame[col] = valid[col].to_numpy()
    frame = pd.concat([frame, card_window_features(frame, spec.params.clip_z)], axis=1)
    print(f"features for {len(frame):,} rows in {time.perf_counter() - t0:.0f}s", flush=True)

    ours = [f for f in FEATURES if frame[f].std() > 0]
    sets = {"riskstream": ours, "+card 14 d": [*ours, *CARD_COLUMNS]}
    ts = frame["timestamp"].to_numpy(dtype=float)
    test = frame[(ts >= day(TEST[0])) & (ts < day(TEST[1]))].reset_index(drop=True)
    summary = []
    for window, since in WINDOWS.items():
        train = frame[(ts >= day(since)) & (ts < day("2018-08-01"))]
        for name, cols in sets.items():
            runs = []
            for seed in SEEDS:
                model = HistGradientBoostingClassifier(
                    max_iter=300, learning_rate=0.05, early_stopping=False, random_state=seed
                ).fit(train[cols], train["label"])
                scored = test.assign(score=model.predict_proba(test[cols])[:, 1])
                rec = recall_by_scenario(scored, BUDGET)
                runs.append(
                    {
                        "ap": round(average_precision(scored["label"], scored["score"]), 3),
                        **{f"recall_s{k}": round(v["recall"], 3) for k, v in rec.items()},
                    }
                )
            summary.append({"window": window, "features": name, "rows": len(train), "runs": runs})
            shown = ", ".join(
                f"AP {r['ap']:.3f} s1 {r['recall_s1']:.3f} s3 {r['recall_s3']:.3f}" for r in runs
            )
            print(f"{window:18s} {name:11s} {shown}", flush=True)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
