"""The supervised reference's per-card window features (benchmarks/fdh_supervised_reference.py)."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from support import load_benchmark

DAY = 86_400.0


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    return load_benchmark("fdh_supervised_reference")


def test_card_window_features_read_only_the_same_cards_earlier_payments(
    reference: ModuleType,
) -> None:
    # Rows deliberately out of order: the function sorts by (card, time) and puts results
    # back in the input order.
    frame = pd.DataFrame(
        {
            "user_id": [1, 2, 1, 1, 1, 2],
            "timestamp": [0.0, 1.0, 1 * DAY, 2 * DAY, 20 * DAY, 2 * DAY],
            "amount_z": [3.0, 4.0, 0.5, 2.6, 0.0, 0.0],
        }
    )
    out = reference.card_window_features(frame, clip_z=2.5)
    assert list(out.columns) == list(reference.CARD_COLUMNS)
    # card 1: day 0 outlier (z 3), day 1 ordinary, day 2 outlier (2.6), day 20 ordinary
    np.testing.assert_array_equal(out["outliers_14d"], [0, 0, 1, 1, 0, 1])
    np.testing.assert_array_equal(out["max_z_14d"], [-10.0, -10.0, 3.0, 3.0, -10.0, 4.0])
    np.testing.assert_allclose(out["days_since_outlier"], [1e3, 1e3, 1.0, 2.0, 18.0, 2 - 1 / DAY])
    np.testing.assert_array_equal(out["payments_since_outlier"], [1e3, 1e3, 1, 2, 1, 1])
