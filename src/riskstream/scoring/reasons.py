"""Reason codes: which behaviours drove a score, in plain words, with their values.

Each rule looks at one feature: a physical or behavioural bar (e.g. 900 km/h, 3x the usual
amount) and, where it makes sense, the training distribution (the value must also be in the top
1 % of training traffic, so a code is rare by construction). Rules fire independently of the
detector, so an analyst sees evidence, not model internals; they are ranked by how rare the
value was in training. All of it is vectorised over the batch.

>>> import numpy as np
>>> from riskstream.features.spec import FEATURES
>>> row = np.zeros((1, len(FEATURES))); row[0, FEATURES.index("speed_kmh")] = 2500.0
>>> row[0, FEATURES.index("distance_km")] = 800.0; row[0, FEATURES.index("user_history")] = 3.0
>>> ref = np.zeros((len(FEATURES), 6)); ref[FEATURES.index("log_amount")] = 6.0  # ~400
>>> [r["code"] for r in explain(row, ref)[0]]
['IMPOSSIBLE_TRAVEL']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from riskstream.features.spec import F

if TYPE_CHECKING:  # the vocabulary only: the API contract lives in riskstream.schema
    from riskstream.schema import AnomalyType

#: Columns of the reference quantile table in a model bundle (see models.bundle).
_Q99, _Q995, _Q999 = 3, 4, 5


@dataclass(frozen=True)
class Rule:
    code: str
    feature: str
    minimum: float  # absolute bar the value must reach
    ref_col: int | None  # and the training quantile column it must also reach (None: no)
    text: str  # str.format template; {v} is the value
    needs_history: bool = True  # only for users past the cold start
    #: Strength of a yes/no rule (value/bar is always 1 for them): a never-seen device or
    #: country is identity-change evidence, ranked like a value 5x past its bar.
    flag_strength: float = 0.0


RULES: tuple[Rule, ...] = (
    Rule(
        "IMPOSSIBLE_TRAVEL",
        "speed_kmh",
        900.0,
        None,
        "{v:,.0f} km/h implied travel from the previous transaction",
    ),
    Rule(
        "FAR_FROM_LAST_LOCATION",
        "distance_km",
        500.0,
        _Q99,
        "{v:,.0f} km from the previous transaction",
    ),
    Rule("AMOUNT_FAR_ABOVE_USUAL", "amount_ratio", 3.0, _Q99, "amount {v:.1f}x this user's usual"),
    Rule(
        "REPEATED_HIGH_AMOUNTS",
        "recent_amount_outliers",
        1.5,  # decayed count: about two far-above-usual payments within the last week
        _Q99,
        "{v:.1f} payments far above this user's usual in about a week",
    ),
    Rule(
        "LARGE_AMOUNT",
        "log_amount",
        0.0,
        _Q995,
        "amount {amount:,.2f} is above 99.5% of all transactions",
        needs_history=False,
    ),
    Rule("VELOCITY_1H", "tx_count_1h", 3.0, _Q99, "{v:.0f} transactions in about an hour"),
    Rule("VELOCITY_24H", "tx_count_24h", 6.0, _Q99, "{v:.0f} transactions in about a day"),
    Rule(
        "SPEND_24H_ABOVE_USUAL",
        "amount_sum_24h_ratio",
        5.0,
        _Q99,
        "{v:.1f}x the usual amount spent in about a day",
    ),
    Rule(
        "NEW_DEVICE", "new_device", 1.0, None, "device never seen for this user", flag_strength=5.0
    ),
    Rule(
        "NEW_COUNTRY",
        "new_country",
        1.0,
        None,
        "country never seen for this user",
        flag_strength=5.0,
    ),
    Rule("NEW_CATEGORY", "new_category", 1.0, None, "merchant category new for this user"),
    Rule("NEW_MERCHANT", "new_merchant", 1.0, _Q99, "merchant new for this user"),
    Rule("UNUSUAL_HOUR", "hour_rarity", 0.9, _Q99, "at an hour this user rarely transacts"),
    Rule(
        "MERCHANT_AMOUNT_UNUSUAL",
        "merchant_amount_z",
        3.0,
        _Q99,
        "amount {v:.1f} sd above this merchant's usual",
        needs_history=False,
    ),
    Rule(
        "MERCHANT_BURST",
        "merchant_tx_count_24h",
        10.0,
        _Q999,
        "{v:.0f} transactions at this merchant in about a day",
        needs_history=False,
    ),
    # Label-aware: outcomes reported before this transaction (never its own).
    Rule(
        "MERCHANT_RECENT_FRAUD",
        "merchant_frauds_30d",
        0.5,  # decayed count: about one reported fraud there within the month
        None,
        "{v:.1f} reported frauds at this merchant in about a month",
        needs_history=False,
    ),
    Rule(
        "CARD_KNOWN_COMPROMISED",
        "user_known_compromised",
        1.0,
        None,
        "a payment of this card was reported as fraud",
        needs_history=False,
        flag_strength=8.0,  # the strongest evidence there is: ranked first when it fires
    ),
)
CODES: tuple[str, ...] = tuple(r.code for r in RULES)
MAX_REASONS = 6  # an analyst reads six at a glance; more is noise
_HISTORY_MIN = math.log1p(3)  # user_history = log1p(events); 3 events = past the cold start


def evidence(features: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(n, len(RULES)) strength of each rule per row; 0 where the rule does not fire.

    Strength = value / bar, so ranking favours the evidence furthest past its bar.
    """
    n = len(features)
    out = np.zeros((n, len(RULES)))
    has_history = features[:, F["user_history"]] >= _HISTORY_MIN
    for j, rule in enumerate(RULES):
        v = features[:, F[rule.feature]]
        bar = rule.minimum
        if rule.ref_col is not None:
            bar = max(bar, float(reference[F[rule.feature], rule.ref_col]))
        fires = v >= bar
        if rule.needs_history:
            fires &= has_history
        if rule.code == "FAR_FROM_LAST_LOCATION":
            fires &= features[:, F["speed_kmh"]] < 900.0  # IMPOSSIBLE_TRAVEL says it better
        if rule.flag_strength:
            out[:, j] = np.where(fires, rule.flag_strength, 0.0)
        elif bar > 0:
            out[:, j] = np.where(fires, v / bar, 0.0)
        else:
            out[:, j] = np.where(fires, 1.0 + v - bar, 0.0)
    return out


