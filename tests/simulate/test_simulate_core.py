"""Simulator contract: columns, reproducibility, validation, fraud rate, speed, file output."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskstream.schema import CANONICAL_COLUMNS, CHANNELS, CURRENCIES, validate_frame
from riskstream.simulate import ALL_SCENARIOS, OUTPUT_COLUMNS, SimConfig, simulate, write

SMALL = SimConfig(n_users=300, n_merchants=120, days=3, seed=5, fraud_rate=0.03)


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return simulate(SMALL)


def test_columns_types_and_order(small: pd.DataFrame) -> None:
    assert tuple(small.columns) == OUTPUT_COLUMNS == (*CANONICAL_COLUMNS, "label", "scenario")
    assert small["transaction_id"].is_unique
    assert small["transaction_id"].iloc[0] == "tx-00000001"
    assert small["timestamp"].dtype == np.float64
    assert small["timestamp"].is_monotonic_increasing
    start = SMALL.start_epoch
    assert small["timestamp"].min() >= start
    assert small["timestamp"].max() < start + SMALL.span_seconds
    assert set(small["label"].unique()) <= {0, 1}
    assert small["label"].dtype == np.int64
    assert ((small["scenario"] == "") == (small["label"] == 0)).all()
    assert set(small["scenario"]) <= {"", *ALL_SCENARIOS}
    assert set(small["channel"]) <= set(CHANNELS)
    assert set(small["currency"]) <= CURRENCIES
    assert (small["amount"] > 0).all()


def test_location_is_consistent(small: pd.DataFrame) -> None:
    online = small["city"] == ""
    assert small.loc[online, ["lat", "lon"]].isna().all().all()
    assert small.loc[~online, ["lat", "lon"]].notna().all().all()
    assert (small.loc[online, "country"] == "").all()
    assert set(small.loc[online, "channel"]) <= {"ecom", "transfer"}
    assert set(small.loc[~online, "channel"]) <= {"pos", "atm"}
    atm = small["merchant_category"] == "cash_withdrawal"
    assert (small.loc[atm, "channel"] == "atm").all()
    # Merchants never move.
    per_merchant = small.groupby("merchant_id")[["city", "merchant_category"]].nunique()
    assert (per_merchant <= 1).all().all()


def test_validates_with_zero_errors(small: pd.DataFrame) -> None:
    valid, errors = validate_frame(small)
    assert errors == []
    assert len(valid) == len(small)
    np.testing.assert_array_equal(valid["timestamp"].to_numpy(), small["timestamp"].to_numpy())


def test_reproducible(small: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(simulate(SMALL), small)
    other = simulate(SimConfig(n_users=300, n_merchants=120, days=3, seed=6, fraud_rate=0.03))
    assert not other.equals(small)


def test_start_shifts_timestamps_only() -> None:
    a = simulate(SimConfig(n_users=50, n_merchants=30, days=1))
    b = simulate(SimConfig(n_users=50, n_merchants=30, days=1, start="2024-01-02T00:00:00Z"))
    np.testing.assert_allclose(b["timestamp"] - a["timestamp"], 86_400.0, atol=2e-3)
    pd.testing.assert_frame_equal(a.drop(columns="timestamp"), b.drop(columns="timestamp"))


@pytest.mark.parametrize("rate", [0.01, 0.05])
def test_fraud_rate_is_approximately_respected(rate: float) -> None:
    frame = simulate(SimConfig(n_users=2000, n_merchants=400, days=7, seed=1, fraud_rate=rate))
    assert rate * 0.7 <= frame["label"].mean() <= rate * 1.3
    # Split roughly evenly: no scenario gets less than a third or more than 3x its share.
    share = frame.loc[frame["label"] == 1, "scenario"].value_counts(normalize=True)
    assert set(share.index) == set(ALL_SCENARIOS)
    assert share.between(1 / 18, 3 / 6).all()


def test_scenario_subset_and_no_fraud() -> None:
    sub = simulate(SimConfig(n_users=300, n_merchants=100, days=2, scenarios=("card_testing",)))
    assert set(sub["scenario"]) == {"", "card_testing"}
    clean = simulate(SimConfig(n_users=300, n_merchants=100, days=2, fraud_rate=0.0))
    assert clean["label"].sum() == 0
    none = simulate(SimConfig(n_users=300, n_merchants=100, days=2, scenarios=()))
    assert none["label"].sum() == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_users": 0},
        {"n_merchants": 1},
        {"days": 0},
        {"seed": -1},
        {"fraud_rate": 0.6},
        {"scenarios": ("phishing",)},
        {"start": "2024-01-01T00:00:00"},  # no zone
    ],
)
def test_invalid_config_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SimConfig(**kwargs)  # type: ignore[arg-type]


def test_scenarios_accepts_a_list() -> None:
    cfg = SimConfig(scenarios=["velocity_burst"])  # type: ignore[arg-type]
    assert cfg.scenarios == ("velocity_burst",)
    hash(cfg)  # still a usable frozen dataclass


def test_tiny_world_still_works() -> None:
    frame = simulate(SimConfig(n_users=3, n_merchants=2, days=1, fraud_rate=0.2))
    assert validate_frame(frame)[1] == []


def test_speed_200_users_7_days() -> None:
    t0 = time.perf_counter()
    frame = simulate(SimConfig(n_users=200, n_merchants=100, days=7))
    assert time.perf_counter() - t0 < 3.0
    assert len(frame) > 1000


def _same_after_validation(original: pd.DataFrame, loaded: pd.DataFrame) -> None:
    a, errors_a = validate_frame(original)
    b, errors_b = validate_frame(loaded)
    assert errors_a == errors_b == []
    np.testing.assert_allclose(b["timestamp"], a["timestamp"], rtol=0, atol=1e-3)
    for col in CANONICAL_COLUMNS:
        if col in ("timestamp", "lat", "lon", "amount"):
            continue
        assert b[col].astype(str).tolist() == a[col].astype(str).tolist(), col
    for col in ("lat", "lon", "amount"):
        np.testing.assert_allclose(b[col], a[col], rtol=1e-12, equal_nan=True)
    assert b["label"].astype(int).tolist() == a["label"].tolist()
    assert b["scenario"].fillna("").tolist() == a["scenario"].tolist()


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_write_csv_round_trip(small: pd.DataFrame, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / "sub" / f"tx{suffix}"
    write(small, path)
    loaded = pd.read_csv(path)
    first = str(loaded["timestamp"].iloc[0])
    assert first.startswith("2024-01-0") and first.endswith("Z")
    parsed = pd.to_datetime(loaded["timestamp"], utc=True, format="ISO8601")
    seconds = (parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    np.testing.assert_allclose(seconds, small["timestamp"], rtol=0, atol=1e-3)
    _same_after_validation(small, loaded)


def test_write_parquet_round_trip(small: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "tx.parquet"
    write(small, path)
    loaded = pd.read_parquet(path)
    pd.testing.assert_frame_equal(loaded, small, check_dtype=False)
    _same_after_validation(small, loaded)


def test_write_refuses_unknown_suffix(small: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        write(small, tmp_path / "tx.json")
