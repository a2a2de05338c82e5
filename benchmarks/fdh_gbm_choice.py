"""Which gradient-boosted-trees library for the supervised member, on the product's own matrix.

The product's supervised member (``riskstream.models.supervised``) fits scikit-learn's
``HistGradientBoostingClassifier`` on the matrix ``ModelBundle.train`` builds: every feature
of the training rows, replayed with their outcome labels as reported, the label warm-up rows
left out, plus the unsupervised ensemble's surprisal as a stacked column. This benchmark runs
the product's training exactly as ``benchmarks/fdh_labels.py`` does (FDH data, each label
reported 7 days after its transaction, trained until 2018-08-01), records the arrays handed
to ``Supervised.fit`` (its attribute is wrapped inside this script only, and the training is
stopped there), and on that matrix compares, with the product's settings translated to each
library (31 leaves, learning rate 0.08, at least 200 rows a leaf, L2 1.0, up to 300 rounds,
early stopping after 20 rounds without a better validation log loss, 2 threads):

* scikit-learn ``HistGradientBoostingClassifier``;
* LightGBM (``LGBMClassifier``);
* XGBoost (``XGBClassifier``, ``tree_method="hist"``, leaf-wise growth; it has no minimum
  row count per leaf, so ``min_child_weight`` is 200 rows' worth of hessian at the
  weighted base rate);

each without class weighting, with the library's own switch (``class_weight="balanced"`` /
``scale_pos_weight``) and with scikit-learn's "balanced" weights given as sample weights (the
validation loss then weighted alike), plus the product's own ``GradientBoostedTrees``
(its internal validation split, its compiled ``score``). Rows stay in time order: the first
80 % are fitted (a stratified 10 % of them, the same rows for every library, is the
early-stopping validation set), the last 20 % -- the same holdout the product uses to
choose its blend -- are evaluated: average precision (the product's ``average_precision``)
with a block-bootstrap interval of its difference to scikit-learn's, ROC AUC, fit seconds,
trees, and the latency of ``predict_proba`` for 1 row and for 10,000 rows (for the product,
of ``GradientBoostedTrees.score``). Each model is fitted with three seeds (validation split,
bin sampling), each fit and its timings in a process of its own: scikit-learn and
LightGBM/XGBoost bring different OpenMP runtimes, whose spinning idle threads slow one
another down on a small machine.

    .venv/bin/python benchmarks/fdh_gbm_choice.py \\
        ../shared/datasets/fdh_simulated_transactions/transactions.csv.gz \\
        --out benchmarks/results/fdh-gbm-choice.json

Needs ``lightgbm`` and ``xgboost`` (a library that is missing is recorded as skipped; the
CPU-only XGBoost build is ``xgboost-cpu``). Takes 7-10 minutes on 2 cores: ~30 s of replay,
then 30 fits of 5-15 s, a process each.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from riskstream.io import read_transactions
from riskstream.models import supervised as sup
from riskstream.offline import replay
from riskstream.schema import parse_timestamp

TRAIN_END = "2018-08-01T00:00:00Z"
#: The product's tree settings (``GradientBoostedTrees`` defaults, ``fit``'s early stopping).
MAX_ITER = 300
LEARNING_RATE = 0.08
LEAVES = 31
MIN_LEAF = 200
L2 = 1.0
PATIENCE = 20
VALIDATION = 0.1
BINS = 255

Predict = Callable[[np.ndarray], np.ndarray]


def load_fdh_labels() -> Callable[[pd.DataFrame], pd.DataFrame]:
    """``fdh_labels`` of ``benchmarks/fdh_labels.py`` (a sibling script, not a package)."""
    path = Path(__file__).with_name("fdh_labels.py")
    spec = importlib.util.spec_from_file_location("fdh_labels", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fdh_labels


class _Captured(Exception):
    """Raised by the recording ``Supervised.fit`` once it has the matrix."""


def supervised_matrix(frame: pd.DataFrame, labels: pd.DataFrame, until: float) -> dict[str, Any]:
    """The arrays ``ModelBundle.train`` passes to ``Supervised.fit`` for this training run."""
    captured: dict[str, Any] = {}
    original = sup.Supervised.__dict__["fit"]

    def recording(cls: type, X: np.ndarray, unsup: np.ndarray, y: np.ndarray,
                  names: tuple[str, ...], calibrate: Any, **params: Any) -> None:
        captured.update(X=np.array(X), unsup=np.array(unsup), y=np.asarray(y).astype(np.int8),
                        names=tuple(names), params=dict(params))
        raise _Captured

    sup.Supervised.fit = classmethod(recording)  # type: ignore[method-assign,assignment]
    try:
        replay.train(frame.drop(columns=["label", "scenario"]), until=until, labels=labels)
    except _Captured:
        pass
    finally:
        sup.Supervised.fit = original  # type: ignore[method-assign]
    if not captured:
        raise RuntimeError("the training run did not reach Supervised.fit (too few frauds?)")
    return captured


def latency(predict: Predict, X: np.ndarray, single: int = 300, batch: int = 10_000,
            repeats: int = 7) -> dict[str, float]:
    """Median seconds of one call on 1 row (µs) and on ``batch`` rows (ms), after a warm-up."""
    predict(X[:1])
    predict(X[:batch])
    ones = []
    for i in range(single):
        row = X[i : i + 1]
        t = time.perf_counter()
        predict(row)
        ones.append(time.perf_counter() - t)
    many = []
    for k in range(repeats):
        rows = X[k * 1000 : k * 1000 + batch]
        t = time.perf_counter()
        predict(rows)
        many.append(time.perf_counter() - t)
    return {"predict_1_row_us": round(float(np.median(ones)) * 1e6, 1),
            f"predict_{batch}_rows_ms": round(float(np.median(many)) * 1e3, 2)}


#: Class weighting: none; the library's own switch (``class_weight="balanced"`` for
#: scikit-learn, ``scale_pos_weight`` = negatives / positives for LightGBM and XGBoost); or
#: per-row weights, scikit-learn's "balanced" ones (n / (2 n_class)), passed as sample weights.
WEIGHTINGS = (None, "balanced", "sample_weight")


def balanced_weights(y_fit: np.ndarray, y: np.ndarray) -> np.ndarray:
    """scikit-learn's "balanced" class weights (from ``y_fit``'s counts) of the rows ``y``."""
    n, pos = len(y_fit), max(int((y_fit == 1).sum()), 1)
    return np.where(y == 1, n / (2.0 * pos), n / (2.0 * (n - pos)))


def positive_weight(yf: np.ndarray, weighting: str | None) -> float:
    return float((yf == 0).sum() / max((yf == 1).sum(), 1)) if weighting == "balanced" else 1.0


def validation_weights(y_fit: np.ndarray, y_val: np.ndarray,
                       weighting: str | None) -> np.ndarray | None:
    """With class weighting, the early-stopping loss is weighted alike (as scikit-learn does
    when it splits the validation rows off itself): an unweighted loss would stop a weighted
    model within a few rounds, its probabilities being shifted up by design."""
    return None if weighting is None else balanced_weights(y_fit, y_val)


def fit_sklearn(Xf: np.ndarray, yf: np.ndarray, Xv: np.ndarray, yv: np.ndarray,
                weighting: str | None, seed: int, threads: int,
                ) -> tuple[Predict, dict[str, Any]]:
    clf = HistGradientBoostingClassifier(
        max_iter=MAX_ITER, learning_rate=LEARNING_RATE, max_leaf_nodes=LEAVES,
        min_samples_leaf=MIN_LEAF, l2_regularization=L2, max_bins=BINS, early_stopping=True,
        n_iter_no_change=PATIENCE, random_state=seed,
        class_weight="balanced" if weighting == "balanced" else None,
    )
    clf.fit(Xf, yf, X_val=Xv, y_val=yv,  # OpenMP threads: limited by the caller
            sample_weight=balanced_weights(yf, yf) if weighting == "sample_weight" else None,
            sample_weight_val=validation_weights(yf, yv, weighting))

    def predict(X: np.ndarray) -> np.ndarray:
        return clf.predict_proba(X)[:, 1]

    # scikit-learn keeps the rounds after the best one: every round built is used.
    return predict, {"trees": int(clf.n_iter_), "rounds_built": int(clf.n_iter_)}


def fit_lightgbm(Xf: np.ndarray, yf: np.ndarray, Xv: np.ndarray, yv: np.ndarray,
                 weighting: str | None, seed: int, threads: int,
                 ) -> tuple[Predict, dict[str, Any]]:
    import lightgbm as lgb

    spw = positive_weight(yf, weighting)
    clf = lgb.LGBMClassifier(
        n_estimators=MAX_ITER, learning_rate=LEARNING_RATE, num_leaves=LEAVES, max_depth=-1,
        min_child_samples=MIN_LEAF, reg_lambda=L2, max_bin=BINS, scale_pos_weight=spw,
        n_jobs=threads, random_state=seed, verbose=-1,
    )
    val_w = validation_weights(yf, yv, weighting)
    clf.fit(Xf, yf, eval_X=(Xv,), eval_y=(yv,), eval_metric="binary_logloss",
            sample_weight=balanced_weights(yf, yf) if weighting == "sample_weight" else None,
            eval_sample_weight=None if val_w is None else [val_w],
            callbacks=[lgb.early_stopping(PATIENCE, verbose=False)])
    # The scikit-learn API keeps the trees up to the best round only.
    built = len(next(iter(clf.evals_result_.values()))["binary_logloss"])

    def predict(X: np.ndarray) -> np.ndarray:
        return clf.predict_proba(X)[:, 1]

    return predict, {"trees": int(clf.booster_.current_iteration()), "rounds_built": built,
                     "scale_pos_weight": round(spw, 3)}


def fit_xgboost(Xf: np.ndarray, yf: np.ndarray, Xv: np.ndarray, yv: np.ndarray,
                weighting: str | None, seed: int, threads: int,
                ) -> tuple[Predict, dict[str, Any]]:
    import xgboost as xgb

    spw = positive_weight(yf, weighting)
    sw = balanced_weights(yf, yf) if weighting == "sample_weight" else None
    # No minimum row count per leaf in XGBoost: ask for 200 rows' worth of hessian at the
    # (weighted) base rate, the closest equivalent.
    w = np.where(yf == 1, spw, 1.0) * (1.0 if sw is None else sw)
    p = float((w * yf).sum() / w.sum())
    min_child_weight = MIN_LEAF * p * (1.0 - p) * float(w.mean())
    clf = xgb.XGBClassifier(
        n_estimators=MAX_ITER, learning_rate=LEARNING_RATE, tree_method="hist",
        grow_policy="lossguide", max_leaves=LEAVES, max_depth=0, reg_lambda=L2,
        min_child_weight=min_child_weight, max_bin=BINS, scale_pos_weight=spw,
        early_stopping_rounds=PATIENCE, eval_metric="logloss", n_jobs=threads,
        random_state=seed, device="cpu",
    )
    val_w = validation_weights(yf, yv, weighting)
    clf.fit(Xf, yf, eval_set=[(Xv, yv)], verbose=False, sample_weight=sw,
            sample_weight_eval_set=None if val_w is None else [val_w])
    best = int(clf.best_iteration) + 1

    def predict(X: np.ndarray) -> np.ndarray:
        return clf.predict_proba(X)[:, 1]  # up to the best iteration

    return predict, {"trees": best, "rounds_built": int(clf.get_booster().num_boosted_rounds()),
                     "scale_pos_weight": round(spw, 3),
                     "min_child_weight": round(min_child_weight, 4)}


def fit_product(Xf: np.ndarray, yf: np.ndarray, names: tuple[str, ...], seed: int,
                ) -> tuple[Predict, dict[str, Any]]:
    """The product's own model as ``Supervised.fit`` trains it: its internal validation split
    of the fit rows, then the compiled ``score``."""
    model = sup.GradientBoostedTrees(seed=seed).fit(Xf, yf, names)
    return model.score, {"trees": model.iterations, "rounds_built": model.iterations}


Fitter = Callable[..., tuple[Predict, dict[str, Any]]]
LIBRARIES: dict[str, tuple[str, Fitter]] = {
    "sklearn_hist_gb": ("sklearn", fit_sklearn),
    "lightgbm": ("lightgbm", fit_lightgbm),
    "xgboost_hist": ("xgboost", fit_xgboost),
}
#: name -> (module it needs, fitter (None: the product's own), class weighting).
MODELS: dict[str, tuple[str, Fitter | None, str | None]] = {
    "product_gradient_boosted_trees": ("sklearn", None, None),
    **{name + ("" if weighting is None else f"_{weighting}"): (module, fitter, weighting)
       for name, (module, fitter) in LIBRARIES.items() for weighting in WEIGHTINGS},
}
REFERENCE = "sklearn_hist_gb"


def evaluate(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"holdout_ap": round(sup.average_precision(y, p), 4),
            "holdout_roc_auc": round(float(roc_auc_score(y, p)), 4)}


def worker(name: str, data: Path, seed: int, threads: int) -> dict[str, Any]:
    """Fit and time one model on the saved matrix; its holdout scores go beside ``data``."""
    threadpool_limits(threads)  # scikit-learn's OpenMP pool
    with np.load(data) as d:
        X_fit, y_fit, X_hold, y_hold = d["X_fit"], d["y_fit"], d["X_hold"], d["y_hold"]
        names = tuple(str(n) for n in d["names"])
    _, fitter, weighting = MODELS[name]
    t = time.perf_counter()
    if fitter is None:
        predict, info = fit_product(X_fit, y_fit, names, seed)
    else:
        X_tr, X_val, y_tr, y_val = train_test_split(
            X_fit, y_fit, test_size=VALIDATION, stratify=y_fit, random_state=seed
        )
        predict, info = fitter(X_tr, y_tr, X_val, y_val, weighting, seed, threads)
    fit_s = time.perf_counter() - t
    scores = predict(X_hold)
    np.save(data.with_name(f"{name}-{seed}.npy"), scores)
    return {"seed": seed, **evaluate(y_hold, scores), "fit_s": round(fit_s, 1), **info,
            **latency(predict, X_hold)}


def block_bootstrap(y: np.ndarray, scores: dict[str, list[np.ndarray]], reference: str,
                    blocks: int = 50, draws: int = 200, seed: int = 0) -> dict[str, list[float]]:
    """95 % interval of each model's AP (mean over its seeds) minus ``reference``'s,
    resampling contiguous blocks of the time-ordered holdout (neighbouring rows move
    together)."""
    edges = np.linspace(0, len(y), blocks + 1).astype(int)
    parts = [np.arange(a, b) for a, b in itertools.pairwise(edges)]
    rng = np.random.default_rng(seed)
    diffs: dict[str, list[float]] = {name: [] for name in scores if name != reference}

    def mean_ap(idx: np.ndarray, runs: list[np.ndarray]) -> float:
        return float(np.mean([sup.average_precision(y[idx], s[idx]) for s in runs]))

    for _ in range(draws):
        idx = np.concatenate([parts[j] for j in rng.integers(0, blocks, blocks)])
        base = mean_ap(idx, scores[reference])
        for name in diffs:
            diffs[name].append(mean_ap(idx, scores[name]) - base)
    return {name: [round(float(np.quantile(d, 0.025)), 4), round(float(np.quantile(d, 0.975)), 4)]
            for name, d in diffs.items()}


def summarise(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean AP and ROC AUC over the seeds, median fit and predict times, trees per seed."""
    module, _, weighting = MODELS[name]
    first = runs[0]
    extra = {k: v for k, v in first.items() if k in ("scale_pos_weight", "min_child_weight")}
    latency_keys = [k for k in first if k.startswith("predict_")]
    return {
        "library": "riskstream GradientBoostedTrees (scikit-learn fit, compiled numba score)"
        if name == "product_gradient_boosted_trees" else module,
        "class_weighting": weighting,
        "holdout_ap": round(float(np.mean([r["holdout_ap"] for r in runs])), 4),
        "holdout_ap_by_seed": [r["holdout_ap"] for r in runs],
        "holdout_roc_auc": round(float(np.mean([r["holdout_roc_auc"] for r in runs])), 4),
        "holdout_roc_auc_by_seed": [r["holdout_roc_auc"] for r in runs],
        "fit_s": round(float(np.median([r["fit_s"] for r in runs])), 1),
        "trees_by_seed": [r["trees"] for r in runs],
        "rounds_built_by_seed": [r["rounds_built"] for r in runs],
        **{k: round(float(np.median([r[k] for r in runs])), 2) for k in latency_keys},
        **extra,
    }


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"scikit-learn": sklearn.__version__,
                                  "numpy": np.__version__}
    dists = importlib.metadata.packages_distributions()
    for module in ("lightgbm", "xgboost"):
        if importlib.util.find_spec(module) is None:
            out[module] = None
            continue
        # Which build: PyPI's "xgboost" wheel requires CUDA's NCCL on Linux, "xgboost-cpu"
        # is the same library without it.
        dist = (dists.get(module) or [module])[0]
        out[module] = f"{dist} {importlib.import_module(module).__version__}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input", type=Path, help="FDH transactions file (csv, csv.gz or parquet)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                    help="seeds of the validation split and the libraries (default 0 1 2)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one model, one seed
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.input, args.seeds[0], args.threads)))
        return

    t0 = time.perf_counter()
    frame = read_transactions(args.input, "fdh")
    labels = load_fdh_labels()(frame)
    got = supervised_matrix(frame, labels, parse_timestamp(TRAIN_END))
    replay_s = time.perf_counter() - t0
    del frame, labels
    inputs = np.ascontiguousarray(np.column_stack([got["X"], got["unsup"]]), dtype=np.float64)
    names = (*got["names"], sup.STACKED)
    y = got["y"]
    cut = int(len(y) * (1.0 - sup.HOLDOUT))  # the product's blend holdout: last rows by time
    y_fit, y_hold = y[:cut], y[cut:]
    print(f"matrix {inputs.shape} ({int(y.sum())} frauds) in {replay_s:.0f}s; fit {cut} rows, "
          f"holdout {len(y_hold)} ({int(y_hold.sum())} frauds)", flush=True)

    runs: dict[str, list[dict[str, Any]]] = {}
    scores: dict[str, list[np.ndarray]] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="fdh-gbm-") as tmp:
        data = Path(tmp) / "matrix.npz"
        np.savez(data, X_fit=inputs[:cut], y_fit=y_fit, X_hold=inputs[cut:], y_hold=y_hold,
                 names=np.array(names))
        for name, (module, _, _) in MODELS.items():
            if importlib.util.find_spec(module) is None:
                skipped[name] = f"{module} is not installed"
                continue
            for seed in args.seeds:
                # One process per fit: scikit-learn and LightGBM/XGBoost bring different
                # OpenMP runtimes, whose idle spinning threads slow one another down.
                cmd = [sys.executable, __file__, str(data), "--worker", name,
                       "--seeds", str(seed), "--threads", str(args.threads)]
                line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                run = json.loads(line.strip().splitlines()[-1])
                print(json.dumps({name: run}), flush=True)
                runs.setdefault(name, []).append(run)
                scores.setdefault(name, []).append(np.load(data.with_name(f"{name}-{seed}.npy")))

    results = {name: summarise(name, r) for name, r in runs.items()}
    for name, interval in block_bootstrap(y_hold, scores, REFERENCE).items():
        results[name]["ap_minus_sklearn_95"] = interval
    report: dict[str, Any] = {
        "benchmark": "fdh-gbm-choice",
        "input": args.input.name,
        "train_until": TRAIN_END,
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                 "platform": sys.platform, "threads": args.threads, "versions": versions()},
        "matrix": {
            "rows": len(y), "frauds": int(y.sum()), "columns": list(names),
            "fit_rows": cut, "fit_frauds": int(y_fit.sum()),
            "early_stopping_rows": int(np.ceil(cut * VALIDATION)), "holdout_rows": len(y_hold),
            "holdout_frauds": int(y_hold.sum()), "replay_s": round(replay_s, 1),
        },
        "settings": {"max_iter": MAX_ITER, "learning_rate": LEARNING_RATE, "leaves": LEAVES,
                     "min_samples_leaf": MIN_LEAF, "l2": L2, "patience": PATIENCE,
                     "validation_fraction": VALIDATION, "max_bins": BINS, "seeds": args.seeds},
        "method": "each (model, seed) fitted and timed in its own process; holdout_ap and "
                  "holdout_roc_auc are means over the seeds, fit_s and predict_* medians; "
                  "ap_minus_sklearn_95: 2.5-97.5 % of a block bootstrap of the holdout "
                  "(50 contiguous blocks, 200 draws) of the seed-mean AP minus "
                  f"{REFERENCE}'s",
        "unsupervised_surprisal_alone": evaluate(y_hold, got["unsup"][cut:]),
        "models": results,
        "skipped": skipped,
    }
    keys = ("holdout_ap", "holdout_roc_auc", "fit_s", "trees_by_seed")
    print(json.dumps({k: {m: r[m] for m in keys} for k, r in results.items()}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
