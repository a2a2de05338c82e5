"""The Detector contract, run for every detector (add one entry to DETECTORS)."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from riskstream.models import Detector, IsolationForestDetector
from riskstream.models.autoencoder import AutoencoderDetector
from riskstream.models.bundle import DETECTORS as REGISTERED
from riskstream.models.iforest import average_path_length

#: name -> factory of an unfitted detector (small, so the suite stays fast).
DETECTORS: dict[str, Callable[[], Detector]] = {
    "isolation_forest": lambda: IsolationForestDetector(n_estimators=60, max_samples=256, seed=7),
    "autoencoder": lambda: AutoencoderDetector(epochs=8, seed=7),
}
NAMES = ("a", "b", "c", "d")


def blob(n: int = 2000, seed: int = 0) -> np.ndarray:
    """A Gaussian blob plus one integer-valued column (ties at split thresholds)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(NAMES)))
    X[:, 3] = rng.poisson(3.0, n)
    return X


@pytest.fixture(params=sorted(DETECTORS))
def make_detector(request: pytest.FixtureRequest) -> Callable[[], Detector]:
    return DETECTORS[request.param]


@pytest.fixture
def fitted(make_detector: Callable[[], Detector]) -> Detector:
    return make_detector().fit(blob(), NAMES)


def test_every_registered_detector_is_covered() -> None:
    assert set(REGISTERED) <= set(DETECTORS)


def test_fit_returns_self_and_keeps_names(make_detector: Callable[[], Detector]) -> None:
    det = make_detector()
    assert det.fit(blob(), NAMES) is det
    assert det.names == NAMES


def test_scores_are_finite_one_per_row(fitted: Detector) -> None:
    X = blob(500, seed=1)
    s = fitted.score(X)
    assert isinstance(s, np.ndarray)
    assert s.shape == (500,)
    assert s.dtype == np.float64
    assert np.isfinite(s).all()
    assert fitted.score(X[:1]).shape == (1,)
    assert fitted.score(X[:0]).shape == (0,)


def test_scores_are_deterministic(fitted: Detector) -> None:
    X = blob(300, seed=2)
    np.testing.assert_array_equal(fitted.score(X), fitted.score(X))
    # Row-wise: a row's score does not depend on the rest of the batch.
    np.testing.assert_array_equal(fitted.score(X[10:20]), fitted.score(X)[10:20])


def test_higher_is_more_anomalous(fitted: Detector) -> None:
    centre = np.array([[0.0, 0.0, 0.0, 3.0]])
    far = np.array([
        [8.0, 0.0, 0.0, 3.0],
        [0.0, -8.0, 0.0, 3.0],
        [0.0, 0.0, 0.0, 40.0],
        [6.0, 6.0, 6.0, 30.0],
    ])
    s_centre = fitted.score(centre)[0]
    s_far = fitted.score(far)
    assert (s_far > s_centre).all()
    # The bulk of training points sits between the centre and the far points.
    s_train = fitted.score(blob())
    assert s_centre <= np.quantile(s_train, 0.25)
    assert (s_far > np.quantile(s_train, 0.75)).all()


def test_round_trip_through_arrays(fitted: Detector) -> None:
    meta, arrays = fitted.to_arrays()
    json.dumps(meta)  # JSON-able metadata only
    for name, arr in arrays.items():
        assert isinstance(arr, np.ndarray), name
        assert arr.dtype != object, name
    # As if written and read back: fresh copies of every array.
    back = type(fitted).from_arrays(json.loads(json.dumps(meta)),
                                    {k: np.array(v, copy=True) for k, v in arrays.items()})
    assert back.names == fitted.names
    X = blob(700, seed=3)
    np.testing.assert_array_equal(back.score(X), fitted.score(X))


def test_score_does_not_mutate_input(fitted: Detector) -> None:
    X = blob(200, seed=4)
    X_c = np.asfortranarray(X)  # non-C-contiguous too
    before, before_c = X.copy(), X_c.copy()
    fitted.score(X)
    fitted.score(X_c)
    np.testing.assert_array_equal(X, before)
    np.testing.assert_array_equal(X_c, before_c)
    assert X.dtype == np.float64


# --- Isolation Forest specifics -----------------------------------------------------------------
@pytest.mark.parametrize(("n", "max_samples", "n_estimators", "seed"),
                         [(3000, 256, 40, 0), (500, 2048, 25, 3), (100, 64, 10, 11)])
def test_iforest_matches_sklearn(n: int, max_samples: int, n_estimators: int, seed: int) -> None:
    X = blob(n, seed=seed)
    det = IsolationForestDetector(n_estimators=n_estimators, max_samples=max_samples, seed=seed)
    det.fit(X, NAMES)
    ref = IsolationForest(n_estimators=n_estimators, max_samples=min(max_samples, n),
                          random_state=seed).fit(X)
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
    expected = [0.0, 0.0, 1.0, 2 * (np.log(2) + euler) - 2 * 2 / 3,
                2 * (np.log(255) + euler) - 2 * 255 / 256]
    np.testing.assert_allclose(got, expected, rtol=1e-15)
