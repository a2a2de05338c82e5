"""The default feature set adapts to the data: features over columns it does not carry are
left out (and said so), and data with every column keeps them all."""

from __future__ import annotations

import pandas as pd

from riskstream.models.bundle import DEFAULT_MODEL_FEATURES
from riskstream.offline import replay


def test_features_over_missing_columns_are_left_out(sim_history: pd.DataFrame) -> None:
    full = sim_history.drop(columns=["label", "scenario"])
    bundle = replay.train(full)
    assert bundle.model_features == DEFAULT_MODEL_FEATURES
    assert bundle.info["features_dropped"] == []
    # The Fraud Detection Handbook's shape: amounts, cards and terminals, nothing else.
    bare = full.drop(columns=["device_id", "merchant_category", "city", "country", "lat", "lon"])
    thin = replay.train(bare)
    assert set(thin.info["features_dropped"]) == {
        "distance_km", "speed_kmh", "new_device", "new_category", "new_country"}
    assert set(thin.model_features) == set(DEFAULT_MODEL_FEATURES) - set(
        thin.info["features_dropped"])
    # An explicit choice is the user's: kept as given.
    asked = replay.train(bare, model_features=("log_amount", "new_device"))
    assert asked.model_features == ("log_amount", "new_device")
