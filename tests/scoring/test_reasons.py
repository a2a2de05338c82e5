"""Reason codes: rule by rule on hand-made rows, and end to end through the scoring core."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from riskstream.features import FEATURES, InMemoryStateStore
from riskstream.features.spec import F
from riskstream.models import ModelBundle
from riskstream.schema import ANOMALY_TYPES
from riskstream.scoring.core import ScoredBatch, ScoringCore
from riskstream.scoring.reasons import (
    CODES,
    FAMILY,
    MAX_REASONS,
    RULES,
    SENTENCE_REASONS,
    anomaly_family,
    evidence,
    explain,
    explanation,
)

FrameFactory = Callable[..., pd.DataFrame]  # the make_frame fixture (tests/conftest.py)

T0 = 1_704_067_200.0
DAY = 86400.0
PARIS = (48.8566, 2.3522)
NEW_YORK = (40.7128, -74.0060)
HISTORY = math.log1p(20)  # user_history of a user with 20 past events


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


def reference(**q99: float) -> np.ndarray:
    """A reference quantile table: zeros, except the given features' upper quantiles."""
    ref = np.zeros((len(FEATURES), 6))
    for name, value in q99.items():
        ref[F[name], 3:] = [value, value * 1.1, value * 1.2]  # q99, q99.5, q99.9
    return ref


def row(**values: float) -> np.ndarray:
    out = np.zeros((1, len(FEATURES)))
    out[0, F["user_history"]] = HISTORY
    for name, value in values.items():
        out[0, F[name]] = value
    return out


def codes(reasons: list[dict[str, Any]]) -> list[str]:
    return [str(r["code"]) for r in reasons]


# --- the rule table -------------------------------------------------------------------------------
def test_rule_table() -> None:
    assert len(set(CODES)) == len(CODES) == len(RULES)
    for rule in RULES:
        assert rule.feature in FEATURES, rule.code
        assert rule.code.isupper()
    assert MAX_REASONS >= 1


# --- rule by rule, hand-made rows -----------------------------------------------------------------
def test_quiet_row_has_no_reasons() -> None:
    ref = reference(log_amount=6.0)
    strength = evidence(row(log_amount=math.log1p(50)), ref)
    assert strength.shape == (1, len(RULES))
    assert not strength.any()
    assert explain(row(log_amount=math.log1p(50)), ref) == [[]]


def test_impossible_travel() -> None:
    ref = reference(log_amount=6.0)
    [reasons] = explain(row(speed_kmh=2700.0, distance_km=900.0), ref)
    assert codes(reasons) == ["IMPOSSIBLE_TRAVEL"]  # FAR_FROM_LAST_LOCATION is implied
    assert reasons[0]["value"] == 2700.0
    assert reasons[0]["feature"] == "speed_kmh"
    assert reasons[0]["text"] == "2,700 km/h implied travel from the previous transaction"
    s = evidence(row(speed_kmh=2700.0, distance_km=900.0), ref)
    assert s[0, CODES.index("IMPOSSIBLE_TRAVEL")] == pytest.approx(3.0)  # value / bar


def test_far_from_last_location_at_plausible_speed() -> None:
    ref = reference(log_amount=6.0, distance_km=20.0)
    [reasons] = explain(row(speed_kmh=800.0, distance_km=1000.0), ref)
    assert codes(reasons) == ["FAR_FROM_LAST_LOCATION"]
    assert reasons[0]["text"] == "1,000 km from the previous transaction"
    # The training distribution raises the bar: 1000 km is ordinary if 1 % travel 2000 km.
    assert explain(row(speed_kmh=800.0, distance_km=1000.0),
                   reference(log_amount=6.0, distance_km=2000.0)) == [[]]


def test_amount_far_above_usual_bar() -> None:
    ref = reference(log_amount=9.0, amount_ratio=2.0)
    [reasons] = explain(row(amount_ratio=10.0), ref)
    assert codes(reasons) == ["AMOUNT_FAR_ABOVE_USUAL"]
    assert reasons[0]["text"] == "amount 10.0x this user's usual"
    assert evidence(row(amount_ratio=10.0), ref)[0, CODES.index("AMOUNT_FAR_ABOVE_USUAL")] == (
        pytest.approx(10.0 / 3.0))  # the absolute bar (3x) is above the training q99 (2x)
    assert explain(row(amount_ratio=2.9), ref) == [[]]
    # A training q99 above the absolute bar takes over.
    ref_high = reference(log_amount=9.0, amount_ratio=5.0)
    assert explain(row(amount_ratio=4.0), ref_high) == [[]]
    s = evidence(row(amount_ratio=10.0), ref_high)
    assert s[0, CODES.index("AMOUNT_FAR_ABOVE_USUAL")] == pytest.approx(2.0)


