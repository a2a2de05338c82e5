"""Offline work on the scoring core: replay history in time order to train and to score.

Both functions stream the file through the same :class:`FeatureEngine` / :class:`ScoringCore`
the online system uses, in chunks, with a fresh state store: a transaction replayed here gets
the score it would have had online. Training never reads ``label`` or ``scenario``: they are
extras, and features are computed from canonical columns only.

Outcome labels are given apart (``transaction_id, label, reported_at``, as
:func:`riskstream.schema.validate_labels` returns them). Each is folded into the label-aware
state at its ``reported_at`` -- between the events, as it would have arrived online -- so an
event's features use only labels reported before it, never its own; training also reads the
labels of its rows as the supervised target.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from riskstream.features import (
    FEATURES,
    FeatureEngine,
    FeatureSpec,
    InMemoryStateStore,
    LabelChanges,
)
from riskstream.features.spec import SEQUENCE
from riskstream.models.base import Detector
from riskstream.models.bundle import DEFAULT_MODEL_FEATURES, ModelBundle, informative
from riskstream.schema import RecordError, validate_frame
from riskstream.scoring.core import DECISIONS, ScoringCore, Thresholds
from riskstream.scoring.reasons import CODES

log = logging.getLogger("riskstream.offline.replay")
CHUNK = 50_000  # rows per replay step: large enough to amortise, small enough for memory
#: The supervised model skips training rows from before the label-aware state is warm: the
#: first ~30 days (the longest label window) after the first label was reported, when no
#: merchant could have a month of outcomes yet. Measured on the FDH data: training on those
#: cold rows too costs ~0.02 AP on the test week (docs/models.md).
DAY_S = 86_400.0
LABEL_WARMUP_S = 30 * DAY_S


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


def delayed_labels(frame: pd.DataFrame, days: float) -> pd.DataFrame:
    """A labelled file's own ``label`` column as outcome labels (``transaction_id, label,
    reported_at``), each reported ``days`` after its transaction: what benchmarks and tests
    replay in place of a chargeback feed. Refused rows have none."""
    needed = [c for c in ("transaction_id", "timestamp", "user_id", "amount") if c in frame]
    valid, positions, _ = prepare(frame[needed])  # only what validation of a time needs
    return pd.DataFrame({
        "transaction_id": valid["transaction_id"].astype(str).to_numpy(),
        "label": frame["label"].to_numpy()[positions].astype(np.int8),
        "reported_at": valid["timestamp"].to_numpy(dtype=np.float64) + days * DAY_S,
    })


def label_changes(
    valid: pd.DataFrame, labels: pd.DataFrame | None
) -> tuple[LabelChanges | None, int]:
    """The labels of ``valid``'s rows as changes applying from their ``reported_at``, and
    how many labels name no row of ``valid`` (left out). A transaction's label applies to the
    events after its ``reported_at`` -- and never to itself (``LabelChanges.build``)."""
    if labels is None or not len(labels):
        return None, 0
    # One outcome per transaction: the last one given wins (a correction, or a re-import).
    labels = labels.drop_duplicates("transaction_id", keep="last")
    ids = valid["transaction_id"].astype(str)
    index = pd.Index(ids[~ids.duplicated()].to_numpy())
    first = np.flatnonzero(~ids.duplicated().to_numpy())
    pos = index.get_indexer(labels["transaction_id"].astype(str).to_numpy())
    found = pos >= 0
    rows = first[pos[found]]
    lab = labels[found]
    n = int(found.sum())
    changes = LabelChanges.build(
        lab["transaction_id"].astype(str).to_numpy(dtype=object),
        lab["label"].to_numpy(),
        np.full(n, np.nan),
        valid["user_id"].to_numpy(dtype=object)[rows],
        valid["merchant_id"].to_numpy(dtype=object)[rows],
        valid["timestamp"].to_numpy(dtype=np.float64)[rows],
        lab["reported_at"].to_numpy(dtype=np.float64),
    )
    return changes, int((~found).sum())


def _chunks(
    valid: pd.DataFrame, changes: LabelChanges | None
) -> Iterator[tuple[int, pd.DataFrame, LabelChanges | None]]:
    """Replay steps: each chunk of rows with the label changes due before the next chunk's
    first event (the kernel folds each in before the first event later than it)."""
    ts = valid["timestamp"].to_numpy()
    given = 0
    for start in range(0, len(valid), CHUNK):
        stop = min(start + CHUNK, len(valid))
        part = None
        if changes is not None:
            cut = ts[stop] if stop < len(valid) else np.inf
            upto = int(np.searchsorted(changes.at, cut, side="left"))
            part = changes.take(slice(given, upto)) if upto > given else None
            given = upto
        yield start, valid.iloc[start:stop], part


def replay_features(
    valid: pd.DataFrame,
    spec: FeatureSpec | None = None,
    progress: Callable[[int], None] | None = None,
    sequences: bool = False,
    labels: LabelChanges | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Features (and, if asked, sequence windows) of every (sorted, valid) row, in order."""
    engine = FeatureEngine(spec)
    store = InMemoryStateStore()
    out = np.empty((len(valid), len(FEATURES)))
    seq = np.empty((len(valid), len(SEQUENCE))) if sequences else None
    for start, chunk, part in _chunks(valid, labels):
        fb = engine.compute(chunk, store, labels=part)
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
    labels: pd.DataFrame | None = None,
    supervised_params: dict[str, Any] | None = None,
) -> ModelBundle:
    """Fit on rows with ``since <= timestamp < until``; earlier rows only warm the state.

    With ``labels``, the label-aware features replay them as they were reported, and the
    labels of the fitted rows train the supervised model (a row without one counts as
    legitimate: most transactions are never reported).
    """
    valid, _, errors = prepare(frame)
    spec = FeatureSpec()
    wants_seq = any(d.inputs == "sequence" for d, _ in (detectors or []))
    changes, unmatched = label_changes(valid, labels)
    X, seqs = replay_features(valid, spec, progress, sequences=wants_seq, labels=changes)
    ts = valid["timestamp"].to_numpy()
    mask = np.ones(len(valid), dtype=bool)
    if until is not None:
        mask &= ts < until
    if since is not None:
        mask &= ts >= since
    dropped: tuple[str, ...] = ()
    if model_features == DEFAULT_MODEL_FEATURES and mask.any():
        # The default adapts to the data: features the training rows never vary are left out.
        model_features, dropped = informative(X[mask], model_features)
    info = {
        "rows_total": len(frame),
        "rows_invalid": len(errors),
        "rows_trained": int(mask.sum()),
        "since": since,
        "until": until,
        "features": list(model_features),
        "features_dropped": list(dropped),
    }
    y, warm = None, None
    if labels is not None:
        y = row_labels(valid, labels)[mask]
        warm = ts[mask] >= float(np.min(labels["reported_at"])) + LABEL_WARMUP_S
        if warm.sum() < 0.5 * len(warm):  # a short history: better cold rows than few rows
            warm = np.ones(len(warm), dtype=bool)
        info |= {"labels": len(labels), "labels_unmatched": unmatched,
                 "frauds_trained": int(y[warm].sum()), "rows_supervised": int(warm.sum())}
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
        labels=y,
        supervised_params=supervised_params,
        supervised_rows=warm,
    )


