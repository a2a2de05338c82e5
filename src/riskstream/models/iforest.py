"""Isolation Forest: fitted with scikit-learn, served by a compiled numpy/numba tree walk.

Serving needs no scikit-learn object: the fitted trees are flattened into arrays (feature,
threshold, children, leaf path length) and scored with a numba loop that reproduces
``IsolationForest.score_samples`` exactly (up to sign: here higher = more anomalous).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from numba import njit

from riskstream.models.base import Detector

_EULER = 0.5772156649015329


def average_path_length(n: np.ndarray) -> np.ndarray:
    """Expected path length of an unsuccessful BST search among ``n`` points (Liu et al.)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + _EULER) - 2.0 * (n[big] - 1.0) / n[big]
    return out


_LANES = 8  # rows walked in lockstep: their independent load chains overlap in the CPU


@njit(cache=True)
def _score(X, feature, threshold, child, leaf_depth, roots, heights, norm):  # pragma: no cover
    n, n_trees = X.shape[0], roots.shape[0]
    total = np.zeros(n)
    nodes = np.empty(_LANES, dtype=np.int64)
    # Tree-outer: one tree's nodes stay in cache while every row walks it. Children of a node
    # are adjacent (child, child + 1), so a step is branch-free.
    for t in range(n_trees):
        root = roots[t]
        for i0 in range(0, n, _LANES):
            lanes = min(_LANES, n - i0)
            for j in range(lanes):
                nodes[j] = root
            for _ in range(heights[t]):
                for j in range(lanes):
                    nd = nodes[j]
                    c = child[nd]
                    if c >= 0:
                        nodes[j] = c + (X[i0 + j, feature[nd]] > threshold[nd])
            for j in range(lanes):
                total[i0 + j] += leaf_depth[nodes[j]]
    out = np.empty(n)
    for i in range(n):
        out[i] = 2.0 ** (-(total[i] / n_trees) / norm)
    return out


def _breadth_first(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """New order of a tree's nodes (breadth first) so every node's two children are adjacent."""
    order = [0]
    k = 0
    while k < len(order):
        node = order[k]
        if left[node] >= 0:
            order += [int(left[node]), int(right[node])]
        k += 1
    return np.array(order, dtype=np.int64)


class IsolationForestDetector(Detector):
    """Isolation Forest (Liu, Ting & Zhou 2008). Score in (0, 1]; ~0.5 is ordinary."""

    kind: ClassVar[str] = "isolation_forest"

    def __init__(self, n_estimators: int = 100, max_samples: int = 2048, seed: int = 0) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.seed = seed
        self.names: tuple[str, ...] = ()
        self._arrays: dict[str, np.ndarray] = {}
        self._norm = 1.0

    def fit(self, X: np.ndarray, names: tuple[str, ...]) -> IsolationForestDetector:
        from sklearn.ensemble import IsolationForest  # training-time dependency only

        model = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, len(X)),
            random_state=self.seed,
        ).fit(np.asarray(X, dtype=np.float64))
        self.names = tuple(names)
        feats, thrs, childs, depths, roots, heights = [], [], [], [], [], []
        offset = 0
        for est, cols in zip(model.estimators_, model.estimators_features_, strict=True):
            tree = est.tree_
            left, right = tree.children_left.copy(), tree.children_right.copy()
            depth = np.zeros(tree.node_count)
            for node in range(tree.node_count):  # parents precede children in sklearn trees
                if left[node] >= 0:
                    depth[left[node]] = depth[right[node]] = depth[node] + 1
            leaf = left < 0
            depth[leaf] += average_path_length(tree.n_node_samples[leaf])
            order = _breadth_first(left, right)
            new_id = np.empty_like(order)
            new_id[order] = np.arange(len(order))
            first_child = np.where(leaf[order], -1, new_id[left[order]] + offset)
            feats.append(np.asarray(cols)[np.maximum(tree.feature[order], 0)])
            thrs.append(tree.threshold[order])
            childs.append(first_child)
            depths.append(depth[order])
            roots.append(offset)
            heights.append(int(tree.max_depth))
            offset += tree.node_count
        self._arrays = {
            "feature": np.concatenate(feats).astype(np.int64),
            "threshold": np.concatenate(thrs).astype(np.float64),
            "child": np.concatenate(childs).astype(np.int64),
            "leaf_depth": np.concatenate(depths),
            "roots": np.array(roots, dtype=np.int64),
            "heights": np.array(heights, dtype=np.int64),
        }
        self._norm = float(average_path_length(np.array([model.max_samples_]))[0])
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        if not self._arrays:
            raise RuntimeError("detector is not fitted")
        # scikit-learn compares float32 features against float64 thresholds; so do we.
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        a = self._arrays
        return _score(
            X32,
            a["feature"],
            a["threshold"],
            a["child"],
            a["leaf_depth"],
            a["roots"],
            a["heights"],
            self._norm,
        )

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {
            "kind": self.kind,
            "names": list(self.names),
            "norm": self._norm,
            "n_estimators": self.n_estimators,
            "max_samples": self.max_samples,
            "seed": self.seed,
        }
        return meta, dict(self._arrays)

    @classmethod
    def from_arrays(
        cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> IsolationForestDetector:
        det = cls(int(meta["n_estimators"]), int(meta["max_samples"]), int(meta["seed"]))
        det.names = tuple(meta["names"])
        det._norm = float(meta["norm"])
        det._arrays = {k: np.asarray(v) for k, v in arrays.items()}
        if not math.isfinite(det._norm) or det._norm <= 0:
            raise ValueError("corrupt model: bad normaliser")
        return det
