"""The compiled trees give scikit-learn's scores exactly, missing values included, and the
same after a save and load."""

from __future__ import annotations

import numpy as np
import pytest

from riskstream.models.supervised import GradientBoostedTrees


def walk(model: GradientBoostedTrees, X: np.ndarray) -> np.ndarray:
    """The plain reference: each row down each tree, node by node."""
    t = model._trees
    out = np.full(len(X), model.baseline)
    for i, row in enumerate(X):
        for node in t["roots"]:
            while not t["leaf"][node]:
                x = row[t["feature"][node]]
                go_left = t["missing_left"][node] if np.isnan(x) else x <= t["threshold"][node]
                node = t["left"][node] if go_left else t["right"][node]
            out[i] += t["value"][node]
    return out


@pytest.mark.parametrize("leaves", [7, 31, 64])
def test_compiled_scores_equal_scikit_learn_and_a_plain_walk(leaves: int) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(leaves)
    X = rng.normal(size=(6000, 5))
    X[rng.random(X.shape) < 0.05] = np.nan  # trees learn where missing values go
    y = ((np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) ** 2 + rng.normal(size=6000)) > 2.5)
    params = {"max_iter": 30, "max_leaf_nodes": leaves, "min_samples_leaf": 20}
    model = GradientBoostedTrees(**params).fit(X, y.astype(np.int8), tuple("abcde"))
    clf = HistGradientBoostingClassifier(
        max_iter=30, learning_rate=0.08, max_leaf_nodes=leaves, min_samples_leaf=20,
        l2_regularization=1.0, early_stopping=True, n_iter_no_change=20,
        validation_fraction=0.1, random_state=0, class_weight={0: 1.0, 1: 1.0},
    ).fit(X, y)
    test = rng.normal(size=(500, 5))
    test[rng.random(test.shape) < 0.1] = np.nan
    test[:20, 0] = model._trees["threshold"][~model._trees["leaf"]][:20]  # on a threshold
    got = model.decision(test)
    np.testing.assert_allclose(got, clf.decision_function(test), rtol=0, atol=1e-9)
    np.testing.assert_allclose(got, walk(model, test), rtol=0, atol=1e-12)
    again = GradientBoostedTrees.from_arrays(*model.to_arrays())
    np.testing.assert_array_equal(again.decision(test), got)
