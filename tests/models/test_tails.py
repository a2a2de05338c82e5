"""Marginal tails: surprisal is -ln of the training share at or beyond the value, per feature."""

from __future__ import annotations

import numpy as np
import pytest

from riskstream.models.bundle import ModelBundle, parse_detectors
from riskstream.models.calibration import LEVELS
from riskstream.models.tails import MarginalTailsDetector, upper_tail_surprisal


def _share_at_or_above(train: np.ndarray, x: float) -> float:
    return float((train >= x).mean())


@pytest.mark.parametrize("x", [-1.0, 0.0, 0.5, 1.0, 2.0, 2.5, 3.0])
def test_continuous_surprisal_matches_the_empirical_share(x: float) -> None:
    train = np.random.default_rng(1).normal(size=200_000)
    got = upper_tail_surprisal(np.quantile(train, LEVELS), np.array([x]))[0]
    want = -np.log(_share_at_or_above(train, x))
    assert got == pytest.approx(want, abs=0.02)


def test_point_masses_count_as_their_share_not_as_beyond_the_data() -> None:
    # A floored feature (half the mass at the floor) and a binary one (3 % ones).
    floored = np.maximum(np.random.default_rng(2).normal(size=100_000), 0.0)
    binary = (np.random.default_rng(3).random(100_000) < 0.03).astype(float)
    s_floor = upper_tail_surprisal(np.quantile(floored, LEVELS), np.array([0.0]))
    s_bin = upper_tail_surprisal(np.quantile(binary, LEVELS), np.array([0.0, 1.0]))
    assert s_floor[0] == pytest.approx(0.0, abs=1e-9)
    assert s_bin[0] == pytest.approx(0.0, abs=1e-9)
    assert s_bin[1] == pytest.approx(-np.log(binary.mean()), abs=0.05)


def test_beyond_the_training_range_stays_ordered() -> None:
    train = np.random.default_rng(4).exponential(size=50_000)
    s = upper_tail_surprisal(np.quantile(train, LEVELS), np.array([train.max(), 20.0, 40.0]))
    assert s[0] < s[1] < s[2]
    assert np.isfinite(s).all()


def test_score_is_the_most_surprising_feature_of_either_tail() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(100_000, 2))
    det = MarginalTailsDetector().fit(X, ("a", "b"))
    rows = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, -2.0], [2.0, -2.0]])
    per_feature = det.feature_scores(rows)
    np.testing.assert_array_equal(det.score(rows), per_feature.max(axis=1))
    expected = -np.log((X[:, 0] >= 2.0).mean())
    assert per_feature[1, 0] == pytest.approx(expected, abs=0.05)
    assert per_feature[2, 1] == pytest.approx(-np.log((X[:, 1] <= -2.0).mean()), abs=0.05)


def test_one_extreme_feature_outranks_several_mildly_unusual_ones() -> None:
    """The point of the detector (and what the forest misses): an amount far beyond anything
    in training is the top alert even when every other feature is ordinary."""
    rng = np.random.default_rng(6)
    X = rng.normal(size=(50_000, 3))
    det = MarginalTailsDetector().fit(X, ("a", "b", "c"))
    s = det.score(np.array([[9.0, 0.0, 0.0], [2.5, 2.5, 2.5]]))
    assert s[0] > s[1]


def test_seed_can_be_extended_and_duplicates_are_refused() -> None:
    kinds = [d.kind for d, _ in parse_detectors("seed,marginal_tails:0.4")]
    assert kinds == [
        "isolation_forest",
        "autoencoder",
        "sequence",
        "half_space_trees",
        "marginal_tails",
    ]
    with pytest.raises(ValueError, match="twice"):
        parse_detectors("seed,isolation_forest:1")


def test_bundle_with_tails_round_trips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from riskstream.features.spec import FEATURES, FeatureSpec

    X = np.abs(np.random.default_rng(7).normal(size=(3000, len(FEATURES))))
    bundle = ModelBundle.train(
        X,
        FeatureSpec(),
        ("log_amount", "context_amount_ratio"),
        detector=MarginalTailsDetector(),
    )
    back = ModelBundle.load(bundle.save(tmp_path / "m.npz"))
    np.testing.assert_array_equal(back.scores(X[:500]), bundle.scores(X[:500]))
    assert back.member_names == ("marginal_tails",)
