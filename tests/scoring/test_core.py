"""ScoringCore and Thresholds: decisions, confidence, dry runs, commits and the result view."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from riskstream.features import FEATURES, FeatureEngine, InMemoryStateStore
from riskstream.features.spec import FeatureParams, FeatureSpec
from riskstream.models import ModelBundle
from riskstream.scoring.core import DECISIONS, ScoredBatch, ScoringCore, Thresholds
from riskstream.scoring.reasons import MAX_REASONS, anomaly_family, explain, explanation

StreamFactory = Callable[..., pd.DataFrame]  # the make_stream fixture (tests/conftest.py)

LEGACY_KEYS = {"transaction_id", "anomaly_score", "is_anomalous", "decision", "confidence",
               "reasons", "features", "model_version", "processing_time_ms", "detectors"}
RESULT_KEYS = LEGACY_KEYS | {"anomaly_type", "explanation", "timestamp"}
ISO_UTC_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def state_bytes(store: InMemoryStateStore) -> dict[str, bytes]:
    out = {}
    for ns in ("user", "merchant"):
        keys = sorted(store._rows[ns])
        out[ns] = ",".join(keys).encode() + store.load(ns, keys).tobytes()
    return out


@pytest.fixture(scope="module")
def batch(make_stream: StreamFactory) -> pd.DataFrame:
    # A later week than the training stream, with an obviously odd tail.
    frame = make_stream(n=400, n_users=30, seed=200, start=1_705_000_000.0)
    frame.loc[frame.index[-5:], "amount"] = [5e3, 2e4, 1e5, 7.5e5, 3e6]
    frame.loc[frame.index[-5:], "device_id"] = "burner"
    return frame


# --- thresholds --------------------------------------------------------------------------------
def test_threshold_defaults() -> None:
    t = Thresholds()
    assert (t.review, t.block) == (0.99, 0.999)


def test_decide_edges() -> None:
    t = Thresholds(0.9, 0.99)
    scores = np.array([0.0, 0.8999999, 0.9, 0.95, 0.9899999, 0.99, 1.0])
    assert t.decide(scores).tolist() == [0, 0, 1, 1, 1, 2, 2]
    assert t.decide(scores).dtype == np.int8


def test_decide_review_equals_block() -> None:
    t = Thresholds(0.95, 0.95)
    assert t.decide(np.array([0.94, 0.95, 1.0])).tolist() == [0, 2, 2]


def test_block_at_one() -> None:
    t = Thresholds(0.5, 1.0)
    assert t.decide(np.array([0.49, 0.5, 0.999999, 1.0])).tolist() == [0, 1, 1, 2]


def test_confidence_edges() -> None:
    t = Thresholds(0.9, 0.99)
    got = t.confidence(np.array([0.0, 0.45, 0.9, 0.95, 1.0]))
    np.testing.assert_allclose(got, [1.0, 0.5, 0.0, 0.5, 1.0], atol=1e-12)
    assert ((got >= 0) & (got <= 1)).all()


def test_confidence_review_one_does_not_divide_by_zero() -> None:
    t = Thresholds(1.0, 1.0)
    got = t.confidence(np.array([0.0, 0.5, 1.0]))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, [1.0, 0.5, 0.0])


@pytest.mark.parametrize(
    ("review", "block"),
    [(0.0, 0.5), (-0.1, 0.5), (0.9, 0.8), (0.5, 1.01), (1.2, 1.5), (math.nan, 0.9)],
)
def test_invalid_thresholds_raise(review: float, block: float) -> None:
    with pytest.raises(ValueError, match="thresholds"):
        Thresholds(review, block)


# --- scoring -----------------------------------------------------------------------------------
def test_score_batch(trained_bundle: ModelBundle, batch: pd.DataFrame) -> None:
    core = ScoringCore(trained_bundle, InMemoryStateStore(), Thresholds(0.9, 0.99))
    scored = core.score(batch)
    n = len(batch)
    assert len(scored) == n
    assert scored.features.shape == (n, len(FEATURES))
    assert ((scored.scores >= 0) & (scored.scores <= 1)).all()
    np.testing.assert_array_equal(scored.raw, trained_bundle.raw_scores(scored.features))
    np.testing.assert_array_equal(scored.scores, trained_bundle.calibrator.transform(scored.raw))
    np.testing.assert_array_equal(scored.decisions, core.thresholds.decide(scored.scores))
    np.testing.assert_array_equal(scored.anomalous, scored.decisions > 0)
    review = (scored.scores >= 0.9) & (scored.scores < 0.99)
    assert (scored.decisions[review] == 1).all()
    assert (scored.decisions[scored.scores >= 0.99] == 2).all()
    assert (scored.decisions[scored.scores < 0.9] == 0).all()
    # The injected odd tail is caught; most ordinary traffic is allowed.
    assert scored.anomalous[-3:].all()
    assert np.mean(scored.decisions[:-5] == 0) > 0.8
    assert scored.model_version == trained_bundle.version
    assert scored.elapsed_ms > 0


def test_scores_match_engine_plus_bundle(trained_bundle: ModelBundle,
                                         batch: pd.DataFrame) -> None:
    core = ScoringCore(trained_bundle, InMemoryStateStore())
    scored = core.score(batch)
    expected = FeatureEngine(trained_bundle.spec).compute(batch, InMemoryStateStore()).features
    np.testing.assert_array_equal(scored.features, expected)
    np.testing.assert_array_equal(scored.scores, trained_bundle.scores(expected))


def test_dry_run_leaves_state_untouched(trained_bundle: ModelBundle, batch: pd.DataFrame) -> None:
    store = InMemoryStateStore()
    core = ScoringCore(trained_bundle, store)
    core.commit(core.score(batch.iloc[:200]))
    before = state_bytes(store)
    dry = core.score(batch.iloc[200:], apply=False)
    core.commit(dry)  # even committing a dry run changes nothing
    assert state_bytes(store) == before
    assert not dry.update.applied.any()


def test_score_does_not_save_until_commit(trained_bundle: ModelBundle,
                                          batch: pd.DataFrame) -> None:
    store = InMemoryStateStore()
    core = ScoringCore(trained_bundle, store)
    scored = core.score(batch)
    assert store.count("user") == 0 and store.count("merchant") == 0
    core.commit(scored)
    assert store.count("user") == batch["user_id"].nunique()
    assert store.count("merchant") == batch["merchant_id"].nunique()
    rec = store.get("user", str(batch["user_id"].iloc[0]))
    assert rec is not None
    assert rec[0] == (batch["user_id"] == batch["user_id"].iloc[0]).sum()  # U_N
    # Scoring the same batch again after the commit: a replay, nothing applied.
    again = core.score(batch)
    assert not again.update.applied.any()


def test_result_view(trained_bundle: ModelBundle, batch: pd.DataFrame) -> None:
    core = ScoringCore(trained_bundle, InMemoryStateStore(), Thresholds(0.9, 0.99))
    scored = core.score(batch)
    for i in (0, len(batch) - 1):
        res = scored.result(i)
        assert set(res) == RESULT_KEYS
        json.dumps(res)  # API-ready: plain JSON types only
        assert res["transaction_id"] == batch["transaction_id"].iloc[i]
        assert res["anomaly_score"] == round(float(scored.scores[i]), 6)
        assert res["decision"] == DECISIONS[int(scored.decisions[i])]
        assert res["is_anomalous"] is (res["decision"] != "allow")
        assert 0.0 <= res["confidence"] <= 1.0
        assert list(res["features"]) == list(FEATURES)
        assert set(res["detectors"]) == set(trained_bundle.member_names)
        assert all(0.0 <= v <= 1.0 for v in res["detectors"].values())
        assert res["features"]["log_amount"] == pytest.approx(
            math.log1p(batch["amount"].iloc[i]), abs=1e-6)
        assert res["model_version"] == trained_bundle.version
        assert res["processing_time_ms"] >= 0
        assert isinstance(res["reasons"], list) and len(res["reasons"]) <= MAX_REASONS
    last = scored.result(len(batch) - 1)
    assert last["decision"] == "block"
    assert last["is_anomalous"] is True
    assert last["reasons"], "a blocked 3,000,000 payment must say why"


def legacy_result(scored: ScoredBatch, i: int) -> dict[str, Any]:
    """The result view as it was before the response gained anomaly_type, explanation and
    timestamp, computed here from the batch's arrays: those fields must not change."""
    return {
        "transaction_id": str(scored.frame["transaction_id"].iat[i]),
        "anomaly_score": round(float(scored.scores[i]), 6),
        "is_anomalous": bool(scored.decisions[i] > 0),
        "decision": DECISIONS[int(scored.decisions[i])],
        "confidence": round(float(scored.confidence[i]), 4),
        "reasons": explain(scored.features[[i]], scored.reference, scored.strength[[i]])[0],
        "detectors": {
            name: round(float(v), 6)
            for name, v in zip(scored.detectors, scored.contributions[i], strict=True)
        },
        "features": {
            n: round(float(v), 6) for n, v in zip(FEATURES, scored.features[i], strict=True)
        },
        "model_version": scored.model_version,
        "processing_time_ms": round(scored.elapsed_ms, 3),
    }