def test_history_required_for_behavioural_rules() -> None:
    ref = reference(log_amount=6.0)
    busy = dict(speed_kmh=5000.0, amount_ratio=50.0, new_device=1.0, new_country=1.0,
                tx_count_1h=10.0)
    assert set(codes(explain(row(**busy), ref)[0])) >= {"IMPOSSIBLE_TRAVEL", "NEW_DEVICE"}
    for history in (0.0, math.log1p(2)):
        assert explain(row(**busy, user_history=history), ref) == [[]]
    # Exactly three past events is enough.
    assert explain(row(**busy, user_history=math.log1p(3)), ref)[0]


def test_large_amount_needs_no_history() -> None:
    ref = reference(log_amount=math.log1p(1000.0))
    big = row(log_amount=math.log1p(100_000.0), user_history=0.0)
    [reasons] = explain(big, ref)
    assert codes(reasons) == ["LARGE_AMOUNT"]
    assert reasons[0]["text"] == "amount 100,000.00 is above 99.5% of all transactions"
    assert explain(row(log_amount=math.log1p(500.0), user_history=0.0), ref) == [[]]


def test_merchant_rules_need_no_history() -> None:
    ref = reference(log_amount=9.0, merchant_amount_z=1.0, merchant_tx_count_24h=5.0)
    [reasons] = explain(row(merchant_amount_z=6.0, merchant_tx_count_24h=30.0, user_history=0.0),
                        ref)
    assert set(codes(reasons)) == {"MERCHANT_AMOUNT_UNUSUAL", "MERCHANT_BURST"}


@pytest.mark.parametrize("code", ["NEW_DEVICE", "NEW_COUNTRY", "NEW_CATEGORY"])
def test_novelty_flags(code: str) -> None:
    rule = RULES[CODES.index(code)]
    [reasons] = explain(row(**{rule.feature: 1.0}), reference(log_amount=9.0))
    assert codes(reasons) == [code]
    assert reasons[0]["value"] == 1.0


def test_reasons_sorted_strongest_first_and_capped() -> None:
    ref = reference(log_amount=5.0)
    everything = row(speed_kmh=4500.0, amount_ratio=12.0, log_amount=8.0, tx_count_1h=9.0,
                     tx_count_24h=30.0, amount_sum_24h_ratio=40.0, new_device=1.0,
                     new_country=1.0, new_category=1.0, new_merchant=1.0, hour_rarity=0.99,
                     merchant_amount_z=7.0, merchant_tx_count_24h=50.0)
    strength = evidence(everything, ref)[0]
    assert (strength > 0).sum() > MAX_REASONS  # more rules fire than are shown
    [reasons] = explain(everything, ref)
    assert len(reasons) == MAX_REASONS
    shown = [strength[CODES.index(c)] for c in codes(reasons)]
    assert shown == sorted(shown, reverse=True)
    assert min(shown) >= np.sort(strength)[::-1][MAX_REASONS - 1]
    assert codes(reasons)[0] == CODES[int(np.argmax(strength))] == "SPEND_24H_ABOVE_USUAL"  # 8x
    assert len(explain(everything, ref, limit=2)[0]) == 2
    assert explain(everything, ref, limit=2)[0] == reasons[:2]


def test_explain_batch_and_precomputed_strength() -> None:
    ref = reference(log_amount=9.0)
    rows = np.vstack([row(), row(new_device=1.0), row(speed_kmh=1800.0)])
    out = explain(rows, ref)
    assert [codes(r) for r in out] == [[], ["NEW_DEVICE"], ["IMPOSSIBLE_TRAVEL"]]
    assert explain(rows, ref, evidence(rows, ref)) == out
    for reasons in out:
        for r in reasons:
            assert set(r) == {"code", "feature", "value", "text"}


