"""Shared plumbing of detectors trained with PyTorch and served from numpy weights."""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np

from riskstream.models.base import Detector


class NetworkDetector(Detector):
    """Hyper-parameters, training-row sampling and the weights' array round trip.

    Subclasses set ``default_epochs``, fill ``self._w`` (name -> float64 array) in ``fit`` and
    read it in ``score``; nothing here imports torch.
    """

    default_epochs: ClassVar[int] = 10

    def __init__(self, epochs: int | None = None, batch_size: int = 512, lr: float = 3e-3,
                 max_rows: int = 200_000, seed: int = 0) -> None:
        self.epochs = self.default_epochs if epochs is None else epochs
        self.batch_size = batch_size
        self.lr = lr
        #: Training uses at most this many rows (a uniform sample): enough for networks of a
        #: few hundred weights, and it keeps `train` within seconds.
        self.max_rows = max_rows
        self.seed = seed
        self.names: tuple[str, ...] = ()
        self._w: dict[str, np.ndarray] = {}

    def _training_rows(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if len(X) > self.max_rows:
            rng = np.random.default_rng(self.seed)
            X = X[rng.choice(len(X), self.max_rows, replace=False)]
        return X

    def _weights(self) -> dict[str, np.ndarray]:
        if not self._w:
            raise RuntimeError("detector is not fitted")
        return self._w

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {"kind": self.kind, "names": list(self.names), "epochs": self.epochs,
                "batch_size": self.batch_size, "lr": self.lr, "max_rows": self.max_rows,
                "seed": self.seed}
        return meta, dict(self._w)

    @classmethod
    def from_arrays(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Self:
        det = cls(int(meta["epochs"]), int(meta["batch_size"]), float(meta["lr"]),
                  int(meta["max_rows"]), int(meta["seed"]))
        det.names = tuple(meta["names"])
        det._w = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
        return det
