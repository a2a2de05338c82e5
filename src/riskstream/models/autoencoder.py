"""Autoencoder detector: reconstruction error of the standardised feature vector.

Trained with PyTorch (CPU, one thread) when it is installed; served with plain numpy weights,
so scoring needs no torch. The network is a small symmetric MLP ``F -> h -> b -> h -> F`` with
tanh activations; ``score`` is the mean squared reconstruction error per row and
``feature_errors`` gives it per feature (evidence for reason codes).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from riskstream.models.network import NetworkDetector

#: Standardisation floor: a constant training feature must not divide by zero.
_STD_FLOOR = 1e-6


class AutoencoderDetector(NetworkDetector):
    kind: ClassVar[str] = "autoencoder"

    default_epochs: ClassVar[int] = 15

    @staticmethod
    def _sizes(n_features: int) -> tuple[int, int]:
        return max(2, n_features // 2 + 1), max(1, n_features // 4)

    def fit(self, X: np.ndarray, names: tuple[str, ...]) -> AutoencoderDetector:
        import torch  # training-time dependency only

        torch.set_num_threads(1)
        torch.manual_seed(self.seed)
        X = self._training_rows(X)
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
        w = self._weights()
        z = (np.asarray(X, dtype=np.float64) - w["mean"]) / w["std"]
        h = np.tanh(z @ w["W0"] + w["b0"])
        h = np.tanh(h @ w["W1"] + w["b1"])
        h = np.tanh(h @ w["W2"] + w["b2"])
        out = h @ w["W3"] + w["b3"]
        return (out - z) ** 2

    def score(self, X: np.ndarray) -> np.ndarray:
        return self.feature_errors(X).mean(axis=1)

    def feature_scores(self, X: np.ndarray) -> np.ndarray:
        return self.feature_errors(X)
