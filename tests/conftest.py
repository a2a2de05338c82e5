"""Shared test factories. Keep each fixture small and documented; append new ones below."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from riskstream.schema import CANONICAL_COLUMNS

#: 2024-01-01T00:00:00Z: a Monday, midnight UTC (hour of day 0).
T0 = 1_704_067_200.0

# Fixture types. Test modules spell them out locally (``Callable[..., pd.DataFrame]``) rather
# than importing this file, which is not an importable module under pytest's rules.
TxFactory = Callable[..., dict[str, Any]]
FrameFactory = Callable[..., pd.DataFrame]
StreamFactory = Callable[..., pd.DataFrame]


@pytest.fixture
def make_tx() -> TxFactory:
    """A valid raw transaction record (dict); ``drop=`` removes fields, kwargs override.

    E.g. ``make_tx(amount=-1, drop=("currency",))``.
    """

    def factory(*, drop: tuple[str, ...] = (), **overrides: Any) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "transaction_id": "tx-1",
            "timestamp": "2024-01-01T12:00:00Z",
            "user_id": "user-1",
            "amount": 42.5,
            "currency": "EUR",
            "merchant_id": "m-1",
            "merchant_category": "grocery",
            "city": "Paris",
            "country": "FR",
            "lat": 48.8566,
            "lon": 2.3522,
            "device_id": "dev-1",
            "channel": "pos",
        }
        rec.update(overrides)
        for name in drop:
            rec.pop(name, None)
        return rec

    return factory


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    defaults: dict[str, Any] = {
        "user_id": "u1",
        "amount": 50.0,
        "currency": "USD",
        "merchant_id": "",
        "merchant_category": "",
        "city": "",
        "country": "",
        "lat": np.nan,
        "lon": np.nan,
        "device_id": "",
        "channel": "pos",
    }
    filled = []
    for i, row in enumerate(rows):
        rec = {"transaction_id": f"tx-{i:06d}", "timestamp": T0 + i, **defaults, **row}
        filled.append(rec)
    frame = pd.DataFrame(filled)
    extras = [c for c in frame.columns if c not in CANONICAL_COLUMNS]
    frame = frame[list(CANONICAL_COLUMNS) + extras]
    frame["timestamp"] = frame["timestamp"].astype(np.float64)
    frame["amount"] = frame["amount"].astype(np.float64)
    frame["lat"] = frame["lat"].astype(np.float64)
    frame["lon"] = frame["lon"].astype(np.float64)
    return frame


@pytest.fixture
def make_frame() -> FrameFactory:
    """A validated-looking canonical batch from partial rows (epoch-second timestamps).

    Unset columns get neutral defaults: user ``u1``, amount 50, no merchant/device/location;
    ``transaction_id`` defaults to ``tx-<row>`` and ``timestamp`` to ``T0 + row``.
    """
    return _frame


def _stream(n: int = 2000, n_users: int = 40, n_merchants: int = 25, seed: int = 0,
            start: float = T0, days: float = 7.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # Distinct whole seconds: no two events tie, so any split into batches is in engine order.
    ts = start + np.sort(rng.choice(int(days * 86400), size=n, replace=False)).astype(float)
    users = rng.integers(0, n_users, n)
    merchants = rng.integers(0, n_merchants, n)
    # Each user lives in one of a few cities and has a typical spend level.
    cities = np.array([[48.8566, 2.3522], [51.5074, -0.1278], [52.52, 13.405], [40.4168, -3.7038]])
    home = users % len(cities)
    level = 20.0 + 10.0 * (users % 7)
    amount = np.round(level * rng.lognormal(0.0, 0.4, n), 2)
    return _frame(
        [
            {
                "timestamp": float(ts[i]),
                "user_id": f"u{users[i]}",
                "amount": float(amount[i]),
                "merchant_id": f"m{merchants[i]}",
                "merchant_category": f"cat{merchants[i] % 6}",
                "country": ("FR", "GB", "DE", "ES")[home[i]],
                "lat": float(cities[home[i], 0] + rng.normal(0, 0.02)),
                "lon": float(cities[home[i], 1] + rng.normal(0, 0.02)),
                "device_id": f"d{users[i]}-{int(rng.random() < 0.1)}",
            }
            for i in range(n)
        ]
    )


@pytest.fixture
def make_stream() -> StreamFactory:
    """A reproducible synthetic canonical stream, sorted by time (no fraud injected)."""
    return _stream