def test_result_view_keeps_every_field_and_adds_three(
    trained_bundle: ModelBundle, batch: pd.DataFrame
) -> None:
    core = ScoringCore(trained_bundle, InMemoryStateStore(), Thresholds(0.9, 0.99))
    before = time.time()
    scored = core.score(batch)
    after = time.time()
    decisions = set()
    for i in range(len(batch)):
        res = scored.result(i)
        old = legacy_result(scored, i)
        assert {k: res[k] for k in LEGACY_KEYS} == old
        assert set(res) - LEGACY_KEYS == {"anomaly_type", "explanation", "timestamp"}
        assert res["anomaly_type"] == anomaly_family(res["reasons"], res["is_anomalous"])
        assert res["explanation"] == explanation(res["decision"], res["reasons"])
        if res["decision"] == "allow":
            assert (res["anomaly_type"], res["explanation"]) == ("normal", "No anomaly found.")
        else:
            assert res["anomaly_type"] != "normal"
            assert res["explanation"].startswith(("Review: ", "Blocked: "))
        decisions.add(res["decision"])
    assert decisions == {"allow", "review", "block"}
    # The decision time: one for the batch, ISO-8601 UTC to the millisecond, when it was scored.
    stamps = {scored.result(i)["timestamp"] for i in range(len(batch))}
    assert len(stamps) == 1
    [stamp] = stamps
    assert ISO_UTC_MS.fullmatch(stamp)
    at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    assert before - 0.001 <= at <= after + 0.001


