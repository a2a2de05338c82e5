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

from riskstream.features.spec import FEATURES, F, FeatureSpec
from riskstream.models.base import Detector
from riskstream.models.calibration import QuantileCalibrator
from riskstream.models.iforest import IsolationForestDetector

DETECTORS: dict[str, type[Detector]] = {IsolationForestDetector.kind: IsolationForestDetector}

#: Features where only high values are risky (a small amount, few recent transactions, no
#: travel are never suspicious in themselves). The detector sees them floored at their training
#: median, so it isolates only the risky tail. The rest are two-sided.
RISK_UP: frozenset[str] = frozenset(FEATURES) - {"log_secs_since_last", "user_history"}

#: Default detector inputs: the behavioural features that carry risk. ``user_history`` is
#: context (reason wording, cold start), not evidence, so it is left out of the detector.
DEFAULT_MODEL_FEATURES: tuple[str, ...] = tuple(f for f in FEATURES if f != "user_history")

#: Preset for data with amounts and merchants only (no devices, locations, categories), such
#: as the Fraud Detection Handbook set: the always-zero features are dropped.
AMOUNT_MODEL_FEATURES: tuple[str, ...] = ("log_amount", "amount_ratio")

FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "default": DEFAULT_MODEL_FEATURES,
    "amount": AMOUNT_MODEL_FEATURES,
}

REFERENCE_LEVELS = np.array([0.5, 0.9, 0.95, 0.99, 0.995, 0.999])


@dataclass
class ModelBundle:
    spec: FeatureSpec
    model_features: tuple[str, ...]
    floors: np.ndarray  # per model feature: lower clip (-inf for two-sided features)
    detector: Detector
    calibrator: QuantileCalibrator
    reference: np.ndarray  # (len(FEATURES), len(REFERENCE_LEVELS)) training quantiles
    version: str = ""
    created_at: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    # -- training ---------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        features: np.ndarray,
        spec: FeatureSpec,
        model_features: tuple[str, ...] = DEFAULT_MODEL_FEATURES,
        detector: Detector | None = None,
        info: dict[str, Any] | None = None,
    ) -> ModelBundle:
        """Fit on a full feature matrix (columns = ``FEATURES``) of the training period."""
        if len(features) < 10:
            raise ValueError("need at least 10 training transactions")
        unknown = set(model_features) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown features: {sorted(unknown)}")
        cols = [F[name] for name in model_features]
        floors = np.array(
            [
                np.median(features[:, F[name]]) if name in RISK_UP else -np.inf
                for name in model_features
            ]
        )
        X = np.maximum(features[:, cols], floors)
        detector = (detector or IsolationForestDetector()).fit(X, tuple(model_features))
        calibrator = QuantileCalibrator.fit(detector.score(X))
        reference = np.quantile(features, REFERENCE_LEVELS, axis=0).T
        bundle = cls(spec, tuple(model_features), floors, detector, calibrator, reference,
                     info=dict(info or {}))
        bundle.created_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        bundle.version = f"{detector.kind}-{bundle.created_at[:10]}-{bundle.fingerprint()[:8]}"
        return bundle

    # -- scoring -----------------------------------------------------------------------------
    def raw_scores(self, features: np.ndarray) -> np.ndarray:
        cols = [F[name] for name in self.model_features]
        return self.detector.score(np.maximum(features[:, cols], self.floors))

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Calibrated anomaly scores in [0, 1]."""
        return self.calibrator.transform(self.raw_scores(features))

    # -- persistence -------------------------------------------------------------------------
    def _arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        det_meta, det_arrays = self.detector.to_arrays()
        meta = {
            "format": 1, "version": self.version, "created_at": self.created_at,
            "spec": self.spec.to_dict(), "model_features": list(self.model_features),
            "detector": det_meta, "info": self.info,
        }
        arrays = {f"det__{k}": v for k, v in det_arrays.items()}
        arrays |= {
            "floors": self.floors, "cal_quantiles": self.calibrator.quantiles,
            "cal_levels": self.calibrator.levels, "reference": self.reference,
        }
        return meta, arrays

    def fingerprint(self) -> str:
        _, arrays = self._arrays()
        h = hashlib.sha256()
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
        if meta.get("format") != 1:
            raise ValueError(f"unsupported model format: {meta.get('format')}")
        det_cls = DETECTORS[meta["detector"]["kind"]]
        det = det_cls.from_arrays(
            meta["detector"], {k[5:]: v for k, v in arrays.items() if k.startswith("det__")}
        )
        return cls(
            spec=FeatureSpec.from_dict(meta["spec"]),
            model_features=tuple(meta["model_features"]),
            floors=arrays["floors"],
            detector=det,
            calibrator=QuantileCalibrator(arrays["cal_quantiles"], arrays["cal_levels"]),
            reference=arrays["reference"],
            version=meta["version"],
            created_at=meta["created_at"],
            info=meta.get("info", {}),
        )
