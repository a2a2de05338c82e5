"""ModelBundle: training, scoring, pickle-free persistence and versioning."""

from __future__ import annotations

import io
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from riskstream.features.spec import FEATURES, FeatureParams, FeatureSpec
from riskstream.models import FEATURE_SETS, IsolationForestDetector, ModelBundle
from riskstream.models.bundle import (
    AMOUNT_MODEL_FEATURES,
    DEFAULT_MODEL_FEATURES,
    REFERENCE_LEVELS,
    RISK_UP,
)

VERSION_RE = re.compile(r"^isolation_forest-(\d{4}-\d{2}-\d{2})-([0-9a-f]{8})$")


def synthetic(n: int = 1500, seed: int = 0) -> np.ndarray:
    """A feature matrix shaped like the engine's (columns = FEATURES)."""
    rng = np.random.default_rng(seed)
    return np.abs(rng.normal(1.0, 0.5, size=(n, len(FEATURES))))


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    det = IsolationForestDetector(n_estimators=40, max_samples=256, seed=1)
    return ModelBundle.train(synthetic(), FeatureSpec(), detector=det, info={"rows": 1500})


def test_train_shapes(bundle: ModelBundle) -> None:
    assert bundle.model_features == DEFAULT_MODEL_FEATURES
    assert "user_history" not in bundle.model_features
    assert bundle.floors.shape == (len(DEFAULT_MODEL_FEATURES),)
    assert bundle.reference.shape == (len(FEATURES), len(REFERENCE_LEVELS))
    assert bundle.detector.names == DEFAULT_MODEL_FEATURES
    assert bundle.info == {"rows": 1500}


def test_floors_are_training_medians_for_risk_up_features(bundle: ModelBundle) -> None:
    X = synthetic()
    for j, name in enumerate(bundle.model_features):
        if name in RISK_UP:
            assert bundle.floors[j] == np.median(X[:, FEATURES.index(name)]), name
        else:
            assert bundle.floors[j] == -np.inf, name
    assert "log_secs_since_last" in bundle.model_features
    assert bundle.floors[bundle.model_features.index("log_secs_since_last")] == -np.inf


def test_reference_is_training_quantiles(bundle: ModelBundle) -> None:
    X = synthetic()
    np.testing.assert_allclose(bundle.reference, np.quantile(X, REFERENCE_LEVELS, axis=0).T)


def test_scores_calibrated(bundle: ModelBundle) -> None:
    X = synthetic()
    s = bundle.scores(X)
    assert s.shape == (len(X),)
    assert ((s >= 0.0) & (s <= 1.0)).all()
    assert np.mean(s >= 0.99) == pytest.approx(0.01, abs=0.005)
    np.testing.assert_array_equal(s, bundle.calibrator.transform(bundle.raw_scores(X)))


def test_low_values_of_risk_up_features_are_not_anomalous(bundle: ModelBundle) -> None:
    # A tiny amount / no travel is floored at the median: it scores like the median itself.
    X = synthetic(50, seed=3)
    median_row = np.median(synthetic(), axis=0)
    low = X.copy()
    for name in bundle.model_features:
        if name in RISK_UP:
            low[:, FEATURES.index(name)] = -100.0
            X[:, FEATURES.index(name)] = median_row[FEATURES.index(name)]
    np.testing.assert_array_equal(bundle.raw_scores(low), bundle.raw_scores(X))


def test_save_load_round_trip(bundle: ModelBundle, tmp_path: Path) -> None:
    path = bundle.save(tmp_path / "models" / "m.npz")
    assert path.exists()
    assert not list(path.parent.glob("*.tmp"))
    back = ModelBundle.load(path)
    X = synthetic(400, seed=5)
    np.testing.assert_array_equal(back.scores(X), bundle.scores(X))
    np.testing.assert_array_equal(back.raw_scores(X), bundle.raw_scores(X))
    assert back.version == bundle.version
    assert back.created_at == bundle.created_at
    assert back.model_features == bundle.model_features
    assert back.spec == bundle.spec
    assert back.info == bundle.info
    np.testing.assert_array_equal(back.floors, bundle.floors)
    np.testing.assert_array_equal(back.reference, bundle.reference)
    assert back.fingerprint() == bundle.fingerprint()


def test_non_default_spec_survives_round_trip(tmp_path: Path) -> None:
    spec = FeatureSpec(params=FeatureParams(alpha=0.05, min_history=5))
    b = ModelBundle.train(synthetic(200), spec, model_features=FEATURE_SETS["amount"],
                          detector=IsolationForestDetector(n_estimators=10, max_samples=64))
    back = ModelBundle.load(b.save(tmp_path / "amount.npz"))
    assert back.spec == spec
    assert back.spec.params.min_history == 5
    assert back.model_features == AMOUNT_MODEL_FEATURES


