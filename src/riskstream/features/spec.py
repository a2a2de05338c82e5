"""Feature names, state record layouts and feature parameters (the feature *spec*).

The spec is part of every model bundle: a model is only ever served with the feature
parameters it was trained with, so online and offline features are identical.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# --- per-user record layout (float64 slots) -------------------------------------------------
# Fixed width so a batch of users is one (k, USER_WIDTH) array: cheap to gather, scatter and
# ship to Redis as packed bytes.
U_N = 0  # events applied
U_LAST_TS = 1  # (timestamp, tiebreak) of the last applied event: replay guard
U_LAST_TB = 2
U_MEAN = 3  # EW mean of log1p(amount)
U_VAR = 4  # EW variance of log1p(amount)
U_LAT = 5  # last located event
U_LON = 6
U_LOC_TS = 7
U_C1H, U_S1H, U_C24H, U_S24H, U_C7D, U_S7D = 8, 9, 10, 11, 12, 13  # decayed counts and sums
U_HOURS = 14  # 24 decayed hour-of-day counts (14..37)
U_DEV = 38  # ring of recent device hashes
N_DEV = 4
U_MER = U_DEV + N_DEV  # ring of recent merchant hashes
N_MER = 16
U_CAT = U_MER + N_MER  # ring of recent merchant categories
N_CAT = 8
U_CTY = U_CAT + N_CAT  # ring of recent countries
N_CTY = 4
U_RING_POS = U_CTY + N_CTY  # 4 ring write positions
# The user's last SEQ_LEN transactions, for the sequence model: a ring of SEQ_DIM-value steps
# (log amount, log hours since the previous one, hour of day as sin/cos).
SEQ_LEN = 8
SEQ_DIM = 4
U_SEQ = U_RING_POS + 4
U_SEQ_N = U_SEQ + SEQ_LEN * SEQ_DIM  # steps written so far (ring position = count % SEQ_LEN)
# Decayed (~7 d) count of the user's payments far above their usual amount: a compromised card
# keeps being used, so one outlier makes the next unusual payment much more suspicious.
U_OUT = U_SEQ_N + 1
USER_WIDTH = U_OUT + 1

# --- per-merchant record layout ---------------------------------------------------------------
M_N, M_LAST_TS, M_LAST_TB, M_MEAN, M_VAR, M_C24H, M_USERS24H = 0, 1, 2, 3, 4, 5, 6
MERCHANT_WIDTH = 7

# --- label-aware records: what outcomes (fraud reports) taught us about an entity -----------
# Their own namespaces ("user_label", "merchant_label"), so the behavioural records keep their
# layout (stored state from before stays readable). Slot 0 counts every change: it only
# grows, so it is the records' replay guard against stale writers. Known-fraud counters decay
# by the *transaction's* time (a fraud reported today about last week's payment counts as last
# week's) and are referenced to slot 1: a value v means sum(exp(-(ref - tx_ts) / tau)).
L_VER = 0
L_REF = 1
UL_F30 = 2  # known frauds of the user, ~30 d
UL_ANY = 3  # known frauds of the user, ever (not decayed): the card is known compromised
UL_LAST_FRAUD = 4  # time of the user's latest known fraudulent transaction (0: none)
USER_LABEL_WIDTH = 5
ML_F1, ML_F7, ML_F30 = 2, 3, 4  # known frauds at the merchant, ~1 / 7 / 30 d
ML_L1, ML_L7, ML_L30 = 5, 6, 7  # labelled transactions (either outcome) at the merchant
ML_LAST_FRAUD = 8
ML_TREF = 9  # time of the merchant's last applied transaction: reference of the tx counters
ML_T7, ML_T30 = 10, 11  # decayed transaction counts, ~7 / 30 d
MERCHANT_LABEL_WIDTH = 12

#: State namespaces and their record widths.
WIDTHS: dict[str, int] = {
    "user": USER_WIDTH,
    "merchant": MERCHANT_WIDTH,
    "user_label": USER_LABEL_WIDTH,
    "merchant_label": MERCHANT_LABEL_WIDTH,
}

FEATURES: tuple[str, ...] = (
    "log_amount",  # log1p(amount)
    "amount_z",  # (log amount - user's usual) / user's spread, shrunk to the prior at cold start
    "amount_ratio",  # amount / user's usual amount (geometric mean)
    "log_secs_since_last",  # log1p(seconds since the user's previous transaction)
    "tx_count_1h",  # decayed count of the user's transactions in ~1 h, this one included
    "tx_count_24h",
    "tx_count_7d",
    "amount_sum_1h_ratio",  # decayed amount spent in ~1 h / usual amount
    "amount_sum_24h_ratio",
    "distance_km",  # from the previous located transaction
    "speed_kmh",  # implied travel speed from the previous located transaction
    "new_device",  # 1 if the device is not among the user's recent ones (history required)
    "new_merchant",
    "new_category",
    "new_country",
    "hour_rarity",  # 1 - smoothed share of the user's history at this hour of day
    "merchant_amount_z",  # amount against the merchant's usual amounts
    "merchant_tx_count_24h",  # decayed count at the merchant in ~24 h
    "user_history",  # log1p(events seen for the user): the model knows how much history it has
    # Decayed (~7 d) count of the user's earlier payments far above their usual amount
    # (more than clip_z spreads above): the trace a compromised card leaves.
    "recent_amount_outliers",
    # amount_ratio * (1 + ln(1 + recent_amount_outliers)): an amount somewhat above usual is
    # ordinary on a quiet card and suspicious on one that just paid several outliers (a
    # compromised card's fraud is a multiple of the owner's spend, and a multiple of a small
    # purchase looks ordinary on its own). The log keeps a long run of outliers from swamping
    # the amount itself: 1 outlier -> x1.7, 3 -> x2.4, 10 -> x3.4.
    "context_amount_ratio",
    # ---- label-aware: from outcomes reported *before* this event (never its own) ----
    "merchant_frauds_1d",  # known frauds at the merchant, decayed by transaction time
    "merchant_frauds_7d",
    "merchant_frauds_30d",
    "merchant_tx_count_7d",  # decayed transaction counts at the merchant
    "merchant_tx_count_30d",
    # Smoothed share of fraud among the merchant's labelled transactions, ~1 / 7 / 30 d:
    # (frauds + w * prior) / (labelled + w), the prior rate before any label.
    "merchant_fraud_rate_1d",
    "merchant_fraud_rate_7d",
    "merchant_fraud_rate_30d",
    "merchant_days_since_fraud",  # since the latest known fraud there (capped: never)
    "user_known_compromised",  # 1 once any of the user's transactions is a known fraud
    "user_frauds_30d",
    "user_days_since_fraud",
)
F = {name: i for i, name in enumerate(FEATURES)}

#: The features computed from outcome labels: constant (cold) until labels arrive, so the
#: unsupervised detectors never see them.
LABEL_FEATURES: tuple[str, ...] = FEATURES[F["merchant_frauds_1d"] :]

SEQ_STEP: tuple[str, ...] = ("log_amount", "log_gap_hours", "hour_sin", "hour_cos")
#: The sequence model's input per event: the previous SEQ_LEN steps (oldest first, zero rows
#: where the user has fewer), then this event's step, then how many previous steps are real.
SEQUENCE: tuple[str, ...] = (
    *(f"prev{SEQ_LEN - t}_{d}" for t in range(SEQ_LEN) for d in SEQ_STEP),
    *(f"now_{d}" for d in SEQ_STEP),
    "history_steps",
)


@dataclass(frozen=True)
class FeatureParams:
    """Tunable constants of the feature kernel; stored in every model bundle."""

    #: EW smoothing floor for the user's amount profile: ~1/alpha = 50 transactions of memory.
    #: Before 50 events the mean is the exact running mean (alpha = 1/n).
    alpha: float = 0.02
    #: Once a user has this many events, updates of the amount profile are winsorised at
    #: ``clip_z`` standard deviations so a run of fraud cannot drag "usual" up quickly.
    robust_after: int = 10
    clip_z: float = 2.5
    #: Cold start: the user's mean/variance are shrunk to this population prior with the
    #: weight of ``prior_weight`` pseudo-events. log1p(50) ~ a 50-unit purchase; var 1.0 ~ a
    #: factor e spread, typical of card spend.
    prior_mean: float = math.log1p(50.0)
    prior_var: float = 1.0
    prior_weight: float = 3.0
    #: Variance floor: a user who always pays the same amount must not get infinite z-scores.
    var_floor: float = 0.01
    #: Time constants (seconds) of the decayed velocity counters.
    tau_1h: float = 3600.0
    tau_24h: float = 86400.0
    tau_7d: float = 604800.0
    #: Hour-of-day histogram decay per event and Laplace smoothing.
    hour_decay: float = 0.98
    hour_smoothing: float = 0.5
    #: Novelty is only judged once the user has this many events (cold-start rule).
    min_history: int = 3
    #: Speed is computed over at least one minute, so two nearby events a second apart do not
    #: imply supersonic travel from GPS jitter.
    min_travel_secs: float = 60.0
    #: "time since last" for a user's first transaction: 30 days.
    first_gap_secs: float = 30 * 86400.0
    merchant_alpha: float = 0.01
    #: Time constant of the ~30-day counters (label-aware features).
    tau_30d: float = 30 * 86400.0
    #: Fraud-rate smoothing: the rate before any label, and its weight in labelled
    #: transactions. 0.5 % is a typical card fraud rate by count; 20 pseudo-transactions keep
    #: one unlucky report from making a merchant look fully compromised.
    label_prior_rate: float = 0.005
    label_prior_weight: float = 2.0
    #: "days since the last known fraud" when there is none.
    never_days: float = 365.0

    def as_array(self) -> np.ndarray:
        return np.array(
            [
                self.alpha,
                self.robust_after,
                self.clip_z,
                self.prior_mean,
                self.prior_var,
                self.prior_weight,
                self.var_floor,
                self.tau_1h,
                self.tau_24h,
                self.tau_7d,
                self.hour_decay,
                self.hour_smoothing,
                self.min_history,
                self.min_travel_secs,
                self.first_gap_secs,
                self.merchant_alpha,
                self.tau_30d,
                self.label_prior_rate,
                self.label_prior_weight,
                self.never_days,
            ],
            dtype=np.float64,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FeatureSpec:
    """What a model was trained on: feature names (in order) and kernel parameters."""

    names: tuple[str, ...] = FEATURES
    params: FeatureParams = field(default_factory=FeatureParams)

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "params": self.params.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        return cls(names=tuple(data["names"]), params=FeatureParams(**data["params"]))
