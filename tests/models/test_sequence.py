"""The served GRU (numba, float64) computes exactly what PyTorch's GRU computes with the same
weights, so training in torch and serving without it score the same."""

from __future__ import annotations

import numpy as np
import pytest

from riskstream.features.spec import SEQUENCE
from riskstream.models import sequence as sq

torch = pytest.importorskip("torch")  # training extra; installed by `make test`


def test_served_gru_equals_torch_gru() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, len(SEQUENCE)))
    X[:, -1] = rng.integers(0, sq.SEQ_LEN + 1, len(X))  # real previous steps, 0..8
    det = sq.SequenceDetector(epochs=1, seed=1).fit(X, SEQUENCE)
    w = det._weights()
    steps, hour, _ = det._inputs(X, w["mean"], w["std"])
    gru = torch.nn.GRU(steps.shape[2], sq._HIDDEN, batch_first=True).double()
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            key = {"weight_ih_l0": "W_ih", "weight_hh_l0": "W_hh",
                   "bias_ih_l0": "b_ih", "bias_hh_l0": "b_hh"}[name]
            getattr(gru, name).copy_(torch.tensor(w[key]))
        _, h = gru(torch.tensor(steps))
    head = np.concatenate([h[0].numpy(), hour], axis=1) @ w["W_out"].T + w["b_out"]
    mu, logvar, _ = det._forward(X)
    np.testing.assert_allclose(mu, head[:, :2], rtol=0, atol=1e-12)
    np.testing.assert_allclose(logvar, np.clip(head[:, 2:], sq._LOGVAR_MIN, sq._LOGVAR_MAX),
                               rtol=0, atol=1e-12)