def test_file_is_pickle_free(bundle: ModelBundle, tmp_path: Path) -> None:
    path = bundle.save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
        meta = json.loads(data["meta"].tobytes().decode())
    assert meta["format"] == 2
    assert meta["version"] == bundle.version


def test_pickled_object_array_refused(bundle: ModelBundle, tmp_path: Path) -> None:
    path = bundle.save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["floors"] = np.array([object(), "boom"], dtype=object)  # needs pickle to store
    evil = tmp_path / "evil.npz"
    np.savez(evil, **arrays)
    with pytest.raises(ValueError, match="allow_pickle"):
        ModelBundle.load(evil)


def test_plain_pickle_file_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.npz"
    evil.write_bytes(pickle.dumps({"meta": "not a model"}))
    with pytest.raises(ValueError, match="pickle"):
        ModelBundle.load(evil)


def test_unsupported_format_refused(bundle: ModelBundle, tmp_path: Path) -> None:
    path = bundle.save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays["meta"].tobytes().decode())
    meta["format"] = 99
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (tmp_path / "future.npz").write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="unsupported model format"):
        ModelBundle.load(tmp_path / "future.npz")


def test_version_string(bundle: ModelBundle) -> None:
    m = VERSION_RE.match(bundle.version)
    assert m is not None, bundle.version
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", bundle.created_at)
    assert m.group(1) == bundle.created_at[:10]
    assert m.group(2) == bundle.fingerprint()[:8]


def test_version_depends_on_the_model() -> None:
    det = IsolationForestDetector(n_estimators=10, max_samples=64, seed=0)
    a = ModelBundle.train(synthetic(300, seed=1), FeatureSpec(), detector=det)
    b = ModelBundle.train(synthetic(300, seed=1), FeatureSpec(),
                          detector=IsolationForestDetector(n_estimators=10, max_samples=64, seed=0))
    c = ModelBundle.train(synthetic(300, seed=2), FeatureSpec(),
                          detector=IsolationForestDetector(n_estimators=10, max_samples=64, seed=0))
    assert a.fingerprint() == b.fingerprint()
    assert a.version.rsplit("-", 1)[1] == b.version.rsplit("-", 1)[1]
    assert a.fingerprint() != c.fingerprint()
    assert a.version.rsplit("-", 1)[1] != c.version.rsplit("-", 1)[1]


def test_unknown_feature_names_raise() -> None:
    with pytest.raises(ValueError, match=r"unknown features.*'no_such_feature'"):
        ModelBundle.train(synthetic(100), FeatureSpec(),
                          model_features=("log_amount", "no_such_feature"))


def test_too_few_rows_raise() -> None:
    with pytest.raises(ValueError, match="at least 10"):
        ModelBundle.train(synthetic(9), FeatureSpec())


def test_feature_sets() -> None:
    assert set(FEATURE_SETS) == {"default", "amount"}
    for names in FEATURE_SETS.values():
        assert set(names) <= set(FEATURES)


def _two_member(rule: str) -> ModelBundle:
    dets = [(IsolationForestDetector(n_estimators=10, max_samples=64, seed=0), 1.0),
            (IsolationForestDetector(n_estimators=10, max_samples=64, seed=1), 0.5)]
    return ModelBundle.train(synthetic(300), FeatureSpec(), detectors=dets, combine_rule=rule)


@pytest.mark.parametrize("rule", ["max", "mean"])
def test_combine_rule_is_applied_and_survives_round_trip(rule: str, tmp_path: Path) -> None:
    b = _two_member(rule)
    X = synthetic(50, seed=3)
    surprisal = -np.log1p(-b.contributions(X))
    expected = (
        np.maximum(surprisal[:, 0], 0.5 * surprisal[:, 1])
        if rule == "max"
        else (surprisal[:, 0] + 0.5 * surprisal[:, 1]) / 1.5
    )
    np.testing.assert_allclose(b.raw_scores(X), expected, rtol=1e-9)
    back = ModelBundle.load(b.save(tmp_path / f"{rule}.npz"))
    assert back.combine_rule == rule
    np.testing.assert_array_equal(back.raw_scores(X), b.raw_scores(X))


def test_combine_rule_is_part_of_the_version() -> None:
    assert _two_member("max").fingerprint() != _two_member("mean").fingerprint()


def test_bundle_without_a_stored_rule_combines_by_mean(tmp_path: Path) -> None:
    path = _two_member("mean").save(tmp_path / "old.npz")
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays["meta"].tobytes().decode())
    del meta["combine"]  # as written before the rule was stored
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "older.npz", **arrays)
    assert ModelBundle.load(tmp_path / "older.npz").combine_rule == "mean"


def test_unknown_combine_rule_raises() -> None:
    with pytest.raises(ValueError, match="unknown combine rule"):
        _two_member("median")
