"""Outcome labels online: received, folded into the label-aware state with the next batch,
marked applied once that batch's state is saved; never twice, and kept across a restart."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from riskstream.features import spec as S
from riskstream.service.runtime import Runtime
from riskstream.settings import Settings

T0 = 1_704_067_200.0


def record(rt: Any, make_frame: Callable[..., pd.DataFrame], tx: str, ts: float,
           user: str = "u1", merchant: str = "m1") -> dict[str, float]:
    """Score one transaction and record it as the stream does; its features."""
    scored = rt.core.score(make_frame([{"transaction_id": tx, "timestamp": ts,
                                        "user_id": user, "merchant_id": merchant}]))
    rt.writer.record(scored)
    return dict(zip(S.FEATURES, scored.features[0].tolist(), strict=True))


def report(rt: Any, tx: str, label: int = 1) -> dict[str, int]:
    frame = pd.DataFrame({"transaction_id": [tx], "label": [label],
                          "reported_at": [time.time()]})
    counts = rt.results.upsert_labels(frame, "api")
    return counts


def merchant_frauds(rt: Any) -> float:
    row = rt.core.state.get("merchant_label", "m1")
    return 0.0 if row is None else float(row[S.ML_F30])


def test_a_label_reaches_the_next_batch_once(
    make_runtime: Callable[..., Any], make_frame: Callable[..., pd.DataFrame]
) -> None:
    rt = make_runtime()
    before = record(rt, make_frame, "a", T0)
    assert before["user_known_compromised"] == 0.0
    assert report(rt, "a")["new"] == 1
    assert rt.labels_received(["a"]) == 1
    assert rt.labels_received(["a"]) == 0  # already queued: not twice
    after = record(rt, make_frame, "b", T0 + 60)
    assert after["user_known_compromised"] == 1.0
    assert after["merchant_frauds_30d"] > 0.99
    assert rt.results.labels_to_apply() == []  # marked applied with the batch
    assert rt.core.labels_waiting == 0
    once = merchant_frauds(rt)
    # The same label again: unchanged in the store, nothing to fold in.
    assert report(rt, "a")["unchanged"] == 1
    assert rt.sweep_labels(force=True) == 0
    record(rt, make_frame, "c", T0 + 120)
    assert merchant_frauds(rt) == once
    # A replayed transaction (already stored) does not count its label again either.
    record(rt, make_frame, "b", T0 + 60)
    assert merchant_frauds(rt) == once


def test_a_label_before_its_transaction_waits_for_it(
    make_runtime: Callable[..., Any], make_frame: Callable[..., pd.DataFrame]
) -> None:
    rt = make_runtime()
    assert report(rt, "z")["new"] == 1
    assert rt.labels_received(["z"]) == 0  # unknown transaction: kept in the store
    own = record(rt, make_frame, "z", T0)
    assert own["user_known_compromised"] == 0.0  # never its own label
    assert rt.sweep_labels(force=True) == 1  # the transaction is known now
    later = record(rt, make_frame, "y", T0 + 60)
    assert later["user_known_compromised"] == 1.0


def test_label_state_survives_a_restart_without_double_counting(
    tmp_path: Any, tiny_bundle: Any, make_frame: Callable[..., pd.DataFrame]
) -> None:
    settings = Settings(home=tmp_path / "home")
    rt = Runtime.build(settings, bundle=tiny_bundle)
    record(rt, make_frame, "a", T0)
    report(rt, "a")
    rt.labels_received(["a"])
    record(rt, make_frame, "b", T0 + 60)
    saved = rt.core.state.get("merchant_label", "m1").copy()
    # Imported while running but never folded in (no batch since): left for the next start.
    record(rt, make_frame, "p", T0 + 90, user="u2", merchant="m2")
    report(rt, "p")
    rt.close()
    again = Runtime.build(settings, bundle=tiny_bundle)
    try:
        np.testing.assert_array_equal(again.core.state.get("merchant_label", "m1"), saved)
        assert again.sweep_labels(force=True) == 1  # only "p": "a" was applied before
        record(again, make_frame, "q", T0 + 120, user="u2", merchant="m2")
        assert again.core.state.get("user_label", "u2")[S.UL_ANY] == 1.0
        np.testing.assert_array_equal(again.core.state.get("merchant_label", "m1"), saved)
    finally:
        again.close()


def test_an_idle_stream_folds_waiting_labels_in_without_traffic(
    make_runtime: Callable[..., Any], make_frame: Callable[..., pd.DataFrame]
) -> None:
    from riskstream.pipeline import Pipeline
    from riskstream.transport import InProcessQueue

    rt = make_runtime()
    pipe = Pipeline(rt.core, InProcessQueue(), rt.results, rt.metrics, lock=rt.lock)
    record(rt, make_frame, "a", T0)
    assert not pipe.apply_waiting_labels()  # nothing waiting
    report(rt, "a")
    assert rt.sweep_labels(force=True) == 1
    assert merchant_frauds(rt) == 0.0
    pipe.last_batch_at = time.time()
    assert not pipe.apply_waiting_labels()  # traffic is flowing: the next batch takes it
    pipe.last_batch_at = time.time() - 5
    assert pipe.apply_waiting_labels()
    assert merchant_frauds(rt) > 0.99 and rt.core.labels_waiting == 0
    got = rt.results.get_label("a")
    assert got is not None and got["applied"] == 1 and got["claimed_until"] is None
    assert rt.sweep_labels(force=True) == 0
