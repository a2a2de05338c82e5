"""A model bundle: everything needed to score, in one ``.npz`` file with no pickles.

It holds the feature spec (names and kernel parameters), the detector's input transform (which
features, and the floor under each "risk goes up" feature), the fitted detector, the score
calibration, and per-feature reference quantiles used to word reason codes. Loading uses
``allow_pickle=False``, so a model file cannot execute code.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from riskstream.features.spec import FEATURES, LABEL_FEATURES, SEQUENCE, F, FeatureSpec
from riskstream.models.autoencoder import AutoencoderDetector
from riskstream.models.base import Detector
from riskstream.models.calibration import LEVELS, QuantileCalibrator
from riskstream.models.hst import HalfSpaceTreesDetector
from riskstream.models.iforest import IsolationForestDetector
from riskstream.models.sequence import SequenceDetector
from riskstream.models.supervised import MIN_FRAUDS, GradientBoostedTrees, Supervised
from riskstream.models.tails import MarginalTailsDetector

DETECTORS: dict[str, type[Detector]] = {
    IsolationForestDetector.kind: IsolationForestDetector,
    AutoencoderDetector.kind: AutoencoderDetector,
    SequenceDetector.kind: SequenceDetector,
    HalfSpaceTreesDetector.kind: HalfSpaceTreesDetector,
    MarginalTailsDetector.kind: MarginalTailsDetector,
}
#: The seed design's ensemble weights (Isolation Forest 0.4, autoencoder 0.4, sequence 0.2)
#: plus the online Half-Space Trees at the Isolation Forest's weight, used by
#: ``parse_detectors("seed")``. Under the default "max" rule a weight scales how sure a member
#: must be to raise the alarm: the sequence model (0.2) needs twice the surprisal of the others.
SEED_WEIGHTS: dict[str, float] = {
    "isolation_forest": 0.4,
    "autoencoder": 0.4,
    "sequence": 0.2,
    "half_space_trees": 0.4,
}


def parse_detectors(spec: str) -> list[tuple[Detector, float]]:
    """``"isolation_forest:0.4,autoencoder:0.4"`` -> fresh (detector, weight)s; ``seed`` in the
    list stands for the seed design's members (:data:`SEED_WEIGHTS`).

    >>> [(d.kind, w) for d, w in parse_detectors("isolation_forest:1")]
    [('isolation_forest', 1.0)]
    >>> [d.kind for d, _ in parse_detectors("seed,marginal_tails:0.4")][-2:]
    ['half_space_trees', 'marginal_tails']
    """
    pairs: list[tuple[str, float]] = []
    for part in spec.split(","):
        name, _, weight = part.strip().partition(":")
        if name == "seed" and not weight:
            pairs.extend(SEED_WEIGHTS.items())
        else:
            pairs.append((name.strip(), float(weight or 1.0)))
    out = []
    for name, weight in pairs:
        if name not in DETECTORS:
            raise ValueError(f"unknown detector {name!r}; known: {sorted(DETECTORS)}")
        out.append((DETECTORS[name](), weight))
    if len({d.kind for d, _ in out}) < len(out):
        raise ValueError(f"a detector is listed twice in {spec!r}")
    return out


def default_detectors() -> list[tuple[Detector, float]]:
    """Isolation Forest alone: no PyTorch needed to train it, half the CPU of the ensemble.
    ``riskstream train --detectors seed`` trains the ensemble, which scores a little higher
    on the FDH data (docs/models.md: AP 0.292 vs 0.289 on the test week)."""
    return [(IsolationForestDetector(), 1.0)]


@dataclass
class Member:
    """One detector of the ensemble with its own calibration and weight."""

    detector: Detector
    calibrator: QuantileCalibrator
    weight: float
    #: (levels, features) training quantiles of the detector's ``feature_scores``, for
    #: detectors that attribute their score to features (else None).
    feature_quantiles: np.ndarray | None = None
    _feature_cals: list[QuantileCalibrator] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def name(self) -> str:
        return self.detector.kind

    def feature_evidence(self, X: np.ndarray) -> np.ndarray:
        """(n, features) surprisal of each feature's share of this detector's score against
        training (``-ln`` of the share of training rows it exceeds): nats, like the scores.
        Only for members with ``feature_quantiles``."""
        raw = self.detector.feature_scores(X)
        assert raw is not None and self.feature_quantiles is not None
        if self._feature_cals is None:
            q = self.feature_quantiles
            self._feature_cals = [QuantileCalibrator(q[:, j]) for j in range(q.shape[1])]
        return np.column_stack(
            [cal.surprisal(raw[:, j]) for j, cal in enumerate(self._feature_cals)]
        )


#: Features where only high values are risky (a small amount, few recent transactions, no
#: travel are never suspicious in themselves). The detector sees them floored at their training
#: median, so it isolates only the risky tail. The rest are two-sided.
RISK_UP: frozenset[str] = frozenset(FEATURES) - {"log_secs_since_last", "user_history"}

#: Default detector inputs: the behavioural features that carry risk. ``user_history`` is
#: context (reason wording, cold start), not evidence, so it is left out of the detector.
#: ``amount_ratio`` and ``recent_amount_outliers`` are in, combined, through
#: ``context_amount_ratio``: given apart, a card's recent outliers make *every* payment of it
#: look anomalous, its ordinary ones included (measured on the FDH data: s1 recall 1.0 -> 0.55).
DEFAULT_MODEL_FEATURES: tuple[str, ...] = tuple(
    f
    for f in FEATURES
    if f not in {"user_history", "amount_ratio", "recent_amount_outliers", *LABEL_FEATURES}
)
#: What the supervised trees read (with the ensemble's surprisal): every feature. Trees
#: ignore what does not help, and the label-aware ones are their main evidence.
SUPERVISED_FEATURES: tuple[str, ...] = FEATURES

#: Preset for data with amounts and merchants only (no devices, locations, categories), such
#: as the Fraud Detection Handbook set: the always-zero features are dropped.
AMOUNT_MODEL_FEATURES: tuple[str, ...] = ("log_amount", "context_amount_ratio")

FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "default": DEFAULT_MODEL_FEATURES,
    "amount": AMOUNT_MODEL_FEATURES,
}

REFERENCE_LEVELS = np.array([0.5, 0.9, 0.95, 0.99, 0.995, 0.999])


def informative(
    features: np.ndarray, names: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``names`` split into those that vary over the rows of ``features`` (columns =
    ``FEATURES``) and those with one value on every row: a column the data does not carry
    (no device, location or category in the Fraud Detection Handbook data) gives a constant
    feature, which tells no detector anything and costs an Isolation Forest splits.

    >>> X = np.zeros((4, len(FEATURES))); X[:, F["log_amount"]] = [1, 2, 3, 4]
    >>> informative(X, ("log_amount", "new_device"))
    (('log_amount',), ('new_device',))
    """
    keep = tuple(n for n in names if np.ptp(features[:, F[n]]) > 0)
    return keep, tuple(n for n in names if n not in keep)


