"""Autoencoder detector: reconstruction error of the standardised feature vector.

Trained with PyTorch (CPU, one thread) when it is installed; served with plain numpy weights,
so scoring needs no torch. The network is a small symmetric MLP ``F -> h -> b -> h -> F`` with
tanh activations; ``score`` is the mean squared reconstruction error per row and
``feature_errors`` gives it per feature (evidence for reason codes).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from riskstream.models.base import Detector

#: Standardisation floor: a constant training feature must not divide by zero.
_STD_FLOOR = 1e-6


class AutoencoderDetector(Detector):
    kind: ClassVar[str] = "autoencoder"

    def __init__(
        self,
        epochs: int = 15,
        batch_size: int = 512,
        lr: float = 3e-3,
        max_rows: int = 200_000,
        seed: int = 0,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        #: Training uses at most this many rows (a uniform sample): enough for a network of
        #: a few hundred weights, and it keeps `train` within seconds.
        self.max_rows = max_rows
        self.seed = seed
        self.names: tuple[str, ...] = ()
        self._w: dict[str, np.ndarray] = {}

    @staticmethod
    def _sizes(n_features: int) -> tuple[int, int]:
        return max(2, n_features // 2 + 1), max(1, n_features // 4)

    def fit(self, X: np.ndarray, names: tuple[str, ...]) -> AutoencoderDetector:
        import torch  # training-time dependency only

        torch.set_num_threads(1)
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        X = np.asarray(X, dtype=np.float64)
        if len(X) > self.max_rows:
            X = X[rng.choice(len(X), self.max_rows, replace=False)]
        mean = X.mean(axis=0)
        std = np.maximum(X.std(axis=0), _STD_FLOOR)
        Z = torch.tensor((X - mean) / std, dtype=torch.float32)
        n_feat = X.shape[1]
        hidden, bottleneck = self._sizes(n_feat)
        net = torch.nn.Sequential(
            torch.nn.Linear(n_feat, hidden),
            torch.nn.Tanh(),
            torch.nn.Linear(hidden, bottleneck),
            torch.nn.Tanh(),
            torch.nn.Linear(bottleneck, hidden),
            torch.nn.Tanh(),
            torch.nn.Linear(hidden, n_feat),
        )
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        gen = torch.Generator().manual_seed(self.seed)
        for _ in range(self.epochs):
            perm = torch.randperm(len(Z), generator=gen)
            for start in range(0, len(Z), self.batch_size):
                batch = Z[perm[start : start + self.batch_size]]
                opt.zero_grad()
                loss = torch.mean((net(batch) - batch) ** 2)
                loss.backward()
                opt.step()
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        self._w = {"mean": mean, "std": std}
        for k, layer in enumerate(linears):
            self._w[f"W{k}"] = layer.weight.detach().numpy().astype(np.float64).T.copy()
            self._w[f"b{k}"] = layer.bias.detach().numpy().astype(np.float64).copy()
        self.names = tuple(names)
        return self

    def feature_errors(self, X: np.ndarray) -> np.ndarray:
        """Squared reconstruction error per row and feature (standardised units)."""
        if not self._w:
            raise RuntimeError("detector is not fitted")
        w = self._w
        z = (np.asarray(X, dtype=np.float64) - w["mean"]) / w["std"]
        h = np.tanh(z @ w["W0"] + w["b0"])
        h = np.tanh(h @ w["W1"] + w["b1"])
        h = np.tanh(h @ w["W2"] + w["b2"])
        out = h @ w["W3"] + w["b3"]
        return (out - z) ** 2

    def score(self, X: np.ndarray) -> np.ndarray:
        return self.feature_errors(X).mean(axis=1)

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {
            "kind": self.kind,
            "names": list(self.names),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "max_rows": self.max_rows,
            "seed": self.seed,
        }
        return meta, dict(self._w)

    @classmethod
    def from_arrays(
        cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> AutoencoderDetector:
        det = cls(
            int(meta["epochs"]),
            int(meta["batch_size"]),
            float(meta["lr"]),
            int(meta["max_rows"]),
            int(meta["seed"]),
        )
        det.names = tuple(meta["names"])
        det._w = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
        return det
