"""stream(): live, time-ordered micro-batches with unique ids across windows, paced by rate."""

from __future__ import annotations

import itertools
import time

import pandas as pd
import pytest

from riskstream.schema import validate_frame
from riskstream.simulate import OUTPUT_COLUMNS, SimConfig, simulate, stream

# About 60-80 rows per one-day window, so a few hundred rows cover several windows.
TINY = SimConfig(n_users=40, n_merchants=30, days=1, seed=3, fraud_rate=0.05)


def test_batches_are_live_ordered_and_unique_across_windows() -> None:
    window_rows = len(simulate(TINY))
    before = time.time()
    batches = list(itertools.islice(stream(TINY, batch_size=50), 12))
    assert all(len(b) == 50 for b in batches)
    assert all(tuple(b.columns) == OUTPUT_COLUMNS for b in batches)
    allrows = pd.concat(batches, ignore_index=True)
    assert len(allrows) > 3 * window_rows  # several windows were consumed
    assert allrows["transaction_id"].is_unique
    assert allrows["timestamp"].is_monotonic_increasing
    # Rebased to "now" and spaced like the simulation (rate=None keeps real spacing).
    assert before - 1 <= allrows["timestamp"].iat[0] <= time.time() + 1
    assert allrows["timestamp"].iat[-1] - allrows["timestamp"].iat[0] > 3 * 86_400 * 0.9
    assert validate_frame(allrows)[1] == []
    assert allrows["label"].sum() > 0


def test_first_window_matches_simulate() -> None:
    sim = simulate(TINY)
    first = next(stream(TINY, batch_size=len(sim)))
    cols = [c for c in OUTPUT_COLUMNS if c != "timestamp"]
    pd.testing.assert_frame_equal(first[cols], sim[cols])
    offsets = first["timestamp"] - first["timestamp"].iat[0]
    expected = sim["timestamp"] - sim["timestamp"].iat[0]
    assert (offsets - expected).abs().max() < 2e-3


def test_same_population_across_windows() -> None:
    rows = pd.concat(list(itertools.islice(stream(TINY, batch_size=100), 6)))
    assert set(rows["user_id"]) <= set(simulate(TINY)["user_id"]) | {
        f"u-{i:06d}" for i in range(1, TINY.n_users + 1)
    }


def test_rate_paces_the_stream() -> None:
    rate, batch = 400.0, 20
    gen = stream(TINY, rate=rate, batch_size=batch)
    t0 = time.perf_counter()
    batches = list(itertools.islice(gen, 15))  # 300 rows: ~0.75 s at 400/s
    elapsed = time.perf_counter() - t0
    rows = pd.concat(batches, ignore_index=True)
    assert rows["timestamp"].is_monotonic_increasing
    assert rows["transaction_id"].is_unique
    # The stream sleeps until each batch's last event is due (never early).
    assert elapsed >= rows["timestamp"].iat[-1] - rows["timestamp"].iat[0] - 0.05
    assert 0.5 * rate <= len(rows) / elapsed <= 2.0 * rate


@pytest.mark.parametrize("kwargs", [{"rate": 0.0}, {"batch_size": 0}])
def test_stream_refuses_bad_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        next(stream(TINY, **kwargs))  # type: ignore[arg-type]