def test_result_timestamp_is_the_decision_time_not_the_read_time(
    trained_bundle: ModelBundle, batch: pd.DataFrame
) -> None:
    scored = ScoringCore(trained_bundle, InMemoryStateStore()).score(batch.iloc[:5])
    finished = time.time()
    time.sleep(0.05)
    at = datetime.fromisoformat(scored.result(0)["timestamp"].replace("Z", "+00:00"))
    assert at.timestamp() <= finished + 0.001


def test_blocked_result_explains_itself(trained_bundle: ModelBundle, batch: pd.DataFrame) -> None:
    scored = ScoringCore(trained_bundle, InMemoryStateStore(), Thresholds(0.9, 0.99)).score(batch)
    last = scored.result(len(batch) - 1)  # the 3,000,000 payment on a burner device
    assert last["decision"] == "block"
    assert last["anomaly_type"] == "amount_spike"
    assert last["explanation"].startswith("Blocked: ")
    assert str(last["reasons"][0]["text"]) in last["explanation"]


def test_reasons_for_many_rows(trained_bundle: ModelBundle, batch: pd.DataFrame) -> None:
    scored = ScoringCore(trained_bundle, InMemoryStateStore()).score(batch)
    every = scored.reasons()
    assert len(every) == len(batch)
    some = scored.reasons(np.array([3, len(batch) - 1]))
    assert some == [every[3], every[-1]]


def test_swap(trained_bundle: ModelBundle, training_features: np.ndarray) -> None:
    core = ScoringCore(trained_bundle, InMemoryStateStore())
    same_spec = ModelBundle.train(np.array(training_features[:500]), trained_bundle.spec)
    core.swap(same_spec)
    assert core.bundle is same_spec
    other = ModelBundle.train(np.array(training_features[:500]),
                              FeatureSpec(params=FeatureParams(alpha=0.1)))
    with pytest.raises(ValueError, match="feature parameters"):
        core.swap(other)
    assert core.bundle is same_spec


# --- detectors' feature-level evidence in reason codes -----------------------------------------
def test_flagged_reasons_rank_with_the_detectors_feature_evidence(
    training_features: np.ndarray, batch: pd.DataFrame
) -> None:
    from riskstream.models.tails import MarginalTailsDetector
    from riskstream.scoring.reasons import evidence, merge_detector_evidence

    bundle = ModelBundle.train(
        training_features, FeatureSpec(), detectors=[(MarginalTailsDetector(), 1.0)]
    )
    core = ScoringCore(bundle, InMemoryStateStore())
    scored = core.score(batch, apply=False)
    plain = evidence(scored.features, bundle.reference)
    flagged = scored.decisions > 0
    assert flagged.any() and (~flagged).any()
    # Allowed rows: the rules' own evidence, untouched.
    np.testing.assert_array_equal(scored.strength[~flagged], plain[~flagged])
    # Flagged rows: merged with the detector's per-feature evidence.
    ev = bundle.feature_evidence(scored.features[flagged])
    assert ev is not None and ev.shape == (flagged.sum(), len(bundle.model_features))
    np.testing.assert_allclose(
        scored.strength[flagged], merge_detector_evidence(plain[flagged], ev, bundle.model_features)
    )
    assert (scored.strength[flagged] >= plain[flagged]).all()
    assert (scored.strength[flagged] > plain[flagged]).any()
    assert ((scored.strength > 0) == (plain > 0)).all()  # no code fires that did not


def test_forest_alone_and_old_bundles_rank_by_the_rules_only(
    trained_bundle: ModelBundle, training_features: np.ndarray, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from riskstream.models.tails import MarginalTailsDetector

    assert trained_bundle.feature_evidence(training_features[:10]) is None  # the forest
    bundle = ModelBundle.train(
        training_features, FeatureSpec(), detectors=[(MarginalTailsDetector(), 1.0)]
    )
    path = bundle.save(tmp_path / "tails.npz")
    back = ModelBundle.load(path)
    np.testing.assert_array_equal(
        back.feature_evidence(training_features[:50]),
        bundle.feature_evidence(training_features[:50]),
    )
    # A bundle written before detectors attributed their scores: same file minus the arrays.
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if not k.endswith("_feature_quantiles")}
    np.savez(tmp_path / "old.npz", **arrays)
    old = ModelBundle.load(tmp_path / "old.npz")
    assert old.feature_evidence(training_features[:10]) is None
    np.testing.assert_array_equal(old.scores(training_features), bundle.scores(training_features))