# --- end to end: a user with history, scored through the core ---------------------------------
@pytest.fixture
def core(trained_bundle: ModelBundle, make_frame: FrameFactory) -> ScoringCore:
    """A core whose state holds 20 days of one steady user: 12:00 daily in Paris, ~50, d1."""
    c = ScoringCore(trained_bundle, InMemoryStateStore())
    history = make_frame([
        {"transaction_id": f"h{i}", "user_id": "victim", "timestamp": T0 + i * DAY + 12 * 3600,
         "amount": 45.0 + 10.0 * (i % 2), "merchant_id": "bakery", "merchant_category": "food",
         "country": "FR", "lat": PARIS[0], "lon": PARIS[1], "device_id": "d1"}
        for i in range(20)
    ])
    c.commit(c.score(history))
    return c


LAST = T0 + 19 * DAY + 12 * 3600  # the victim's last transaction


def probe_scored(core: ScoringCore, make_frame: FrameFactory, **overrides: Any) -> ScoredBatch:
    """A dry run of one transaction 10 minutes after the victim's last, like it by default."""
    tx = {"transaction_id": "probe", "user_id": "victim", "timestamp": LAST + 600,
          "amount": 50.0, "merchant_id": "bakery", "merchant_category": "food", "country": "FR",
          "lat": PARIS[0], "lon": PARIS[1], "device_id": "d1", **overrides}
    return core.score(make_frame([tx]), apply=False)


def probe(core: ScoringCore, make_frame: FrameFactory, **overrides: Any) -> list[dict[str, Any]]:
    scored = probe_scored(core, make_frame, **overrides)
    reasons = scored.result(0)["reasons"]
    strengths = [scored.strength[0, CODES.index(r["code"])] for r in reasons]
    assert strengths == sorted(strengths, reverse=True)
    assert len(reasons) <= MAX_REASONS
    return reasons


def test_ordinary_transaction_has_no_reasons(core: ScoringCore, make_frame: FrameFactory) -> None:
    assert probe(core, make_frame) == []


def test_e2e_impossible_travel(core: ScoringCore, make_frame: FrameFactory) -> None:
    reasons = probe(core, make_frame, lat=NEW_YORK[0], lon=NEW_YORK[1])
    assert codes(reasons) == ["IMPOSSIBLE_TRAVEL"]
    expected = haversine_km(PARIS, NEW_YORK) / (600 / 3600)
    assert reasons[0]["value"] == pytest.approx(expected, rel=1e-6)
    assert reasons[0]["text"] == f"{reasons[0]['value']:,.0f} km/h implied travel from the " \
                                 "previous transaction"


def test_e2e_amount_far_above_usual(core: ScoringCore, make_frame: FrameFactory) -> None:
    reasons = probe(core, make_frame, amount=500.0)
    found = [r for r in reasons if r["code"] == "AMOUNT_FAR_ABOVE_USUAL"]
    assert len(found) == 1
    assert found[0]["value"] == pytest.approx(10.0, rel=0.05)
    assert re.fullmatch(r"amount (9\.[5-9]|10\.[0-4])x this user's usual", str(found[0]["text"]))
    # The rest is about the amount too, never about identity or travel.
    assert set(codes(reasons)) <= {"AMOUNT_FAR_ABOVE_USUAL", "LARGE_AMOUNT",
                                   "MERCHANT_AMOUNT_UNUSUAL", "SPEND_24H_ABOVE_USUAL"}


def test_e2e_new_device(core: ScoringCore, make_frame: FrameFactory) -> None:
    reasons = probe(core, make_frame, device_id="burner")
    assert codes(reasons) == ["NEW_DEVICE"]
    assert reasons[0]["text"] == "device never seen for this user"


def test_e2e_many_signals_capped_and_ranked(core: ScoringCore, make_frame: FrameFactory) -> None:
    odd = dict(lat=NEW_YORK[0], lon=NEW_YORK[1], amount=500.0, device_id="burner", country="US",
               merchant_id="casino", merchant_category="gambling")
    reasons = probe(core, make_frame, **odd)
    n_fired = int((probe_scored(core, make_frame, **odd).strength[0] > 0).sum())
    assert n_fired >= 7
    assert len(reasons) == min(MAX_REASONS, n_fired)
    assert codes(reasons)[0] == "IMPOSSIBLE_TRAVEL"
    assert {"NEW_DEVICE", "NEW_COUNTRY"} <= set(codes(reasons))


