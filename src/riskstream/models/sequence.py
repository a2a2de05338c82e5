"""Sequence detector: how surprising is this transaction given the user's last k?

Input: :data:`riskstream.features.spec.SEQUENCE`: the previous ``SEQ_LEN`` steps of the user
(log amount, log gap, hour sin/cos; zero rows before the user's first transaction), this
event's step, and the number of real previous steps. The window comes from the state store
like every other feature, so it is identical online and offline.

A GRU reads the previous steps; a linear head, given the GRU state and this event's hour,
predicts a Gaussian (mean, log-variance) for this event's log amount and log gap. The score
is the one-sided squared surprise: amount above, or gap below, what was predicted. Trained
with PyTorch (CPU, one thread); served by a numpy GRU, so serving needs no torch.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from riskstream.features.spec import SEQ_DIM, SEQ_LEN, SEQUENCE
from riskstream.models.network import NetworkDetector

_HIDDEN = 16  # a few hundred weights: enough for spend/timing rhythm, cheap to serve
_STD_FLOOR = 1e-6
#: Predicted log-variances are clamped to this range so a perfectly regular user cannot make
#: the likelihood explode (and the score with it).
_LOGVAR_MIN, _LOGVAR_MAX = -6.0, 6.0


def _split(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(previous steps (n, L, D), this step (n, D), real-step mask (n, L))."""
    n = len(X)
    prev = X[:, : SEQ_LEN * SEQ_DIM].reshape(n, SEQ_LEN, SEQ_DIM)
    now = X[:, SEQ_LEN * SEQ_DIM : SEQ_LEN * SEQ_DIM + SEQ_DIM]
    steps = X[:, -1]
    mask = (np.arange(SEQ_LEN)[None, :] >= SEQ_LEN - steps[:, None]).astype(np.float64)
    return prev, now, mask


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class SequenceDetector(NetworkDetector):
    kind: ClassVar[str] = "sequence"
    inputs: ClassVar[str] = "sequence"

    default_epochs: ClassVar[int] = 4

    def _inputs(self, X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, ...]:
        prev, now, mask = _split(np.asarray(X, dtype=np.float64))
        z_prev = (prev - mean) / std * mask[:, :, None]
        steps = np.concatenate([z_prev, mask[:, :, None]], axis=2)  # (n, L, D + 1)
        z_now = (now - mean) / std
        # The head knows when this event happens (hour) but must predict amount and gap.
        return steps, z_now[:, 2:4], z_now[:, 0:2]

    def fit(self, X: np.ndarray, names: tuple[str, ...]) -> SequenceDetector:
        import torch  # training-time dependency only

        if tuple(names) != SEQUENCE:
            raise ValueError("the sequence detector takes the SEQUENCE columns")
        torch.set_num_threads(1)
        torch.manual_seed(self.seed)
        X = self._training_rows(X)
        now = X[:, SEQ_LEN * SEQ_DIM : SEQ_LEN * SEQ_DIM + SEQ_DIM]
        mean = now.mean(axis=0)
        std = np.maximum(now.std(axis=0), _STD_FLOOR)
        steps, hour, target = (
            torch.tensor(a, dtype=torch.float32) for a in self._inputs(X, mean, std)
        )
        gru = torch.nn.GRU(SEQ_DIM + 1, _HIDDEN, batch_first=True)
        head = torch.nn.Linear(_HIDDEN + 2, 4)
        params = list(gru.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=self.lr)
        gen = torch.Generator().manual_seed(self.seed)
        for _ in range(self.epochs):
            perm = torch.randperm(len(steps), generator=gen)
            for start in range(0, len(steps), self.batch_size):
                idx = perm[start : start + self.batch_size]
                _, h = gru(steps[idx])
                out = head(torch.cat([h[0], hour[idx]], dim=1))
                mu, logvar = out[:, :2], out[:, 2:].clamp(_LOGVAR_MIN, _LOGVAR_MAX)
                loss = torch.mean(0.5 * (logvar + (target[idx] - mu) ** 2 / torch.exp(logvar)))
                opt.zero_grad()
                loss.backward()
                opt.step()
        self._w = {
            "mean": mean,
            "std": std,
            "W_ih": gru.weight_ih_l0.detach().numpy().astype(np.float64),
            "W_hh": gru.weight_hh_l0.detach().numpy().astype(np.float64),
            "b_ih": gru.bias_ih_l0.detach().numpy().astype(np.float64),
            "b_hh": gru.bias_hh_l0.detach().numpy().astype(np.float64),
            "W_out": head.weight.detach().numpy().astype(np.float64),
            "b_out": head.bias.detach().numpy().astype(np.float64),
        }
        self.names = tuple(names)
        return self

    def _forward(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        w = self._weights()
        steps, hour, target = self._inputs(X, w["mean"], w["std"])
        n, H = len(X), _HIDDEN
        h = np.zeros((n, H))
        # PyTorch GRU, gates in (reset, update, new) order.
        for t in range(SEQ_LEN):
            gi = steps[:, t] @ w["W_ih"].T + w["b_ih"]
            gh = h @ w["W_hh"].T + w["b_hh"]
            r = _sigmoid(gi[:, :H] + gh[:, :H])
            z = _sigmoid(gi[:, H : 2 * H] + gh[:, H : 2 * H])
            cand = np.tanh(gi[:, 2 * H :] + r * gh[:, 2 * H :])
            h = (1.0 - z) * cand + z * h
        out = np.concatenate([h, hour], axis=1) @ w["W_out"].T + w["b_out"]
        return out[:, :2], np.clip(out[:, 2:], _LOGVAR_MIN, _LOGVAR_MAX), target

    def score(self, X: np.ndarray) -> np.ndarray:
        """One-sided surprise: spending more than the sequence predicts, or arriving sooner.

        Spending less or later than expected is not risk; counting it (a two-sided
        likelihood) lets ordinary small purchases crowd out the alerts.
        """
        mu, logvar, target = self._forward(X)
        z = (target - mu) / np.exp(0.5 * logvar)
        return 0.5 * (np.maximum(z[:, 0], 0.0) ** 2 + np.maximum(-z[:, 1], 0.0) ** 2)

    def expected_amount(self, X: np.ndarray) -> np.ndarray:
        """The amount the model expected for each event (for reason wording)."""
        mu, _, _ = self._forward(X)
        return np.expm1(mu[:, 0] * self._w["std"][0] + self._w["mean"][0])
