"""Per-detector view of one scored transaction, for the alert drawer and ``GET /alerts/{id}``.

The results store keeps the final calibrated score and the features, not each detector's
output, so the contributions are recomputed from the stored features with the model being
served — only when the transaction was scored by that same model version (otherwise the
numbers would describe a different model, and the panel says so). Stored features are rounded
to 5 decimals, so a recomputed score can differ from the stored one in the last digits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from riskstream.features.spec import FEATURES
from riskstream.models.bundle import ModelBundle


def detector_scores(
    bundle: ModelBundle, features: Mapping[str, float] | None, model_version: str | None
) -> dict[str, Any]:
    """``{recomputed, note, detectors: [{name, weight, raw, score}], combined: {raw, score}}``.

    ``raw`` is a detector's own output (higher = more anomalous; for the Isolation Forest the
    negated ``score_samples``), ``score`` its calibrated score in [0, 1] (the share of training
    traffic less anomalous); ``combined`` is the ensemble's. One entry per detector in the
    served bundle, so an ensemble lists each member with its weight.
    """
    if not features:
        return {"recomputed": False, "note": "no stored features", "detectors": []}
    if model_version != bundle.version:
        return {
            "recomputed": False,
            "note": f"scored by {model_version}, which is not the model being served "
            f"({bundle.version}): only the stored score is shown",
            "detectors": [],
        }
    x = np.array([[float(features.get(name, 0.0)) for name in FEATURES]])
    raw, combined, per_member = bundle.score_all(x)
    inputs = bundle._inputs(x)  # the detector's view of the features (selected, floored)
    members = [
        {
            "name": m.name,
            "weight": round(m.weight, 4),
            "raw": round(float(m.detector.score(inputs)[0]), 6),
            "score": round(float(per_member[0, k]), 6),
        }
        for k, m in enumerate(bundle.members)
    ]
    return {
        "recomputed": True,
        "note": "recomputed from the stored features with the served model",
        "detectors": members,
        "combined": {"raw": round(float(raw[0]), 6), "score": round(float(combined[0]), 6)},
    }
