"""Each fraud scenario shows up with its characteristic signature."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskstream.simulate import ALL_SCENARIOS, SimConfig, simulate
from riskstream.simulate.population import haversine_km

CONFIG = SimConfig(n_users=3000, n_merchants=600, days=7, seed=11, fraud_rate=0.02)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return simulate(CONFIG)


@pytest.fixture(scope="module")
def genuine(frame: pd.DataFrame) -> pd.DataFrame:
    """The cardholders' own purchases: legitimate rows plus those at compromised merchants
    (which are real purchases, only labelled fraud because the merchant was skimming)."""
    return frame[frame["scenario"].isin(["", "compromised_merchant"])]


def _incidents(frame: pd.DataFrame, name: str) -> list[pd.DataFrame]:
    """Rows of one scenario per victim (victims are distinct in a population this size)."""
    rows = frame[frame["scenario"] == name]
    groups = [g.sort_values("timestamp") for _, g in rows.groupby("user_id")]
    assert len(groups) >= 3, f"too few {name} incidents to test"
    return groups


def test_every_scenario_appears(frame: pd.DataFrame) -> None:
    assert set(frame["scenario"]) == {"", *ALL_SCENARIOS}


def test_card_testing_tiny_probes_then_a_large_one(frame: pd.DataFrame) -> None:
    for g in _incidents(frame, "card_testing"):
        probes, large = g.iloc[:-1], g.iloc[-1]
        assert 3 <= len(probes) <= 8
        assert probes["amount"].between(0.5, 2.0).all()
        assert large["amount"] >= 100 and large["amount"] > 10 * probes["amount"].max()
        assert (g["channel"] == "ecom").all()
        assert g["timestamp"].iloc[-1] - g["timestamp"].iloc[0] <= 20 * 60


def test_impossible_travel_implies_more_than_1000_kmh(frame: pd.DataFrame) -> None:
    located = frame[frame["lat"].notna()].sort_values("timestamp", kind="stable")
    prev = located.groupby("user_id")[["timestamp", "lat", "lon"]].shift(1)
    rows = located["scenario"] == "impossible_travel"
    assert rows.sum() >= 3
    assert prev.loc[rows, "timestamp"].notna().all()
    km = haversine_km(
        prev.loc[rows, "lat"], prev.loc[rows, "lon"], located.loc[rows, "lat"],
        located.loc[rows, "lon"],
    )
    hours = (located.loc[rows, "timestamp"] - prev.loc[rows, "timestamp"]) / 3600
    assert (hours > 0).all() and (hours <= 1.0 + 1e-6).all()
    assert (km / hours > 1000).all()


def test_impossible_travel_uses_the_users_device(
    frame: pd.DataFrame, genuine: pd.DataFrame
) -> None:
    for g in _incidents(frame, "impossible_travel"):
        user = g["user_id"].iat[0]
        assert set(g["device_id"]) <= set(genuine.loc[genuine["user_id"] == user, "device_id"])


def test_legitimate_trips_are_never_impossible(genuine: pd.DataFrame) -> None:
    # Between two *different cities*, consecutive legitimate in-person purchases of a user
    # never imply airliner-beating speed (trips block in-person purchases while travelling).
    located = genuine[genuine["lat"].notna()].sort_values("timestamp", kind="stable")
    prev = located.groupby("user_id")[["timestamp", "lat", "lon", "city"]].shift(1)
    moved = prev["city"].notna() & (prev["city"] != located["city"])
    assert moved.sum() > 0  # some users do travel
    km = haversine_km(prev.loc[moved, "lat"], prev.loc[moved, "lon"],
                      located.loc[moved, "lat"], located.loc[moved, "lon"])
    hours = (located.loc[moved, "timestamp"] - prev.loc[moved, "timestamp"]) / 3600
    assert (km / hours < 1000).all()


def test_account_takeover_new_device_far_away_high_amounts(
    frame: pd.DataFrame, genuine: pd.DataFrame
) -> None:
    for g in _incidents(frame, "account_takeover"):
        user = g["user_id"].iat[0]
        own = frame[(frame["user_id"] == user) & (frame["scenario"] != "account_takeover")]
        assert not set(g["device_id"]) & set(own["device_id"]), "device seen before"
        assert g["device_id"].nunique() == 1
        assert 2 <= len(g) <= 5
        assert g["timestamp"].iloc[-1] - g["timestamp"].iloc[0] <= 12 * 3600
        history = genuine[genuine["user_id"] == user]
        assert g["country"].iat[0] != ""  # the first purchase is in person, abroad
        seen = history.loc[history["country"] != "", "country"]
        if len(seen):  # users who only ever shop online have no visible home country
            abroad = g[g["country"] != ""]
            assert (abroad["country"] != seen.mode().iat[0]).all()
        assert (g["amount"] >= 2 * history["amount"].median()).all()


def test_spending_spike_far_above_usual_at_usual_merchant(
    frame: pd.DataFrame, genuine: pd.DataFrame
) -> None:
    for g in _incidents(frame, "spending_spike"):
        user = g["user_id"].iat[0]
        history = genuine[genuine["user_id"] == user]
        assert (g["amount"] >= 3 * history["amount"].median()).all()
        assert set(g["merchant_id"]) <= set(history["merchant_id"])
        assert set(g["device_id"]) <= set(history["device_id"])


def test_compromised_merchant_labels_everything_in_its_window(frame: pd.DataFrame) -> None:
    rows = frame[frame["scenario"] == "compromised_merchant"]
    merchants = rows["merchant_id"].unique()
    assert len(merchants) >= 1
    for merchant in merchants:
        hit = rows[rows["merchant_id"] == merchant]
        lo, hi = hit["timestamp"].min(), hit["timestamp"].max()
        assert hi - lo <= 3 * 86_400
        at = frame[(frame["merchant_id"] == merchant) & frame["timestamp"].between(lo, hi)]
        assert (at["label"] == 1).all()
        assert (at["city"] != "").all()  # an in-person (skimmed) merchant
    # Amounts look normal: only merchant-level aggregates or feedback give it away.
    typical = frame.loc[frame["label"] == 0, "amount"].median()
    assert 0.3 * typical <= rows["amount"].median() <= 3 * typical


def test_velocity_burst_many_transactions_within_an_hour(
    frame: pd.DataFrame, genuine: pd.DataFrame
) -> None:
    for g in _incidents(frame, "velocity_burst"):
        user = g["user_id"].iat[0]
        assert 8 <= len(g) <= 20
        assert g["timestamp"].iloc[-1] - g["timestamp"].iloc[0] <= 3600
        assert g["merchant_id"].nunique() >= 3
        own = set(genuine.loc[genuine["user_id"] == user, "device_id"])
        assert set(g["device_id"]) <= own


def test_fraud_victims_have_history(frame: pd.DataFrame, genuine: pd.DataFrame) -> None:
    victims = frame.loc[
        frame["scenario"].isin([s for s in ALL_SCENARIOS if s != "compromised_merchant"]),
        "user_id",
    ].unique()
    counts = genuine["user_id"].value_counts()
    assert (counts.reindex(victims).fillna(0) >= 3).all()


def test_scenario_rows_inside_the_window(frame: pd.DataFrame) -> None:
    ts = frame["timestamp"].to_numpy()
    assert np.all(ts >= CONFIG.start_epoch)
    assert np.all(ts < CONFIG.start_epoch + CONFIG.span_seconds)