def row_labels(valid: pd.DataFrame, labels: pd.DataFrame) -> np.ndarray:
    """Each row's label from ``labels`` (0 where it has none), as int8."""
    by_id = pd.Series(labels["label"].to_numpy(), index=labels["transaction_id"].astype(str))
    by_id = by_id[~by_id.index.duplicated(keep="last")]
    got = by_id.reindex(valid["transaction_id"].astype(str).to_numpy())
    return got.fillna(0).to_numpy().astype(np.int8)


def score(
    frame: pd.DataFrame,
    bundle: ModelBundle,
    thresholds: Thresholds | None = None,
    progress: Callable[[int], None] | None = None,
    labels: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Score every input row in time order; one output row per input row, in input order.

    Refused rows get ``decision = "invalid"`` and the validation error as their reason.
    ``labels`` are replayed as reported (module docstring): a row's score uses only labels
    reported before it.
    """
    valid, positions, errors = prepare(frame)
    changes, _ = label_changes(valid, labels)
    core = ScoringCore(bundle, InMemoryStateStore(), thresholds)
    n = len(frame)
    score_ = np.full(n, np.nan)
    raw = np.full(n, np.nan)
    decision = np.full(n, "invalid", dtype=object)
    reasons = np.full(n, "", dtype=object)
    codes = np.array(CODES, dtype=object)
    members = np.full((n, len(bundle.member_names)), np.nan)
    for start, chunk, part in _chunks(valid, changes):
        scored = core.score(chunk, labels=part)
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
    if len(bundle.member_names) > 1:  # each member's calibrated score, per-detector evaluation
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