#: Detector evidence is kept per *model* feature; rules that read a feature the detectors see
#: only folded into another take that one's evidence (``context_amount_ratio`` is the amount
#: ratio raised by the recent-outlier count).
EVIDENCE_FEATURE: dict[str, str] = {
    "amount_ratio": "context_amount_ratio",
    "recent_amount_outliers": "context_amount_ratio",
}
#: Detector evidence of ln(100) nats -- the feature is as unusual, for the detectors, as the
#: top 1 % of training traffic -- doubles a fired rule's rank weight.
EVIDENCE_UNIT = math.log(100.0)


def merge_detector_evidence(
    strength: np.ndarray, detector_evidence: np.ndarray, model_features: tuple[str, ...]
) -> np.ndarray:
    """Rank the fired rules by the detectors' feature-level evidence too.

    ``detector_evidence``: (n, len(model_features)) nats from
    :meth:`ModelBundle.feature_evidence`. A fired rule's strength is multiplied by
    ``1 + evidence / EVIDENCE_UNIT`` of its feature; a rule that did not fire stays at 0 (the
    detectors re-rank the plain-words evidence, they do not invent codes), and rules on
    features no detector reads keep their strength.

    >>> from riskstream.features.spec import FEATURES
    >>> s = np.zeros((1, len(RULES))); big = CODES.index("LARGE_AMOUNT")
    >>> hour = CODES.index("UNUSUAL_HOUR"); s[0, big] = s[0, hour] = 1.2
    >>> ev = np.array([[0.0, 2 * EVIDENCE_UNIT]])     # detectors blame the hour, not the amount
    >>> out = merge_detector_evidence(s, ev, ("log_amount", "hour_rarity"))
    >>> round(float(out[0, hour]), 6), float(out[0, big])
    (3.6, 1.2)
    """
    out = np.array(strength, dtype=np.float64, copy=True)
    index = {name: j for j, name in enumerate(model_features)}
    for r, rule in enumerate(RULES):
        j = index.get(EVIDENCE_FEATURE.get(rule.feature, rule.feature))
        if j is not None:
            out[:, r] *= 1.0 + np.maximum(detector_evidence[:, j], 0.0) / EVIDENCE_UNIT
    return out