def test_cold_start_first_transaction(core: ScoringCore, make_frame: FrameFactory) -> None:
    # Everything about it is "new", but a first transaction has nothing to be new against.
    odd = dict(user_id="newcomer", device_id="burner", country="US", lat=NEW_YORK[0],
               lon=NEW_YORK[1], merchant_id="", merchant_category="gambling")
    assert probe(core, make_frame, **odd, amount=80.0) == []
    huge = probe(core, make_frame, **odd, amount=100_000.0)
    assert codes(huge) == ["LARGE_AMOUNT"]
    assert huge[0]["text"] == "amount 100,000.00 is above 99.5% of all transactions"
    # At a known merchant the amount is also unusual for the merchant: still no user rules.
    at_merchant = probe(core, make_frame, **{**odd, "merchant_id": "bakery"}, amount=100_000.0)
    assert set(codes(at_merchant)) == {"LARGE_AMOUNT", "MERCHANT_AMOUNT_UNUSUAL"}


# --- anomaly families and the one-sentence explanation ----------------------------------------
@pytest.mark.parametrize("code", CODES)
def test_every_code_has_a_family(code: str) -> None:
    assert FAMILY[code] in ANOMALY_TYPES
    assert FAMILY[code] not in {"normal", "other"}  # those two say "no code"
    assert anomaly_family([{"code": code}], anomalous=True) == FAMILY[code]


def test_family_table_is_exactly_the_codes_and_uses_every_family() -> None:
    assert set(FAMILY) == set(CODES)
    assert set(FAMILY.values()) | {"normal", "other"} == set(ANOMALY_TYPES)  # no dead names


def test_family_is_the_strongest_reasons() -> None:
    ref = reference(log_amount=5.0)
    rows = np.vstack([row(new_device=1.0, tx_count_1h=9.0),  # 5 (flag) vs 3 = 9/3
                      row(new_device=1.0, tx_count_1h=30.0),  # 10 vs 5
                      row()])
    reasons = explain(rows, ref)
    assert [codes(r)[:1] for r in reasons] == [["NEW_DEVICE"], ["VELOCITY_1H"], []]
    assert [anomaly_family(r, anomalous=True) for r in reasons] == [
        "new_device", "velocity", "other"]
    assert [anomaly_family(r, anomalous=False) for r in reasons] == ["normal"] * 3


def test_family_of_an_unknown_code_is_other() -> None:
    # Reasons stored by an older release may carry a code this one no longer has.
    assert anomaly_family([{"code": "RETIRED_RULE"}], anomalous=True) == "other"


def test_explanation_allow_review_block() -> None:
    amount = {"text": "amount 12.4x this user's usual"}
    device = {"text": "device never seen for this user"}
    assert explanation("allow", []) == "No anomaly found."
    assert explanation("allow", [amount]) == "No anomaly found."  # below the review threshold
    assert explanation("review", [device]) == "Review: device never seen for this user."
    assert explanation("block", [amount, device]) == (
        "Blocked: amount 12.4x this user's usual and device never seen for this user.")
    assert explanation("block", []).startswith("Blocked: the detectors scored")


def test_explanation_names_the_strongest_few() -> None:
    reasons = [{"text": f"r{i}"} for i in range(MAX_REASONS)]
    said = explanation("block", reasons)
    assert said == "Blocked: r0, r1 and r2 (and 3 more)."
    assert SENTENCE_REASONS == 3
    assert explanation("block", reasons[:3]) == "Blocked: r0, r1 and r2."


def test_explanation_refuses_an_unknown_decision() -> None:
    with pytest.raises(ValueError, match="unknown decision"):
        explanation("maybe", [])


def test_explanation_from_real_reason_texts() -> None:
    ref = reference(log_amount=5.0)
    [reasons] = explain(row(speed_kmh=2700.0, amount_ratio=12.0, new_device=1.0), ref)
    said = explanation("block", reasons)
    assert said.startswith("Blocked: ") and said.endswith(".")
    for r in reasons[:SENTENCE_REASONS]:
        assert str(r["text"]) in said
