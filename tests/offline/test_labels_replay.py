"""Outcome labels in the offline replay: point-in-time label-aware features, the supervised
member beside the detectors, and cold start."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskstream.features.spec import LABEL_FEATURES, F
from riskstream.models import ModelBundle
from riskstream.models.bundle import AMOUNT_MODEL_FEATURES
from riskstream.models.tails import MarginalTailsDetector
from riskstream.offline import replay
from riskstream.simulate import SimConfig, simulate

DAY = 86_400.0


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    """14 simulated days with ~2 % fraud: enough known frauds for the trees."""
    return simulate(SimConfig(n_users=400, n_merchants=60, days=14.0, seed=7, fraud_rate=0.02))


def delayed(frame: pd.DataFrame, days: float = 2.0) -> pd.DataFrame:
    """Every row's label, reported ``days`` after its transaction."""
    return replay.delayed_labels(frame, days)


def features(frame: pd.DataFrame, labels: pd.DataFrame | None) -> pd.DataFrame:
    valid, _, _ = replay.prepare(frame)
    changes, _ = replay.label_changes(valid, labels)
    X, _ = replay.replay_features(valid, labels=changes)
    return pd.DataFrame(X, columns=list(F)).assign(timestamp=valid["timestamp"].to_numpy())


def test_a_label_counts_only_for_events_after_it_was_reported(history: pd.DataFrame) -> None:
    labels = delayed(history)
    cut = float(np.quantile(labels["reported_at"], 0.3))
    early = labels[labels["reported_at"] < cut]
    # The labels reported after `cut` are left out: nothing before `cut` may change.
    with_all = features(history, labels)
    with_early = features(history, early)
    before = with_all["timestamp"] <= cut
    assert before.sum() > 1000
    pd.testing.assert_frame_equal(with_all[before], with_early[before])
    # ... and they do change later events (the test can fail).
    assert not with_all[~before][list(LABEL_FEATURES)].equals(
        with_early[~before][list(LABEL_FEATURES)]
    )


def test_no_event_sees_its_own_label_even_if_reported_before_it(history: pd.DataFrame) -> None:
    labels = delayed(history)
    frauds = labels[labels["label"] == 1].head(30)
    # Reported a day *before* the transaction happened: still not applied to it.
    early = frauds.assign(reported_at=frauds["reported_at"] - 3 * DAY)
    valid, _, _ = replay.prepare(history)
    changes, _ = replay.label_changes(valid, early)
    assert changes is not None
    at = dict(zip(changes.transaction_ids, changes.at, strict=True))
    tx_ts = dict(zip(valid["transaction_id"].astype(str), valid["timestamp"], strict=True))
    assert all(at[t] >= tx_ts[t] for t in at)
    own = features(history, early).set_index(valid["transaction_id"].astype(str).to_numpy())
    none = features(history, None).set_index(own.index)
    ids = frauds["transaction_id"].tolist()
    # The first of each card's reported frauds is scored as if nothing were known.
    first = valid[valid["transaction_id"].isin(ids)].drop_duplicates("user_id")["transaction_id"]
    assert (own.loc[first, "user_known_compromised"] == 0).all()
    pd.testing.assert_series_equal(
        own.loc[first, "user_frauds_30d"], none.loc[first, "user_frauds_30d"]
    )


def test_labels_re_sent_or_duplicated_count_once(history: pd.DataFrame) -> None:
    labels = delayed(history)
    twice = pd.concat([labels, labels])  # a re-import: the last of each id wins
    pd.testing.assert_frame_equal(features(history, labels), features(history, twice))


def test_supervised_member_learns_from_labels_and_saves(
    history: pd.DataFrame, tmp_path: object
) -> None:
    labels = delayed(history)
    valid, _, _ = replay.prepare(history)
    until = float(valid["timestamp"].iloc[int(len(valid) * 0.7)])
    bundle = replay.train(
        history.drop(columns=["label", "scenario"]), until=until,
        model_features=AMOUNT_MODEL_FEATURES, detector=MarginalTailsDetector(), labels=labels,
    )
    assert bundle.supervised is not None
    assert bundle.member_names[-1] == "gradient_boosting"
    assert bundle.info["supervised"]["blend"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    path = bundle.save(tmp_path / "m.npz")  # type: ignore[operator]
    again = ModelBundle.load(path)
    scored = replay.score(history, bundle, labels=labels)
    rescored = replay.score(history, again, labels=labels)
    np.testing.assert_allclose(scored["score"], rescored["score"])
    test = scored[scored["timestamp"].to_numpy() >= until + 2 * DAY]
    unsup = replay.train(
        history.drop(columns=["label", "scenario"]), until=until,
        model_features=AMOUNT_MODEL_FEATURES, detector=MarginalTailsDetector(),
    )
    plain = replay.score(history, unsup)
    plain = plain[plain["timestamp"].to_numpy() >= until + 2 * DAY]
    from riskstream.offline.evaluation import average_precision

    assert average_precision(test["label"], test["score"]) > average_precision(
        plain["label"], plain["score"]
    )


def test_cold_start_without_labels_is_the_unsupervised_model(history: pd.DataFrame) -> None:
    frame = history.drop(columns=["label", "scenario"])
    bundle = replay.train(frame, model_features=AMOUNT_MODEL_FEATURES,
                          detector=MarginalTailsDetector())
    assert bundle.supervised is None and "supervised" not in bundle.info
    # Too few known frauds: the trees are skipped, and the bundle says why.
    few = delayed(history)
    few = few[few["label"] == 0]
    skipped = replay.train(frame, model_features=AMOUNT_MODEL_FEATURES,
                           detector=MarginalTailsDetector(), labels=few)
    assert skipped.supervised is None
    assert "skipped" in skipped.info["supervised"]
    # Label-aware features sit at their cold values and reach no unsupervised detector.
    X = features(history, None)
    assert (X["merchant_frauds_30d"] == 0).all() and (X["user_known_compromised"] == 0).all()
    assert not set(LABEL_FEATURES) & set(bundle.model_features)
