"""Feature kernel against hand-computed values (default FeatureParams) and its invariants."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from riskstream.features import (
    FEATURES,
    FeatureEngine,
    InMemoryStateStore,
    LabelChanges,
    hash_column,
)
from riskstream.features import spec as S
from riskstream.features.spec import F, FeatureParams

FrameFactory = Callable[..., pd.DataFrame]  # the make_frame fixture (tests/conftest.py)
StreamFactory = Callable[..., pd.DataFrame]  # the make_stream fixture

T0 = 1_704_067_200.0  # 2024-01-01T00:00:00Z, hour of day 0
P = FeatureParams()
PRIOR = math.log1p(50.0)
PARIS = (48.8566, 2.3522)
LONDON = (51.5074, -0.1278)
NEW_YORK = (40.7128, -74.0060)


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Independent great-circle distance (R = 6371.0088 km)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


def run(frame: pd.DataFrame, store: InMemoryStateStore, apply: bool = True) -> np.ndarray:
    """Features of ``frame``; the state change is saved (as a caller would after a write)."""
    batch = FeatureEngine().compute(frame, store, apply=apply)
    batch.update.save(store)
    return batch.features


def feat(features: np.ndarray, name: str) -> np.ndarray:
    return features[:, F[name]]


def user(store: InMemoryStateStore, key: str = "u1") -> np.ndarray:
    rec = store.get("user", key)
    assert rec is not None
    return rec


def dump(store: InMemoryStateStore) -> dict[str, bytes]:
    """Every stored record, as bytes, keyed by namespace (order-independent)."""
    out = {}
    for ns in ("user", "merchant"):
        keys = sorted(store._rows[ns])
        out[ns] = ",".join(keys).encode() + store.load(ns, keys).tobytes()
    return out


@pytest.fixture
def store() -> InMemoryStateStore:
    return InMemoryStateStore()


# --- cold start ----------------------------------------------------------------------------------
def test_first_transaction_of_a_user(make_frame: FrameFactory, store: InMemoryStateStore) -> None:
    f = run(make_frame([{"amount": 100.0, "merchant_id": "m1", "device_id": "d1",
                         "merchant_category": "food", "country": "FR",
                         "lat": PARIS[0], "lon": PARIS[1]}]), store)
    assert f.shape == (1, len(FEATURES))
    la = math.log1p(100.0)
    expected = {
        "log_amount": la,
        "amount_z": (la - PRIOR) / 1.0,  # w = 0: all prior, sd = sqrt(prior_var) = 1
        "amount_ratio": 100.0 / 50.0,  # usual = expm1(prior_mean) = 50
        "log_secs_since_last": math.log1p(30 * 86400.0),
        "tx_count_1h": 1.0,
        "tx_count_24h": 1.0,
        "tx_count_7d": 1.0,
        "amount_sum_1h_ratio": 2.0,
        "amount_sum_24h_ratio": 2.0,
        "distance_km": 0.0,
        "speed_kmh": 0.0,
        "new_device": 0.0,
        "new_merchant": 0.0,
        "new_category": 0.0,
        "new_country": 0.0,
        "hour_rarity": 0.0,
        "merchant_amount_z": la - PRIOR,
        "merchant_tx_count_24h": 1.0,
        "user_history": 0.0,
        "recent_amount_outliers": 0.0,
        "context_amount_ratio": 100.0 / 50.0,  # no recent outliers: the plain ratio
        # No label yet: nothing known, rates at their prior, "never" for days since.
        "merchant_frauds_1d": 0.0,
        "merchant_frauds_7d": 0.0,
        "merchant_frauds_30d": 0.0,
        "merchant_tx_count_7d": 0.0,  # earlier transactions there: none
        "merchant_tx_count_30d": 0.0,
        "merchant_fraud_rate_1d": 0.005,
        "merchant_fraud_rate_7d": 0.005,
        "merchant_fraud_rate_30d": 0.005,
        "merchant_days_since_fraud": 365.0,
        "user_known_compromised": 0.0,
        "user_frauds_30d": 0.0,
        "user_days_since_fraud": 365.0,
    }
    assert set(expected) == set(FEATURES)
    for name, value in expected.items():
        assert feat(f, name)[0] == pytest.approx(value, rel=1e-12, abs=1e-12), name


def test_first_transaction_updates_state(make_frame: FrameFactory,
                                         store: InMemoryStateStore) -> None:
    run(make_frame([{"transaction_id": "a", "amount": 100.0, "timestamp": T0 + 36000,
                     "lat": PARIS[0], "lon": PARIS[1]}]), store)
    rec = user(store)
    assert rec.shape == (S.USER_WIDTH,)
    assert rec[S.U_N] == 1.0
    assert rec[S.U_LAST_TS] == T0 + 36000
    assert rec[S.U_LAST_TB] == hash_column(pd.Series(["a"]))[0]
    assert rec[S.U_MEAN] == pytest.approx(math.log1p(100.0))
    assert rec[S.U_VAR] == 0.0
    assert (rec[S.U_LAT], rec[S.U_LON], rec[S.U_LOC_TS]) == (*PARIS, T0 + 36000)
    assert rec[S.U_HOURS + 10] == 1.0
    assert rec[S.U_HOURS: S.U_HOURS + 24].sum() == 1.0
    assert (rec[S.U_C1H], rec[S.U_S1H], rec[S.U_C7D], rec[S.U_S7D]) == (1.0, 100.0, 1.0, 100.0)


def test_second_transaction_thirty_minutes_later(make_frame: FrameFactory,
                                                 store: InMemoryStateStore) -> None:
    a1, a2 = 100.0, 400.0
    f = run(make_frame([{"amount": a1, "timestamp": T0},
                        {"amount": a2, "timestamp": T0 + 1800}]), store)
    la1, la2 = math.log1p(a1), math.log1p(a2)
    w = 1.0 / (1.0 + 3.0)
    mean = w * la1 + (1 - w) * PRIOR
    var = w * 0.0 + (1 - w) * 1.0
    usual = math.expm1(mean)
    assert feat(f, "log_amount")[1] == pytest.approx(la2)
    assert feat(f, "amount_z")[1] == pytest.approx((la2 - mean) / math.sqrt(var), rel=1e-12)
    assert feat(f, "amount_ratio")[1] == pytest.approx(a2 / usual, rel=1e-12)
    assert feat(f, "log_secs_since_last")[1] == pytest.approx(math.log1p(1800.0))
    assert feat(f, "tx_count_1h")[1] == pytest.approx(math.exp(-0.5) + 1.0, rel=1e-12)
    assert feat(f, "tx_count_24h")[1] == pytest.approx(math.exp(-1800 / 86400) + 1.0, rel=1e-12)
    assert feat(f, "tx_count_7d")[1] == pytest.approx(math.exp(-1800 / 604800) + 1.0, rel=1e-12)
    s1 = a1 * math.exp(-0.5) + a2
    s24 = a1 * math.exp(-1800 / 86400) + a2
    assert feat(f, "amount_sum_1h_ratio")[1] == pytest.approx(s1 / usual, rel=1e-12)
    assert feat(f, "amount_sum_24h_ratio")[1] == pytest.approx(s24 / usual, rel=1e-12)
    assert feat(f, "user_history")[1] == pytest.approx(math.log1p(1.0))
    # State: the exact running mean/variance of the two log amounts (alpha = 1/n early on).
    rec = user(store)
    assert rec[S.U_N] == 2.0
    assert rec[S.U_MEAN] == pytest.approx((la1 + la2) / 2, rel=1e-12)
    assert rec[S.U_VAR] == pytest.approx(((la2 - la1) / 2) ** 2, rel=1e-12)
    assert rec[S.U_C1H] == pytest.approx(math.exp(-0.5) + 1.0)
    assert rec[S.U_S1H] == pytest.approx(s1)


def test_split_over_two_batches_is_the_same(make_frame: FrameFactory) -> None:
    rows = [{"amount": 100.0, "timestamp": T0}, {"amount": 400.0, "timestamp": T0 + 1800}]
    one, two = InMemoryStateStore(), InMemoryStateStore()
    together = run(make_frame(rows), one)
    first = run(make_frame(rows[:1]), two)
    second = run(make_frame(rows[1:]).assign(transaction_id="tx-000001"), two)
    np.testing.assert_array_equal(np.vstack([first, second]), together)
    assert dump(one) == dump(two)


def test_users_are_independent(make_frame: FrameFactory, store: InMemoryStateStore) -> None:
    f = run(make_frame([{"user_id": "a", "amount": 10.0, "timestamp": T0},
                        {"user_id": "b", "amount": 100.0, "timestamp": T0 + 60}]), store)
    # b's first transaction does not see a's history.
    assert feat(f, "tx_count_1h").tolist() == [1.0, 1.0]
    assert feat(f, "user_history").tolist() == [0.0, 0.0]
    assert feat(f, "amount_z")[1] == pytest.approx(math.log1p(100.0) - PRIOR)
    assert store.count("user") == 2


# --- travel -------------------------------------------------------------------------------------
def test_distance_and_speed_paris_to_london(make_frame: FrameFactory,
                                            store: InMemoryStateStore) -> None:
    f = run(make_frame([
        {"timestamp": T0, "lat": PARIS[0], "lon": PARIS[1]},
        {"timestamp": T0 + 1800, "lat": LONDON[0], "lon": LONDON[1]},
    ]), store)
    dist = haversine_km(PARIS, LONDON)
    assert dist == pytest.approx(343.5, abs=0.5)
    assert feat(f, "distance_km").tolist()[0] == 0.0
    assert feat(f, "distance_km")[1] == pytest.approx(dist, rel=1e-9)
    assert feat(f, "speed_kmh")[1] == pytest.approx(dist / 0.5, rel=1e-9)  # km per half hour


def test_speed_uses_at_least_one_minute(make_frame: FrameFactory,
                                        store: InMemoryStateStore) -> None:
    f = run(make_frame([
        {"timestamp": T0, "lat": PARIS[0], "lon": PARIS[1]},
        {"timestamp": T0 + 10, "lat": LONDON[0], "lon": LONDON[1]},
    ]), store)
    dist = haversine_km(PARIS, LONDON)
    assert feat(f, "speed_kmh")[1] == pytest.approx(dist / (60.0 / 3600.0), rel=1e-9)


def test_travel_measured_from_last_located_event(make_frame: FrameFactory,
                                                 store: InMemoryStateStore) -> None:
    f = run(make_frame([
        {"timestamp": T0, "lat": PARIS[0], "lon": PARIS[1]},
        {"timestamp": T0 + 3600},  # no location: neither moves nor resets the last position
        {"timestamp": T0 + 7200, "lat": NEW_YORK[0], "lon": NEW_YORK[1]},
    ]), store)
    dist = haversine_km(PARIS, NEW_YORK)
    assert feat(f, "distance_km")[1] == 0.0
    assert feat(f, "speed_kmh")[1] == 0.0
    assert feat(f, "distance_km")[2] == pytest.approx(dist, rel=1e-9)
    assert feat(f, "speed_kmh")[2] == pytest.approx(dist / 2.0, rel=1e-9)
    assert user(store)[S.U_LOC_TS] == T0 + 7200


def test_same_place_is_zero_distance(make_frame: FrameFactory, store: InMemoryStateStore) -> None:
    f = run(make_frame([{"timestamp": T0 + 60 * i, "lat": PARIS[0], "lon": PARIS[1]}
                        for i in range(3)]), store)
    assert feat(f, "distance_km").tolist() == [0.0, 0.0, 0.0]
    assert feat(f, "speed_kmh").tolist() == [0.0, 0.0, 0.0]


# --- novelty --------------------------------------------------------------------------------------
def _history(make_frame: FrameFactory, n: int = 3) -> pd.DataFrame:
    return make_frame([
        {"timestamp": T0 + 3600 * i, "device_id": "d1", "merchant_id": "m1",
         "merchant_category": "food", "country": "FR"}
        for i in range(n)
    ])


def test_novelty_needs_min_history(make_frame: FrameFactory, store: InMemoryStateStore) -> None:
    rows = [{"timestamp": T0 + 3600 * i, "device_id": f"d{i}", "merchant_id": f"m{i}",
             "merchant_category": f"c{i}", "country": f"C{i}"} for i in range(P.min_history + 1)]
    f = run(make_frame(rows), store)
    novelty = ["new_device", "new_merchant", "new_category", "new_country"]
    for name in novelty:
        # Three events of history: the 4th (n = 3 = min_history) is the first one judged.
        assert feat(f, name).tolist() == [0.0, 0.0, 0.0, 1.0], name


@pytest.mark.parametrize(
    ("overrides", "flags"),
    [
        ({}, (0, 0, 0, 0)),
        ({"device_id": "d2"}, (1, 0, 0, 0)),
        ({"merchant_id": "m2"}, (0, 1, 0, 0)),
        ({"merchant_category": "travel"}, (0, 0, 1, 0)),
        ({"country": "US"}, (0, 0, 0, 1)),
        ({"device_id": "", "country": ""}, (0, 0, 0, 0)),  # missing is never "new"
        ({"device_id": "d9", "merchant_id": "m9", "merchant_category": "x", "country": "JP"},
         (1, 1, 1, 1)),
    ],
)
def test_novelty_after_history(make_frame: FrameFactory, store: InMemoryStateStore,
                               overrides: dict[str, Any], flags: tuple[int, ...]) -> None:
    run(_history(make_frame), store)
    probe = {"timestamp": T0 + 86400, "device_id": "d1", "merchant_id": "m1",
             "merchant_category": "food", "country": "FR", **overrides}
    f = run(make_frame([probe]).assign(transaction_id="probe"), store, apply=False)
    got = tuple(int(v) for v in f[0, [F["new_device"], F["new_merchant"], F["new_category"],
                                       F["new_country"]]])
    assert got == flags


def test_device_ring_forgets_the_oldest(make_frame: FrameFactory,
                                        store: InMemoryStateStore) -> None:
    devices = ["d1", "d2", "d3", "d4", "d5", "d1", "d3"]
    f = run(make_frame([{"timestamp": T0 + 60 * i, "device_id": d}
                        for i, d in enumerate(devices)]), store)
    # 4 slots: d5 evicts d1, so d1 is new again; d3 is still remembered.
    assert feat(f, "new_device").tolist() == [0, 0, 0, 1, 1, 1, 0]


# --- hour of day ----------------------------------------------------------------------------------
def test_hour_rarity(make_frame: FrameFactory, store: InMemoryStateStore) -> None:
    day = 86400.0
    run(make_frame([
        {"timestamp": T0 + 10 * 3600},
        {"timestamp": T0 + 10 * 3600 + 1800},
        {"timestamp": T0 + day + 10 * 3600},
        {"timestamp": T0 + day + 14 * 3600},
    ]), store)
    h10 = ((1.0 * 0.98 + 1.0) * 0.98 + 1.0) * 0.98  # decayed once per later event
    h14 = 1.0
    rec = user(store)
    assert rec[S.U_HOURS + 10] == pytest.approx(h10)
    assert rec[S.U_HOURS + 14] == pytest.approx(h14)
    probes = make_frame([{"transaction_id": f"p{h}", "timestamp": T0 + 2 * day + h * 3600}
                         for h in (10, 14, 3)])
    f = run(probes, store, apply=False)
    assert feat(f, "hour_rarity")[0] == 0.0  # the busiest hour
    assert feat(f, "hour_rarity")[1] == pytest.approx(1 - (h14 + 0.5) / (h10 + 0.5))
    assert feat(f, "hour_rarity")[2] == pytest.approx(1 - 0.5 / (h10 + 0.5))


# --- merchant aggregates ------------------------------------------------------------------------
def test_merchant_features(make_frame: FrameFactory, store: InMemoryStateStore) -> None:
    a = [20.0, 80.0, 40.0]
    f = run(make_frame([
        {"user_id": "a", "merchant_id": "shop", "amount": a[0], "timestamp": T0},
        {"user_id": "b", "merchant_id": "shop", "amount": a[1], "timestamp": T0 + 3600},
        {"user_id": "c", "merchant_id": "shop", "amount": a[2], "timestamp": T0 + 3 * 3600},
    ]), store)
    la = [math.log1p(x) for x in a]
    # 1st: prior only.
    assert feat(f, "merchant_amount_z")[0] == pytest.approx(la[0] - PRIOR)
    assert feat(f, "merchant_tx_count_24h")[0] == 1.0
    # 2nd: one event of history, weight 1/(1+3).
    mean = 0.25 * la[0] + 0.75 * PRIOR
    assert feat(f, "merchant_amount_z")[1] == pytest.approx((la[1] - mean) / math.sqrt(0.75))
    c24 = math.exp(-3600 / 86400) + 1.0
    assert feat(f, "merchant_tx_count_24h")[1] == pytest.approx(c24)
    # 3rd: two events (running mean/variance), weight 2/(2+3).
    m2, v2 = (la[0] + la[1]) / 2, ((la[1] - la[0]) / 2) ** 2
    mean = 0.4 * m2 + 0.6 * PRIOR
    var = 0.4 * v2 + 0.6 * 1.0
    assert feat(f, "merchant_amount_z")[2] == pytest.approx((la[2] - mean) / math.sqrt(var))
    assert feat(f, "merchant_tx_count_24h")[2] == pytest.approx(c24 * math.exp(-2 / 24) + 1.0)
    rec = store.get("merchant", "shop")
    assert rec is not None and rec.shape == (S.MERCHANT_WIDTH,)
    assert rec[S.M_N] == 3.0
    assert rec[S.M_LAST_TS] == T0 + 3 * 3600
    # Each user had one transaction: none of them has user history.
    assert feat(f, "user_history").tolist() == [0.0, 0.0, 0.0]


def test_no_merchant_no_merchant_state(make_frame: FrameFactory,
                                       store: InMemoryStateStore) -> None:
    batch = FeatureEngine().compute(make_frame([{"merchant_id": ""}, {"merchant_id": "m1"}]),
                                    store)
    f = batch.features
    assert feat(f, "merchant_amount_z")[0] == 0.0
    assert feat(f, "merchant_tx_count_24h")[0] == 0.0
    assert feat(f, "merchant_tx_count_24h")[1] == 1.0
    assert batch.update.merchant_keys == ["m1"]
    assert batch.update.merchant_rows.shape == (1, S.MERCHANT_WIDTH)
    batch.update.save(store)
    assert store.get("merchant", "") is None
    assert store.count("merchant") == 1


# --- amount profile robustness ------------------------------------------------------------------
def _steady(make_frame: FrameFactory, n: int) -> pd.DataFrame:
    return make_frame([{"timestamp": T0 + 3600 * i, "amount": 45.0 + 10.0 * (i % 2)}
                       for i in range(n)])


def test_outlier_does_not_move_usual_amount(make_frame: FrameFactory,
                                            store: InMemoryStateStore) -> None:
    run(_steady(make_frame, 20), store)
    before = user(store)
    assert before[S.U_N] == 20
    assert math.expm1(before[S.U_MEAN]) == pytest.approx(50.0, rel=0.02)
    spike = make_frame([{"transaction_id": "spike", "timestamp": T0 + 3600 * 20, "amount": 500.0}])
    f = run(spike, store)
    after = user(store)
    assert after[S.U_MEAN] == before[S.U_MEAN]
    assert after[S.U_VAR] == before[S.U_VAR]
    assert after[S.U_N] == 21
    assert after[S.U_LAST_TS] == T0 + 3600 * 20
    assert after[S.U_S24H] == pytest.approx(before[S.U_S24H] * math.exp(-1 / 24) + 500.0)
    assert after[S.U_C1H] == pytest.approx(before[S.U_C1H] * math.exp(-1.0) + 1.0)
    assert feat(f, "amount_ratio")[0] == pytest.approx(10.0, rel=0.05)
    w = 20.0 / (20.0 + 3.0)
    mean = w * before[S.U_MEAN] + (1 - w) * PRIOR
    sd = math.sqrt(w * before[S.U_VAR] + (1 - w) * 1.0)
    assert feat(f, "amount_z")[0] == pytest.approx((math.log1p(500.0) - mean) / sd, rel=1e-12)
    assert feat(f, "amount_z")[0] > 5.0


def test_outlier_moves_mean_during_cold_start(make_frame: FrameFactory,
                                              store: InMemoryStateStore) -> None:
    run(_steady(make_frame, 5), store)  # fewer than robust_after events: exact running mean
    before = user(store)
    run(make_frame([{"transaction_id": "spike", "timestamp": T0 + 3600 * 5, "amount": 500.0}]),
        store)
    after = user(store)
    dev = math.log1p(500.0) - before[S.U_MEAN]
    assert after[S.U_MEAN] == pytest.approx(before[S.U_MEAN] + dev / 6.0)



def test_recent_outliers_count_high_payments_and_raise_context_ratio(
    make_frame: FrameFactory, store: InMemoryStateStore
) -> None:
    run(_steady(make_frame, 20), store)
    t = T0 + 3600 * 20
    calm = run(make_frame([{"transaction_id": "calm", "timestamp": t, "amount": 60.0}]), store)
    assert feat(calm, "recent_amount_outliers")[0] == 0.0
    assert feat(calm, "context_amount_ratio")[0] == feat(calm, "amount_ratio")[0]
    assert user(store)[S.U_OUT] == 0.0
    # A payment far below usual is an outlier for the profile but not the compromise trace.
    run(make_frame([{"transaction_id": "low", "timestamp": t + 60, "amount": 1.0}]), store)
    assert user(store)[S.U_OUT] == 0.0
    run(make_frame([{"transaction_id": "spike", "timestamp": t + 120, "amount": 500.0}]), store)
    assert user(store)[S.U_OUT] == 1.0
    day = 86400.0
    nxt = run(make_frame([{"transaction_id": "next", "timestamp": t + 120 + day,
                           "amount": 60.0}]), store)
    decayed = math.exp(-day / 604800.0)  # ~7-day time constant
    assert feat(nxt, "recent_amount_outliers")[0] == pytest.approx(decayed)
    ratio = feat(nxt, "amount_ratio")[0]
    assert feat(nxt, "context_amount_ratio")[0] == pytest.approx(ratio * (1 + math.log1p(decayed)))
    # The same payment replayed is scored against the state but not counted again.
    again = run(make_frame([{"transaction_id": "spike", "timestamp": t + 120, "amount": 500.0}]),
                store)
    assert not np.isnan(again).any()
    assert user(store)[S.U_OUT] == pytest.approx(decayed)

# --- replay guard and dry runs ---------------------------------------------------------------
def test_replay_is_not_counted_twice(make_stream: StreamFactory) -> None:
    frame = make_stream(n=300, n_users=10, seed=1)
    once, twice = InMemoryStateStore(), InMemoryStateStore()
    b1 = FeatureEngine().compute(frame, once)
    assert b1.update.applied.all()
    b1.update.save(once)
    for _ in range(2):
        b = FeatureEngine().compute(frame, twice)
        b.update.save(twice)
    assert dump(once) == dump(twice)
    again = FeatureEngine().compute(frame, once)
    assert not again.update.applied.any()
    assert again.update.applied.shape == (300,)
    again.update.save(once)
    assert dump(once) == dump(twice)


def test_partially_replayed_batch(make_frame: FrameFactory, store: InMemoryStateStore) -> None:
    rows = [{"timestamp": T0 + 60 * i, "amount": 10.0 + i} for i in range(4)]
    run(make_frame(rows[:2]), store)
    batch = FeatureEngine().compute(make_frame(rows), store)
    assert batch.update.applied.tolist() == [False, False, True, True]
    batch.update.save(store)
    assert user(store)[S.U_N] == 4


def test_same_timestamp_events_both_count(make_frame: FrameFactory,
                                          store: InMemoryStateStore) -> None:
    frame = make_frame([{"transaction_id": "x", "timestamp": T0},
                        {"transaction_id": "y", "timestamp": T0}])
    batch = FeatureEngine().compute(frame, store)
    assert batch.update.applied.tolist() == [True, True]
    batch.update.save(store)
    rec = user(store)
    assert rec[S.U_N] == 2
    assert rec[S.U_LAST_TB] == hash_column(pd.Series(["x", "y"])).max()


def test_dry_run_leaves_store_untouched(make_frame: FrameFactory, make_stream: StreamFactory,
                                        store: InMemoryStateStore) -> None:
    frame = make_stream(n=200, n_users=5, seed=2)
    run(frame.iloc[:100], store)
    before = dump(store)
    counts = (store.count("user"), store.count("merchant"))
    dry = FeatureEngine().compute(frame.iloc[100:], store, apply=False)
    assert dry.update.user_keys == [] and dry.update.merchant_keys == []
    assert not dry.update.applied.any()
    dry.update.save(store)
    assert dump(store) == before
    assert (store.count("user"), store.count("merchant")) == counts
    # With one event per user, a dry run sees exactly what the real run will see.
    probe = frame.iloc[100:].drop_duplicates("user_id")
    assert len(probe) == 5
    dry = FeatureEngine().compute(probe, store, apply=False)
    real = FeatureEngine().compute(probe, store)
    np.testing.assert_array_equal(dry.features, real.features)
    assert real.update.applied.all()


def test_dry_run_on_an_empty_store_creates_nothing(make_frame: FrameFactory,
                                                   store: InMemoryStateStore) -> None:
    run(make_frame([{"merchant_id": "m1"}]), store, apply=False)
    assert store.count("user") == 0
    assert store.count("merchant") == 0


# --- ordering and batching ----------------------------------------------------------------------
def test_out_of_order_batch_gives_features_in_input_order(make_stream: StreamFactory) -> None:
    frame = make_stream(n=400, n_users=8, seed=3)
    perm = np.random.default_rng(0).permutation(len(frame))
    shuffled = frame.iloc[perm].reset_index(drop=True)
    s1, s2 = InMemoryStateStore(), InMemoryStateStore()
    sorted_f = run(frame, s1)
    shuffled_batch = FeatureEngine().compute(shuffled, s2)
    np.testing.assert_array_equal(shuffled_batch.features, sorted_f[perm])
    assert shuffled_batch.update.applied.all()
    shuffled_batch.update.save(s2)
    assert dump(s1) == dump(s2)


def test_batch_boundaries_do_not_matter(make_stream: StreamFactory) -> None:
    frame = make_stream(n=2000, n_users=30, n_merchants=20, seed=4)
    whole_store = InMemoryStateStore()
    whole = run(frame, whole_store)
    rng = np.random.default_rng(11)
    for _ in range(4):
        cuts = np.sort(rng.choice(np.arange(1, len(frame)), size=rng.integers(1, 40),
                                  replace=False))
        store = InMemoryStateStore(initial_capacity=4)
        bounds = [0, *cuts.tolist(), len(frame)]
        parts = [run(frame.iloc[a:b], store) for a, b in itertools.pairwise(bounds)]
        np.testing.assert_array_equal(np.vstack(parts), whole)
        assert dump(store) == dump(whole_store)


def test_features_are_finite_on_a_stream(make_stream: StreamFactory) -> None:
    f = run(make_stream(n=1000, seed=5), InMemoryStateStore())
    assert np.isfinite(f).all()
    assert (feat(f, "tx_count_1h") >= 1.0).all()
    assert ((feat(f, "hour_rarity") >= 0.0) & (feat(f, "hour_rarity") < 1.0)).all()
    assert set(np.unique(f[:, F["new_device"]])) <= {0.0, 1.0}


@pytest.mark.parametrize("dtype", ["str", object])
def test_hash_column_values_are_pinned(dtype: object) -> None:
    """Hashes live in stored user state (known devices, merchants, tiebreaks): a faster
    implementation must give the very same values, for Arrow-backed and object text alike."""
    values = pd.Series(["u-000001", "m-42", "é", "", None, "u-000001"], dtype=dtype)
    assert hash_column(values).tolist() == [
        2113080204430027.0, 505394246341605.0, 2296131610011879.0, 0.0, 0.0, 2113080204430027.0
    ]
    assert hash_column(values.to_numpy(dtype=object)).tolist() == hash_column(values).tolist()


def test_hash_column_small_and_large_batches_agree() -> None:
    """Small batches hash every value, large ones each distinct value: the same hashes."""
    from riskstream.features.engine import _HASH_DIRECT_MAX

    rng = np.random.default_rng(3)
    pool = np.array(["u-1", "m-42", "é", "", "x" * 300, *[f"d-{i:05x}" for i in range(200)]],
                    dtype=object)
    raw = pool[rng.integers(0, len(pool), size=4 * _HASH_DIRECT_MAX)].copy()
    raw[rng.random(len(raw)) < 0.05] = None
    for dtype in ("str", object):
        values = pd.Series(raw, dtype=dtype)
        whole = hash_column(values)  # the large-batch path
        parts = np.concatenate(
            [hash_column(values.iloc[i : i + 100]) for i in range(0, len(values), 100)]
        )
        assert np.array_equal(whole, parts)
        assert (whole[pd.isna(raw) | (raw == "")] == 0.0).all() and (whole[raw == "é"] > 0).all()


# --- label-aware features ---------------------------------------------------------------------
def label(tx: str, ts: float, at: float, fraud: int = 1, user: str = "u1",
          merchant: str = "m1", applied: float = np.nan) -> LabelChanges:
    return LabelChanges.build(np.array([tx], dtype=object), np.array([fraud]),
                              np.array([applied]), np.array([user], dtype=object),
                              np.array([merchant], dtype=object), np.array([ts]),
                              np.array([at]))


def test_a_reported_fraud_counts_by_transaction_time_from_its_report_on(
    make_frame: FrameFactory, store: InMemoryStateStore
) -> None:
    day = 86400.0
    rows = [{"transaction_id": f"t{k}", "timestamp": T0 + k * day, "amount": 10.0,
             "merchant_id": "m1", "user_id": "u1"} for k in range(4)]
    frame = make_frame(rows)
    # t0 (day 0) is reported fraud on day 2, exactly when t2 happens: t2 must not see it
    # (strictly earlier reports only); t3 does, decayed from the fraud's own time (3 days).
    f = FeatureEngine().compute(frame, store, labels=label("t0", T0, T0 + 2 * day)).features
    assert feat(f, "merchant_frauds_30d")[:3].tolist() == [0.0, 0.0, 0.0]
    tau30, tau7 = 30 * day, 7 * day
    assert feat(f, "merchant_frauds_30d")[3] == pytest.approx(math.exp(-3 * day / tau30))
    assert feat(f, "merchant_frauds_7d")[3] == pytest.approx(math.exp(-3 * day / tau7))
    assert feat(f, "user_known_compromised").tolist() == [0.0, 0.0, 0.0, 1.0]
    assert feat(f, "user_days_since_fraud")[3] == pytest.approx(3.0)
    assert feat(f, "merchant_days_since_fraud")[3] == pytest.approx(3.0)
    rate = (math.exp(-3) + 2 * 0.005) / (math.exp(-3) + 2)  # 1 d window, prior weight 2
    assert feat(f, "merchant_fraud_rate_1d")[3] == pytest.approx(rate)


def test_a_withdrawn_fraud_takes_its_count_back(
    make_frame: FrameFactory, store: InMemoryStateStore
) -> None:
    engine = FeatureEngine()
    first = make_frame([{"transaction_id": "a", "timestamp": T0, "merchant_id": "m1"}])
    engine.compute(first, store).update.save(store)
    fb = engine.compute(make_frame([{"transaction_id": "b", "timestamp": T0 + 60,
                                     "merchant_id": "m1"}]), store,
                        labels=label("a", T0, -np.inf))
    fb.update.save(store)
    assert feat(fb.features, "merchant_frauds_30d")[0] > 0.99
    # The analyst corrects it: fraud -> legitimate (applied was 1).
    fb = engine.compute(make_frame([{"transaction_id": "c", "timestamp": T0 + 120,
                                     "merchant_id": "m1"}]), store,
                        labels=label("a", T0, -np.inf, fraud=0, applied=1.0))
    assert feat(fb.features, "merchant_frauds_30d")[0] == pytest.approx(0.0, abs=1e-12)
    assert feat(fb.features, "merchant_fraud_rate_30d")[0] < 0.005  # one legitimate label


def test_labels_alone_fold_into_the_label_records(store: InMemoryStateStore) -> None:
    update = FeatureEngine().fold_labels(label("a", T0, T0), store)
    update.save(store)
    assert store.get("user_label", "u1")[S.UL_ANY] == 1.0
    assert store.get("merchant_label", "m1")[S.ML_F30] == pytest.approx(1.0)
    assert store.get("user", "u1") is None  # behaviour untouched