def explain(
    features: np.ndarray,
    reference: np.ndarray,
    strength: np.ndarray | None = None,
    limit: int = MAX_REASONS,
) -> list[list[dict[str, object]]]:
    """Reason lists (strongest first) for each row: ``{code, feature, value, text}``."""
    if strength is None:
        strength = evidence(features, reference)
    out: list[list[dict[str, object]]] = []
    order = np.argsort(-strength, axis=1, kind="stable")[:, :limit]
    for i in range(len(features)):
        reasons = []
        for j in order[i]:
            if strength[i, j] <= 0:
                break
            rule = RULES[j]
            v = float(features[i, F[rule.feature]])
            amount = math.expm1(float(features[i, F["log_amount"]]))
            reasons.append(
                {
                    "code": rule.code,
                    "feature": rule.feature,
                    "value": round(v, 4),
                    "text": rule.text.format(v=v, amount=amount),
                }
            )
        out.append(reasons)
    return out


#: The kind of anomaly each code is evidence of (``anomaly_type`` in the API), for clients that
#: route or count alerts by kind. Values are ``riskstream.schema.ANOMALY_TYPES``; besides the
#: families here, ``normal`` is a row that was not flagged and ``other`` a flagged row with no
#: code (the detectors saw what no rule names). Amount evidence of any kind is an amount
#: spike; user-level rates, counts and day spend are velocity; the merchant's own burst is
#: merchant risk, since it is not this user's behaviour.
FAMILY: dict[str, AnomalyType] = {
    "IMPOSSIBLE_TRAVEL": "geo_velocity",
    "FAR_FROM_LAST_LOCATION": "geo_velocity",
    "AMOUNT_FAR_ABOVE_USUAL": "amount_spike",
    "REPEATED_HIGH_AMOUNTS": "amount_spike",
    "LARGE_AMOUNT": "amount_spike",
    "MERCHANT_AMOUNT_UNUSUAL": "amount_spike",
    "VELOCITY_1H": "velocity",
    "VELOCITY_24H": "velocity",
    "SPEND_24H_ABOVE_USUAL": "velocity",
    "NEW_DEVICE": "new_device",
    "NEW_COUNTRY": "new_country",
    "NEW_CATEGORY": "category_shift",
    "NEW_MERCHANT": "new_merchant",
    "UNUSUAL_HOUR": "unusual_time",
    "MERCHANT_BURST": "merchant_risk",
    "MERCHANT_RECENT_FRAUD": "merchant_risk",
    "CARD_KNOWN_COMPROMISED": "compromised_card",
}
#: The sentence names this many reasons; the full list is in ``reasons``.
SENTENCE_REASONS = 3
_VERDICT = {"review": "Review", "block": "Blocked"}


def anomaly_family(reasons: Sequence[Mapping[str, Any]], anomalous: bool) -> AnomalyType:
    """The family of the strongest reason (``reasons`` come strongest first, as
    :func:`explain` returns them); ``normal`` when the row was not flagged.

    >>> anomaly_family([{"code": "NEW_DEVICE"}, {"code": "VELOCITY_1H"}], anomalous=True)
    'new_device'
    >>> anomaly_family([{"code": "LARGE_AMOUNT"}], anomalous=False)
    'normal'
    >>> anomaly_family([], anomalous=True)
    'other'
    """
    if not anomalous:
        return "normal"
    if not reasons:
        return "other"
    return FAMILY.get(str(reasons[0]["code"]), "other")


def explanation(decision: str, reasons: Sequence[Mapping[str, Any]]) -> str:
    """One sentence for a human: the decision and its strongest reasons, in their own words.

    >>> explanation("block", [{"text": "amount 12.4x this user's usual"},
    ...                       {"text": "device never seen for this user"}])
    "Blocked: amount 12.4x this user's usual and device never seen for this user."
    >>> explanation("review", [{"text": t} for t in "abcde"])
    'Review: a, b and c (and 2 more).'
    >>> explanation("review", [])
    'Review: the detectors scored this transaction as unusual; no reason code fired.'
    >>> explanation("allow", [{"text": "merchant new for this user"}])
    'No anomaly found.'
    """
    if decision == "allow":
        return "No anomaly found."
    verdict = _VERDICT.get(decision)
    if verdict is None:
        raise ValueError(f"unknown decision {decision!r}")
    if not reasons:
        return f"{verdict}: the detectors scored this transaction as unusual; no reason code fired."
    texts = [str(r["text"]) for r in reasons[:SENTENCE_REASONS]]
    said = texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " and " + texts[-1]
    more = len(reasons) - len(texts)
    return f"{verdict}: {said}" + (f" (and {more} more)." if more else ".")
