"""Online Half-Space Trees (Tan, Ting & Liu, IJCAI 2011): a detector that keeps learning.

The algorithm River's ``anomaly.HalfSpaceTrees`` implements, compiled for micro-batches:
River's per-event ``learn_one``/``score_one`` runs at ~24k events/s here, far below the
core's budget, so the same trees are walked by numba loops instead (same structure: random
work ranges per dimension, midpoint splits on a random dimension, reference and latest mass
profiles swapped every ``window`` events, score = sum of reference mass x 2^depth at the
terminal node, reported as ``1 - score / max`` so higher = more anomalous).

Online use (see :meth:`ScoringCore.score`): a batch is scored against the current reference
masses, then the events the ensemble *allowed* are learned — anomalies are kept out of its
training, so an attack does not teach it that the attack is normal. The learned masses live
in the model object of the serving process: they restart from the registered model's masses
when a process restarts (documented in docs/models.md).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numba import njit

from riskstream.models.base import Detector


@njit(cache=True)
def _terminal_mass(x, split_dim, split_val, mass, tree, height, size_limit):  # pragma: no cover
    node = 0
    depth = 0
    while depth < height and mass[tree, node] > size_limit:
        go_right = x[split_dim[tree, node]] >= split_val[tree, node]
        node = 2 * node + 1 + go_right
        depth += 1
    return mass[tree, node] * 2.0**depth


@njit(cache=True)
def _score(X, split_dim, split_val, ref, height, size_limit):  # pragma: no cover
    n, n_trees = X.shape[0], split_dim.shape[0]
    out = np.zeros(n)
    for i in range(n):
        total = 0.0
        for t in range(n_trees):
            total += _terminal_mass(X[i], split_dim, split_val, ref, t, height, size_limit)
        out[i] = total
    return out


@njit(cache=True)
def _learn(X, mask, split_dim, split_val, ref, latest, counter, window, height):  # pragma: no cover
    n_trees = split_dim.shape[0]
    for i in range(X.shape[0]):
        if not mask[i]:
            continue
        for t in range(n_trees):
            node = 0
            latest[t, node] += 1.0
            for _ in range(height):
                if X[i, split_dim[t, node]] < split_val[t, node]:
                    node = 2 * node + 1
                else:
                    node = 2 * node + 2
                latest[t, node] += 1.0
        counter[0] += 1
        if counter[0] >= window:  # the latest window becomes the reference
            ref[:, :] = latest
            latest[:, :] = 0.0
            counter[0] = 0


class HalfSpaceTreesDetector(Detector):
    kind: ClassVar[str] = "half_space_trees"
    online: ClassVar[bool] = True

    def __init__(
        self, n_trees: int = 25, height: int = 8, window: int = 250, seed: int = 0
    ) -> None:
        # River's defaults (25 trees, height 15, window 250) but height 8: 511 nodes per tree
        # keep all masses in L2 cache, and with a 250-event window deeper nodes are empty.
        self.n_trees = n_trees
        self.height = height
        self.window = window
        self.seed = seed
        self.names: tuple[str, ...] = ()
        self._a: dict[str, np.ndarray] = {}

    @property
    def _size_limit(self) -> float:
        return 0.1 * self.window  # as in the paper: stop at nodes with < 10 % of a window

    def _scale(self, X: np.ndarray) -> np.ndarray:
        # Training range -> [0, 1], not clipped: the trees' work space reaches past it, and a
        # value far outside lands in a sparse edge node, which is what makes it anomalous.
        lo, span = self._a["lo"], self._a["span"]
        return (np.asarray(X, dtype=np.float64) - lo) / span

    def fit(self, X: np.ndarray, names: tuple[str, ...]) -> HalfSpaceTreesDetector:
        X = np.asarray(X, dtype=np.float64)
        rng = np.random.default_rng(self.seed)
        lo, hi = X.min(axis=0), X.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        n_nodes = 2 ** (self.height + 1) - 1
        d = X.shape[1]
        split_dim = np.zeros((self.n_trees, n_nodes), dtype=np.int64)
        split_val = np.zeros((self.n_trees, n_nodes))
        for t in range(self.n_trees):
            s = rng.uniform(size=d)
            sd = np.maximum(s, 1.0 - s)
            low, high = s - 2.0 * sd, s + 2.0 * sd  # work space (paper, section 3.1)
            ranges = {0: (low.copy(), high.copy())}
            for node in range(2**self.height - 1):  # internal nodes, breadth first
                node_lo, node_hi = ranges.pop(node)
                q = int(rng.integers(d))
                mid = (node_lo[q] + node_hi[q]) / 2.0
                split_dim[t, node], split_val[t, node] = q, mid
                left_hi, right_lo = node_hi.copy(), node_lo.copy()
                left_hi[q], right_lo[q] = mid, mid
                ranges[2 * node + 1] = (node_lo, left_hi)
                ranges[2 * node + 2] = (right_lo, node_hi)
        self._a = {
            "lo": lo,
            "span": span,
            "split_dim": split_dim,
            "split_val": split_val,
            "ref": np.zeros((self.n_trees, n_nodes)),
            "latest": np.zeros((self.n_trees, n_nodes)),
            "counter": np.zeros(1, dtype=np.int64),
        }
        self.names = tuple(names)
        # Warm both mass profiles on the most recent training windows.
        self.learn(X[-4 * self.window :] if len(X) > 4 * self.window else X)
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        if not self._a:
            raise RuntimeError("detector is not fitted")
        a = self._a
        raw = _score(
            self._scale(X), a["split_dim"], a["split_val"], a["ref"], self.height, self._size_limit
        )
        max_score = self.n_trees * self.window * 2.0**self.height
        return 1.0 - raw / max_score

    def learn(self, X: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Fold events into the latest mass profile (only rows where ``mask`` is true)."""
        a = self._a
        keep = np.ones(len(X), dtype=np.bool_) if mask is None else np.asarray(mask, np.bool_)
        _learn(
            self._scale(X),
            keep,
            a["split_dim"],
            a["split_val"],
            a["ref"],
            a["latest"],
            a["counter"],
            self.window,
            self.height,
        )

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {
            "kind": self.kind,
            "names": list(self.names),
            "n_trees": self.n_trees,
            "height": self.height,
            "window": self.window,
            "seed": self.seed,
        }
        return meta, {k: v.copy() for k, v in self._a.items()}

    @classmethod
    def from_arrays(
        cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> HalfSpaceTreesDetector:
        det = cls(int(meta["n_trees"]), int(meta["height"]), int(meta["window"]), int(meta["seed"]))
        det.names = tuple(meta["names"])
        det._a = {k: np.array(v) for k, v in arrays.items()}
        return det