@dataclass
class ModelBundle:
    spec: FeatureSpec
    model_features: tuple[str, ...]
    floors: np.ndarray  # per model feature: lower clip (-inf for two-sided features)
    members: list[Member]
    calibrator: QuantileCalibrator  # of the weighted member scores -> ensemble score in [0, 1]
    reference: np.ndarray  # (len(FEATURES), len(REFERENCE_LEVELS)) training quantiles
    version: str = ""
    created_at: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    #: How member surprisals become one raw score: "max" or "mean" (see :func:`combine`).
    combine_rule: str = "max"
    #: Trees learnt from outcome labels, blended with the ensemble (None: unsupervised only).
    supervised: Supervised | None = None
    #: Calibration of the blended score (with ``supervised``; else ``calibrator`` is final).
    final_calibrator: QuantileCalibrator | None = None

    @property
    def detector(self) -> Detector:
        """The first (main) detector."""
        return self.members[0].detector

    @property
    def member_names(self) -> tuple[str, ...]:
        """The detectors, then the supervised model when there is one."""
        names = tuple(m.name for m in self.members)
        return names + ((self.supervised.name,) if self.supervised is not None else ())

    # -- training ---------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        features: np.ndarray,
        spec: FeatureSpec,
        model_features: tuple[str, ...] = DEFAULT_MODEL_FEATURES,
        detector: Detector | None = None,
        info: dict[str, Any] | None = None,
        detectors: list[tuple[Detector, float]] | None = None,
        sequences: np.ndarray | None = None,
        combine_rule: str = "max",
        labels: np.ndarray | None = None,
        supervised_params: dict[str, Any] | None = None,
        supervised_rows: np.ndarray | None = None,
    ) -> ModelBundle:
        """Fit on a full feature matrix (columns = ``FEATURES``) of the training period.

        ``detector`` trains that one detector alone; ``detectors`` an ensemble of
        ``(detector, weight)``; neither: :func:`default_detectors`. With ``labels`` (0/1 per
        row, rows in time order) holding at least ``MIN_FRAUDS`` frauds, gradient-boosted
        trees are trained beside them (:class:`~riskstream.models.supervised.Supervised`),
        on the rows where ``supervised_rows`` is true (default: all).
        """
        if len(features) < 10:
            raise ValueError("need at least 10 training transactions")
        unknown = set(model_features) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown features: {sorted(unknown)}")
        if detector is not None:
            detectors = [(detector, 1.0)]
        detectors = detectors or default_detectors()
        if any(w < 0 for _, w in detectors) or sum(w for _, w in detectors) <= 0:
            raise ValueError("ensemble weights must be >= 0 with a positive sum")
        if combine_rule not in COMBINE_RULES:
            raise ValueError(f"unknown combine rule {combine_rule!r}; known: {COMBINE_RULES}")
        cols = [F[name] for name in model_features]
        floors = np.array(
            [
                np.median(features[:, F[name]]) if name in RISK_UP else -np.inf
                for name in model_features
            ]
        )
        X = np.maximum(features[:, cols], floors)
        members = []
        for det, weight in detectors:
            if det.inputs == "sequence":
                if sequences is None:
                    raise ValueError(f"{det.kind} needs the sequence window (sequences=...)")
                det.fit(sequences, SEQUENCE)
                raw = det.score(sequences)
            else:
                det.fit(X, tuple(model_features))
                raw = det.score(X)
            members.append(
                Member(det, QuantileCalibrator.fit(raw), float(weight), _feature_quantiles(det, X))
            )
        combined = _combined(members, _surprisals(members, X, sequences), combine_rule)
        reference = np.quantile(features, REFERENCE_LEVELS, axis=0).T
        bundle = cls(
            spec,
            tuple(model_features),
            floors,
            members,
            QuantileCalibrator.fit(combined),
            reference,
            info=dict(info or {}),
            combine_rule=combine_rule,
        )
        rows = np.ones(len(features), dtype=bool) if supervised_rows is None else supervised_rows
        if labels is not None and int(np.sum(labels[rows])) >= MIN_FRAUDS:
            unsup = bundle.calibrator.surprisal(combined)
            bundle.supervised = Supervised.fit(
                features[rows][:, [F[n] for n in SUPERVISED_FEATURES]],
                unsup[rows],
                labels[rows],
                SUPERVISED_FEATURES,
                QuantileCalibrator.fit,
                **(supervised_params or {}),
            )
            sup = bundle.supervised
            final = np.maximum(
                sup.surprisal(np.column_stack([features[:, bundle._sup_cols], unsup])),
                sup.blend * unsup,
            )
            bundle.final_calibrator = QuantileCalibrator.fit(final)
            bundle.info["supervised"] = sup.report
        elif labels is not None:
            bundle.info["supervised"] = {
                "skipped": f"{int(np.sum(labels[rows]))} known frauds (< {MIN_FRAUDS})"
            }
        bundle.created_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        kind = members[0].name if len(members) == 1 else "ensemble"
        if bundle.supervised is not None:
            kind = "supervised"
        bundle.version = f"{kind}-{bundle.created_at[:10]}-{bundle.fingerprint()[:8]}"
        return bundle

    # -- scoring -----------------------------------------------------------------------------
    def _inputs(self, features: np.ndarray) -> np.ndarray:
        cols = [F[name] for name in self.model_features]
        return np.maximum(features[:, cols], self.floors)

    def _member_surprisal(self, features: np.ndarray, sequences: np.ndarray | None) -> np.ndarray:
        return _surprisals(self.members, self._inputs(features), sequences)

    @property
    def _sup_cols(self) -> list[int]:
        assert self.supervised is not None
        return [F[n] for n in self.supervised.features]

    def contributions(
        self, features: np.ndarray, sequences: np.ndarray | None = None
    ) -> np.ndarray:
        """(n, members) calibrated score of each detector (and the supervised model), in
        [0, 1]."""
        return self.score_all(features, sequences)[2]

    def raw_scores(self, features: np.ndarray, sequences: np.ndarray | None = None) -> np.ndarray:
        """The members' surprisals combined by the bundle's rule (before the final
        calibration), blended with the supervised model's when there is one."""
        return self.score_all(features, sequences)[0]

    def scores(self, features: np.ndarray, sequences: np.ndarray | None = None) -> np.ndarray:
        """Calibrated anomaly scores in [0, 1]."""
        return self.score_all(features, sequences)[1]

    def score_all(
        self,
        features: np.ndarray,
        sequences: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(raw, calibrated, per-member calibrated) in one pass."""
        surprisal = self._member_surprisal(features, sequences)
        raw = _combined(self.members, surprisal, self.combine_rule)
        sup = self.supervised
        if sup is None or self.final_calibrator is None:
            return raw, self.calibrator.transform(raw), -np.expm1(-surprisal)
        unsup = self.calibrator.surprisal(raw)
        sup_s = sup.surprisal(np.column_stack([features[:, self._sup_cols], unsup]))
        final = np.maximum(sup_s, sup.blend * unsup)
        members = -np.expm1(-np.column_stack([surprisal, sup_s]))
        return final, self.final_calibrator.transform(final), members

    def feature_evidence(self, features: np.ndarray) -> np.ndarray | None:
        """(n, model features) how strongly the detectors tie each row's anomaly to each model
        feature, in nats (weighted like the ``max`` rule: a member with half the weight counts
        half); ``None`` when no member attributes its score to features."""
        attributing = [
            m
            for m in self.members
            if m.feature_quantiles is not None and m.detector.inputs == "features"
        ]
        if not attributing:
            return None
        X = self._inputs(features)
        top = max(m.weight for m in self.members) or 1.0
        out: np.ndarray | None = None
        for m in attributing:
            ev = m.feature_evidence(X) * (m.weight / top)
            out = ev if out is None else np.maximum(out, ev)
        return out

    def learn_online(self, features: np.ndarray, mask: np.ndarray) -> None:
        """Online members learn the rows where ``mask`` (e.g. the allowed events) is true."""
        online = [m.detector for m in self.members if m.detector.online]
        if online and mask.any():
            X = self._inputs(features)
            for det in online:
                det.learn(X, mask)  # type: ignore[attr-defined]

    @property
    def needs_sequences(self) -> bool:
        return any(m.detector.inputs == "sequence" for m in self.members)

    # -- persistence -------------------------------------------------------------------------
    def _arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        metas = []
        arrays: dict[str, np.ndarray] = {}
        for k, m in enumerate(self.members):
            det_meta, det_arrays = m.detector.to_arrays()
            metas.append({"detector": det_meta, "weight": m.weight})
            arrays |= {f"m{k}__{name}": v for name, v in det_arrays.items()}
            arrays[f"m{k}_cal_quantiles"] = m.calibrator.quantiles
            arrays[f"m{k}_cal_levels"] = m.calibrator.levels
            if m.feature_quantiles is not None:
                arrays[f"m{k}_feature_quantiles"] = m.feature_quantiles
        meta = {
            "format": 2,
            "version": self.version,
            "created_at": self.created_at,
            "spec": self.spec.to_dict(),
            "model_features": list(self.model_features),
            "members": metas,
            "combine": self.combine_rule,
            "info": self.info,
        }
        sup = self.supervised
        if sup is not None and self.final_calibrator is not None:
            model_meta, trees = sup.model.to_arrays()
            meta["supervised"] = {
                "model": model_meta,
                "features": list(sup.features),
                "blend": sup.blend,
                "report": sup.report,
            }
            arrays |= {f"sup__{k}": v for k, v in trees.items()}
            arrays["sup_cal_quantiles"] = sup.calibrator.quantiles
            arrays["sup_cal_levels"] = sup.calibrator.levels
            arrays["final_cal_quantiles"] = self.final_calibrator.quantiles
            arrays["final_cal_levels"] = self.final_calibrator.levels
        arrays |= {
            "floors": self.floors,
            "cal_quantiles": self.calibrator.quantiles,
            "cal_levels": self.calibrator.levels,
            "reference": self.reference,
        }
        return meta, arrays

    def fingerprint(self) -> str:
        meta, arrays = self._arrays()
        h = hashlib.sha256(
            json.dumps(
                [meta["members"], meta["combine"], meta.get("supervised", {}).get("blend")],
                sort_keys=True,
            ).encode()
        )
        for k in sorted(arrays):
            h.update(k.encode())
            h.update(np.ascontiguousarray(arrays[k]).tobytes())
        return h.hexdigest()

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta, arrays = self._arrays()
        buf = io.BytesIO()
        blob = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        np.savez_compressed(buf, meta=blob, **arrays)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(buf.getvalue())
        tmp.replace(path)  # atomic: a reader never sees half a model
        return path

    @classmethod
    def load(cls, path: str | Path) -> ModelBundle:
        with np.load(Path(path), allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes().decode())
            arrays = {k: data[k] for k in data.files if k != "meta"}
        if meta.get("format") != 2:
            raise ValueError(f"unsupported model format: {meta.get('format')} (retrain)")
        members = []
        for k, m in enumerate(meta["members"]):
            det_cls = DETECTORS[m["detector"]["kind"]]
            prefix = f"m{k}__"
            det = det_cls.from_arrays(
                m["detector"],
                {n[len(prefix) :]: v for n, v in arrays.items() if n.startswith(prefix)},
            )
            cal = QuantileCalibrator(arrays[f"m{k}_cal_quantiles"], arrays[f"m{k}_cal_levels"])
            # Bundles written before detectors attributed their scores have none: their
            # reason codes rank by the rules' own evidence only.
            fq = arrays.get(f"m{k}_feature_quantiles")
            members.append(Member(det, cal, float(m["weight"]), fq))
        supervised, final_cal = None, None
        if "supervised" in meta:
            sm = meta["supervised"]
            trees = {n[5:]: v for n, v in arrays.items() if n.startswith("sup__")}
            supervised = Supervised(
                GradientBoostedTrees.from_arrays(sm["model"], trees),
                tuple(sm["features"]),
                QuantileCalibrator(arrays["sup_cal_quantiles"], arrays["sup_cal_levels"]),
                float(sm["blend"]),
                sm.get("report"),
            )
            final_cal = QuantileCalibrator(
                arrays["final_cal_quantiles"], arrays["final_cal_levels"]
            )
        reference = arrays["reference"]
        if reference.shape[0] < len(FEATURES):
            # Bundles from before the label-aware features: those features never reach a
            # rule's reference bar (an infinite quantile), as nothing was learnt about them.
            pad = np.full((len(FEATURES) - reference.shape[0], reference.shape[1]), np.inf)
            reference = np.vstack([reference, pad])
        return cls(
            spec=FeatureSpec.from_dict(meta["spec"]),
            model_features=tuple(meta["model_features"]),
            floors=arrays["floors"],
            members=members,
            calibrator=QuantileCalibrator(arrays["cal_quantiles"], arrays["cal_levels"]),
            reference=reference,
            version=meta["version"],
            created_at=meta["created_at"],
            info=meta.get("info", {}),
            # Bundles written before the rule was stored combined by the weighted mean.
            combine_rule=meta.get("combine", "mean"),
            supervised=supervised,
            final_calibrator=final_cal,
        )


def _feature_quantiles(det: Detector, X: np.ndarray) -> np.ndarray | None:
    """Training quantiles of a detector's per-feature scores (None if it has none)."""
    raw = det.feature_scores(X)
    if raw is None:
        return None
    return np.maximum.accumulate(np.quantile(raw, LEVELS, axis=0), axis=0)


def _surprisals(members: list[Member], X: np.ndarray, sequences: np.ndarray | None) -> np.ndarray:
    cols = []
    for m in members:
        if m.detector.inputs == "sequence":
            if sequences is None:
                raise ValueError(f"{m.name} needs the sequence window")
            cols.append(m.calibrator.surprisal(m.detector.score(sequences)))
        else:
            cols.append(m.calibrator.surprisal(m.detector.score(X)))
    return np.column_stack(cols)


COMBINE_RULES = ("max", "mean")


def _combined(members: list[Member], surprisal: np.ndarray, rule: str) -> np.ndarray:
    """:func:`combine` with the members' weights."""
    return combine(surprisal, np.array([m.weight for m in members]), rule)


def combine(surprisal: np.ndarray, weights: np.ndarray, rule: str = "max") -> np.ndarray:
    """(n, members) surprisals -ln(1 - p) -> one raw score per row.

    ``"max"``: the largest of ``surprisal * weight / max(weight)``: an ensemble alarm when any
    member is sure (an "or" of evidence), a lower-weighted member having to be surer to count.
    ``"mean"``: the weighted mean: members must agree. Surprisal, not p, so a member that is
    very sure counts for a lot in either rule. Measured on the FDH data (two time-ordered
    development weeks, before the test week; docs/models.md), "max" of Isolation Forest and
    Half-Space Trees raises AP over the best member, "mean" does not: fraud is typically seen
    by one detector, not all.

    >>> s = np.array([[4.0, 0.0], [1.0, 1.0]])
    >>> w = np.array([1.0, 1.0])
    >>> combine(s, w, "max").tolist(), combine(s, w, "mean").tolist()
    ([4.0, 1.0], [2.0, 1.0])
    >>> combine(s, np.array([0.5, 1.0]), "max").tolist()
    [2.0, 1.0]
    """
    if rule == "mean":
        return surprisal @ weights / weights.sum()
    if rule == "max":
        return (surprisal * (weights / weights.max())).max(axis=1)
    raise ValueError(f"unknown combine rule {rule!r}; known: {COMBINE_RULES}")
