"""The Detector contract, run for every detector (add one entry to DETECTORS)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from riskstream.features.spec import SEQ_DIM, SEQ_LEN, SEQUENCE
from riskstream.models import Detector, IsolationForestDetector
from riskstream.models.autoencoder import AutoencoderDetector
from riskstream.models.bundle import DETECTORS as REGISTERED
from riskstream.models.hst import HalfSpaceTreesDetector
from riskstream.models.iforest import average_path_length
from riskstream.models.sequence import SequenceDetector
from riskstream.models.tails import MarginalTailsDetector

NAMES = ("a", "b", "c", "d")


def blob(n: int = 2000, seed: int = 0) -> np.ndarray:
    """A Gaussian blob plus one integer-valued column (ties at split thresholds)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(NAMES)))
    X[:, 3] = rng.poisson(3.0, n)
    return X


def sequences(
    n: int = 2000, seed: int = 0, now_shift: float = 0.0, users_level: float | None = None
) -> np.ndarray:
    """User windows: steady spenders (log amount ~ their level +- 0.2, ~2 h apart)."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(2.5, 4.5, n) if users_level is None else np.full(n, users_level)
    X = np.zeros((n, len(SEQUENCE)))
    steps = rng.integers(3, SEQ_LEN + 1, n)
    for t in range(SEQ_LEN):
        real = t >= SEQ_LEN - steps
        hour = rng.uniform(8, 20, n)
        block = np.column_stack(
            [
                level + rng.normal(0, 0.2, n),
                1.1 + rng.normal(0, 0.1, n),
                np.sin(2 * np.pi * hour / 24),
                np.cos(2 * np.pi * hour / 24),
            ]
        )
        X[:, t * SEQ_DIM : (t + 1) * SEQ_DIM] = block * real[:, None]
    hour = rng.uniform(8, 20, n)
    X[:, SEQ_LEN * SEQ_DIM : -1] = np.column_stack(
        [
            level + now_shift + rng.normal(0, 0.2, n),
            1.1 + rng.normal(0, 0.1, n),
            np.sin(2 * np.pi * hour / 24),
            np.cos(2 * np.pi * hour / 24),
        ]
    )
    X[:, -1] = steps
    return X


def typical_sequence(level: float) -> np.ndarray:
    """Eight steps exactly at the user's level, 2 h apart, and this one the same."""
    step = [level, 1.1, np.sin(2 * np.pi * 14 / 24), np.cos(2 * np.pi * 14 / 24)]
    return np.array([[*step * (SEQ_LEN + 1), SEQ_LEN]])


@dataclass(frozen=True)
class Case:
    factory: Callable[[], Detector]
    names: tuple[str, ...]
    data: Callable[..., np.ndarray]  # data(n=..., seed=...)
    centre: Callable[[], np.ndarray]  # a very typical row
    far: Callable[[], np.ndarray]  # rows no training point resembles


def _blob_far() -> np.ndarray:
    return np.array(
        [[8.0, 0.0, 0.0, 3.0], [0.0, -8.0, 0.0, 3.0], [0.0, 0.0, 0.0, 40.0], [6.0, 6.0, 6.0, 30.0]]
    )


def _blob_case(factory: Callable[[], Detector]) -> Case:
    return Case(factory, NAMES, blob, lambda: np.array([[0.0, 0.0, 0.0, 3.0]]), _blob_far)


#: name -> how to exercise it (small, so the suite stays fast). Add one entry per detector.
DETECTORS: dict[str, Case] = {
    "isolation_forest": _blob_case(
        lambda: IsolationForestDetector(n_estimators=60, max_samples=256, seed=7)
    ),
    "autoencoder": _blob_case(lambda: AutoencoderDetector(epochs=8, seed=7)),
    "half_space_trees": _blob_case(lambda: HalfSpaceTreesDetector(window=250, seed=7)),
    "marginal_tails": _blob_case(MarginalTailsDetector),
    "sequence": Case(
        lambda: SequenceDetector(epochs=6, seed=7),
        SEQUENCE,
        sequences,
        lambda: typical_sequence(3.5),
        # 5x, 20x and 12x the user's usual amount (only spending above is risky).
        lambda: np.vstack(
            [
                sequences(1, seed=12, now_shift=1.6, users_level=3.5),
                sequences(1, seed=13, now_shift=3.0, users_level=3.0),
                sequences(1, seed=14, now_shift=2.5, users_level=4.0),
            ]
        ),
    ),
}


@pytest.fixture(params=sorted(DETECTORS))
def case(request: pytest.FixtureRequest) -> Case:
    return DETECTORS[request.param]


@pytest.fixture
def make_detector(case: Case) -> Callable[[], Detector]:
    return case.factory


@pytest.fixture
def fitted(case: Case) -> Detector:
    return case.factory().fit(case.data(n=2000, seed=0), case.names)


def test_every_registered_detector_is_covered() -> None:
    assert set(REGISTERED) <= set(DETECTORS)


def test_fit_returns_self_and_keeps_names(case: Case) -> None:
    det = case.factory()
    assert det.fit(case.data(n=2000, seed=0), case.names) is det
    assert det.names == case.names


