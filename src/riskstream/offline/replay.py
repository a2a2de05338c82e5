"""Offline work on the scoring core: replay history in time order to train and to score.

Both functions stream the file through the same :class:`FeatureEngine` / :class:`ScoringCore`
the online system uses, in chunks, with a fresh state store: a transaction replayed here gets
the score it would have had online. Training never reads ``label`` or ``scenario``: they are
extras, and features are computed from canonical columns only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from riskstream.features import FEATURES, FeatureEngine, FeatureSpec, InMemoryStateStore
from riskstream.features.spec import SEQUENCE
from riskstream.models.base import Detector
from riskstream.models.bundle import DEFAULT_MODEL_FEATURES, ModelBundle
from riskstream.schema import RecordError, validate_frame
from riskstream.scoring.core import DECISIONS, ScoringCore, Thresholds
from riskstream.scoring.reasons import CODES

log = logging.getLogger("riskstream.offline.replay")
CHUNK = 50_000  # rows per replay step: large enough to amortise, small enough for memory


def prepare(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, list[RecordError]]:
    """Validate and sort by time (stable). Returns (valid sorted rows, their input positions,
    errors for the refused rows)."""
    positions = np.arange(len(frame))
    valid, errors = validate_frame(frame)
    bad = np.zeros(len(frame), dtype=bool)
    bad[[e.index for e in errors]] = True
    positions = positions[~bad]
    order = np.argsort(valid["timestamp"].to_numpy(), kind="stable")
    return valid.iloc[order].reset_index(drop=True), positions[order], errors


def replay_features(
    valid: pd.DataFrame,
    spec: FeatureSpec | None = None,
    progress: Callable[[int], None] | None = None,
    sequences: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Features (and, if asked, sequence windows) of every (sorted, valid) row, in order."""
    engine = FeatureEngine(spec)
    store = InMemoryStateStore()
    out = np.empty((len(valid), len(FEATURES)))
    seq = np.empty((len(valid), len(SEQUENCE))) if sequences else None
    for start in range(0, len(valid), CHUNK):
        fb = engine.compute(valid.iloc[start : start + CHUNK], store)
        fb.update.save(store)
        out[start : start + CHUNK] = fb.features
        if seq is not None:
            seq[start : start + CHUNK] = fb.sequences
        if progress:
            progress(min(start + CHUNK, len(valid)))
    return out, seq


def train(
    frame: pd.DataFrame,
    until: float | None = None,
    since: float | None = None,
    model_features: tuple[str, ...] = DEFAULT_MODEL_FEATURES,
    detector: Detector | None = None,
    progress: Callable[[int], None] | None = None,
    detectors: list[tuple[Detector, float]] | None = None,
    combine_rule: str = "max",
) -> ModelBundle:
    """Fit on rows with ``since <= timestamp < until``; earlier rows only warm the state."""
    valid, _, errors = prepare(frame)
    spec = FeatureSpec()
    wants_seq = any(d.inputs == "sequence" for d, _ in (detectors or []))
    X, seqs = replay_features(valid, spec, progress, sequences=wants_seq)
    ts = valid["timestamp"].to_numpy()
    mask = np.ones(len(valid), dtype=bool)
    if until is not None:
        mask &= ts < until
    if since is not None:
        mask &= ts >= since
    info = {
        "rows_total": len(frame),
        "rows_invalid": len(errors),
        "rows_trained": int(mask.sum()),
        "since": since,
        "until": until,
        "features": list(model_features),
    }
    log.info("training on %d of %d rows", mask.sum(), len(frame))
    return ModelBundle.train(
        X[mask],
        spec,
        model_features,
        detector,
        info,
        detectors,
        None if seqs is None else seqs[mask],
        combine_rule,
    )


def score(
    frame: pd.DataFrame,
    bundle: ModelBundle,
    thresholds: Thresholds | None = None,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Score every input row in time order; one output row per input row, in input order.

    Refused rows get ``decision = "invalid"`` and the validation error as their reason.
    """
    valid, positions, errors = prepare(frame)
    core = ScoringCore(bundle, InMemoryStateStore(), thresholds)
    n = len(frame)
    score_ = np.full(n, np.nan)
    raw = np.full(n, np.nan)
    decision = np.full(n, "invalid", dtype=object)
    reasons = np.full(n, "", dtype=object)
    codes = np.array(CODES, dtype=object)
    members = np.full((n, len(bundle.members)), np.nan)
    for start in range(0, len(valid), CHUNK):
        scored = core.score(valid.iloc[start : start + CHUNK])
        core.commit(scored)
        pos = positions[start : start + CHUNK]
        score_[pos] = scored.scores
        raw[pos] = scored.raw
        decision[pos] = np.array(DECISIONS, dtype=object)[scored.decisions]
        reasons[pos] = reason_codes(scored.strength, codes)
        members[pos] = scored.contributions
        if progress:
            progress(min(start + CHUNK, len(valid)))
    for e in errors:
        reasons[e.index] = e.reason
    out = pd.DataFrame(
        {
            "transaction_id": frame["transaction_id"].astype(str).to_numpy()
            if "transaction_id" in frame
            else np.arange(n).astype(str),
            "score": score_,
            "raw_score": raw,
            "decision": decision,
            "reasons": reasons,
            "model_version": bundle.version,
        }
    )
    if len(bundle.members) > 1:  # each member's calibrated score, for per-detector evaluation
        for k, name in enumerate(bundle.member_names):
            out[f"score_{name}"] = members[:, k]
    for col in ("timestamp", "user_id", "amount", "label", "scenario"):
        if col in frame.columns:
            out[col] = frame[col].to_numpy()
    return out


def reason_codes(strength: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Semicolon-joined reason codes per row, strongest first ('' for none)."""
    out = np.full(len(strength), "", dtype=object)
    rows = np.flatnonzero((strength > 0).any(axis=1))
    if rows.size:
        sub = strength[rows]
        order = np.argsort(-sub, axis=1, kind="stable")
        for k, i in enumerate(rows):
            out[i] = ";".join(codes[j] for j in order[k] if sub[k, j] > 0)
    return out
