"""QuantileCalibrator: raw scores -> share of training traffic scored lower, in [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest

from riskstream.models import QuantileCalibrator
from riskstream.models.calibration import LEVELS


@pytest.fixture(scope="module")
def train_scores() -> np.ndarray:
    return np.random.default_rng(0).gamma(2.0, 0.1, 100_000) + 0.3


@pytest.fixture(scope="module")
def cal(train_scores: np.ndarray) -> QuantileCalibrator:
    return QuantileCalibrator.fit(train_scores)


def test_levels_dense_in_the_tail() -> None:
    assert LEVELS[0] == 0.0 and LEVELS[-1] == 1.0
    assert (np.diff(LEVELS) > 0).all()
    assert (LEVELS >= 0.99).sum() > 150


def test_output_in_unit_interval(cal: QuantileCalibrator, train_scores: np.ndarray) -> None:
    probe = np.concatenate([train_scores[:5000], [-1e9, -1.0, 0.0, 5.0, 1e9]])
    p = cal.transform(probe)
    assert p.shape == probe.shape
    assert ((p >= 0.0) & (p <= 1.0)).all()


def test_monotone(cal: QuantileCalibrator, train_scores: np.ndarray) -> None:
    grid = np.linspace(train_scores.min() - 0.1, train_scores.max() + 0.1, 20_001)
    p = cal.transform(grid)
    assert (np.diff(p) >= 0).all()
    assert p[0] == 0.0 and p[-1] > 0.99999


def test_about_one_percent_above_099(cal: QuantileCalibrator, train_scores: np.ndarray) -> None:
    p = cal.transform(train_scores)
    assert np.mean(p >= 0.99) == pytest.approx(0.01, abs=0.001)
    assert np.mean(p >= 0.999) == pytest.approx(0.001, abs=0.0003)
    assert np.mean(p >= 0.5) == pytest.approx(0.5, abs=0.01)
    # On fresh data from the same distribution too.
    fresh = np.random.default_rng(1).gamma(2.0, 0.1, 100_000) + 0.3
    assert np.mean(cal.transform(fresh) >= 0.99) == pytest.approx(0.01, abs=0.002)


def test_out_of_range(cal: QuantileCalibrator, train_scores: np.ndarray) -> None:
    top, bottom = train_scores.max(), train_scores.min()
    # Past every training score: above the last dense level, still strictly ordered (an
    # exponential tail), and reaching 1.0 only far out.
    beyond = cal.transform(np.array([top, top + 0.01, top + 0.1, top * 10]))
    assert (beyond >= 0.99999).all() and (np.diff(beyond) >= 0).all()
    assert beyond[1] > beyond[0] and beyond[-1] == 1.0
    s = cal.surprisal(np.array([top + 1.0, top + 2.0]))
    assert s[1] > s[0] > -np.log(1e-5)
    assert cal.transform(np.array([bottom - 1e-9, -5.0])).tolist() == [0.0, 0.0]


def test_docstring_example_values() -> None:
    cal = QuantileCalibrator.fit(np.arange(1000.0))
    got = cal.transform(np.array([-5.0, 0.0, 500.0, 990.0, 999.0, 5000.0]))
    np.testing.assert_allclose(got, [0.0, 0.0, 0.5005, 0.99099, 0.99999, 1.0], atol=1e-5)


def test_constant_training_scores() -> None:
    cal = QuantileCalibrator.fit(np.full(500, 0.42))
    p = cal.transform(np.array([0.1, 0.42, 0.9]))
    assert np.isfinite(p).all()
    assert p[0] == 0.0 and p[1] >= 0.99999 and p[2] == 1.0


def test_ties_map_to_the_highest_level() -> None:
    # 90 % of training at exactly 0: a score of 0 is "as high as 90 % of traffic", not 0 %.
    scores = np.concatenate([np.zeros(9000), np.linspace(0.01, 1.0, 1000)])
    cal = QuantileCalibrator.fit(scores)
    # (the 0.9 quantile interpolates just above 0, so the highest level still at 0 is 0.89)
    assert cal.transform(np.array([0.0]))[0] == pytest.approx(0.89, abs=1e-9)
    grid = np.linspace(-0.5, 1.5, 5001)
    assert (np.diff(cal.transform(grid)) >= 0).all()


def test_round_trip_through_arrays(cal: QuantileCalibrator, train_scores: np.ndarray) -> None:
    back = QuantileCalibrator(cal.quantiles.copy(), cal.levels.copy())
    np.testing.assert_array_equal(back.transform(train_scores), cal.transform(train_scores))
    assert cal.quantiles.shape == LEVELS.shape
    assert (np.diff(cal.quantiles) >= 0).all()