def test_scores_are_finite_one_per_row(fitted: Detector, case: Case) -> None:
    X = case.data(n=500, seed=1)
    s = fitted.score(X)
    assert isinstance(s, np.ndarray)
    assert s.shape == (500,)
    assert s.dtype == np.float64
    assert np.isfinite(s).all()
    assert fitted.score(X[:1]).shape == (1,)
    assert fitted.score(X[:0]).shape == (0,)


def test_scores_are_deterministic(fitted: Detector, case: Case) -> None:
    X = case.data(n=300, seed=2)
    np.testing.assert_array_equal(fitted.score(X), fitted.score(X))
    # Row-wise: a row's score does not depend on the rest of the batch.
    np.testing.assert_array_equal(fitted.score(X[10:20]), fitted.score(X)[10:20])


def test_higher_is_more_anomalous(fitted: Detector, case: Case) -> None:
    s_centre = fitted.score(case.centre())[0]
    s_far = fitted.score(case.far())
    assert (s_far > s_centre).all()
    # A typical point is no more anomalous than the median training point (one-sided
    # detectors give many exact zeros, so a lower quantile would be too strict), and the far
    # points beat three quarters of training.
    s_train = fitted.score(case.data(n=2000, seed=0))
    assert s_centre <= np.quantile(s_train, 0.5)
    assert (s_far > np.quantile(s_train, 0.75)).all()


def test_round_trip_through_arrays(fitted: Detector, case: Case) -> None:
    meta, arrays = fitted.to_arrays()
    json.dumps(meta)  # JSON-able metadata only
    for name, arr in arrays.items():
        assert isinstance(arr, np.ndarray), name
        assert arr.dtype != object, name
    # As if written and read back: fresh copies of every array.
    back = type(fitted).from_arrays(
        json.loads(json.dumps(meta)), {k: np.array(v, copy=True) for k, v in arrays.items()}
    )
    assert back.names == fitted.names
    X = case.data(n=700, seed=3)
    np.testing.assert_array_equal(back.score(X), fitted.score(X))


def test_score_does_not_mutate_input(fitted: Detector, case: Case) -> None:
    X = case.data(n=200, seed=4)
    X_c = np.asfortranarray(X)  # non-C-contiguous too
    before, before_c = X.copy(), X_c.copy()
    fitted.score(X)
    fitted.score(X_c)
    np.testing.assert_array_equal(X, before)
    np.testing.assert_array_equal(X_c, before_c)
    assert X.dtype == np.float64


# --- Isolation Forest specifics -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "max_samples", "n_estimators", "seed"),
    [(3000, 256, 40, 0), (500, 2048, 25, 3), (100, 64, 10, 11)],
)
def test_iforest_matches_sklearn(n: int, max_samples: int, n_estimators: int, seed: int) -> None:
    X = blob(n, seed=seed)
    det = IsolationForestDetector(n_estimators=n_estimators, max_samples=max_samples, seed=seed)
    det.fit(X, NAMES)
    ref = IsolationForest(
        n_estimators=n_estimators, max_samples=min(max_samples, n), random_state=seed
    ).fit(X)
    probe = np.vstack([X, blob(300, seed=seed + 100) * 3.0])
    np.testing.assert_allclose(det.score(probe), -ref.score_samples(probe), rtol=0, atol=1e-12)


def test_iforest_scores_in_unit_interval() -> None:
    det = IsolationForestDetector(n_estimators=20, max_samples=128).fit(blob(), NAMES)
    s = det.score(blob(500, seed=9) * 5.0)
    assert ((s > 0.0) & (s <= 1.0)).all()


def test_iforest_unfitted_raises() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        IsolationForestDetector().score(blob(5))


def test_iforest_corrupt_normaliser_rejected() -> None:
    meta, arrays = IsolationForestDetector(n_estimators=5).fit(blob(100), NAMES).to_arrays()
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="normaliser"):
            IsolationForestDetector.from_arrays({**meta, "norm": bad}, arrays)


def test_average_path_length() -> None:
    euler = 0.5772156649015329
    got = average_path_length(np.array([0, 1, 2, 3, 256]))
    expected = [
        0.0,
        0.0,
        1.0,
        2 * (np.log(2) + euler) - 2 * 2 / 3,
        2 * (np.log(255) + euler) - 2 * 255 / 256,
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-15)


# --- Online Half-Space Trees specifics ----------------------------------------------------------
def test_hst_adapts_to_a_new_normal_and_ignores_masked_rows() -> None:
    det = HalfSpaceTreesDetector(window=200, seed=3).fit(blob(2000), NAMES)
    shifted = blob(1000, seed=5)
    shifted[:, 0] += 3.0  # the world moves: what used to be rare becomes normal
    before = det.score(shifted[:200]).mean()
    det.learn(shifted, mask=np.zeros(len(shifted), dtype=bool))  # all masked: nothing learnt
    assert det.score(shifted[:200]).mean() == before
    det.learn(shifted)
    assert det.score(shifted[:200]).mean() < before


def test_hst_learning_round_trips() -> None:
    det = HalfSpaceTreesDetector(window=100, seed=1).fit(blob(500), NAMES)
    det.learn(blob(130, seed=8))  # mid-window: latest masses and counter must be kept
    meta, arrays = det.to_arrays()
    back = HalfSpaceTreesDetector.from_arrays(meta, arrays)
    more = blob(90, seed=9)
    det.learn(more)
    back.learn(more)
    np.testing.assert_array_equal(det.score(blob(50, seed=10)), back.score(blob(50, seed=10)))
