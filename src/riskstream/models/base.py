"""The detector interface. Verbs: ``fit`` on history, ``score`` a batch; higher = more anomalous.

Contract (``tests/models/test_detector_contract.py`` runs it for every detector):
* ``fit(X, names)`` learns from a 2-D float array whose columns are named ``names``.
* ``score(X)`` returns one finite float per row, higher = more anomalous; it never mutates X.
* ``to_arrays()`` / ``from_arrays()`` round-trip exactly (identical scores), using only numpy
  arrays and JSON-able metadata: model files never contain pickles.
* Optionally ``feature_scores(X)``: how anomalous each row is *on each feature* (higher =
  more), for detectors that can attribute their score; the bundle calibrates it per feature
  on the training data and reason codes rank their evidence with it
  (``riskstream.scoring.reasons``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np


class Detector(ABC):
    kind: ClassVar[str]
    #: What the detector reads: "features" (the bundle's model features, transformed) or
    #: "sequence" (the user's recent-steps window, ``features.spec.SEQUENCE``).
    inputs: ClassVar[str] = "features"
    #: Online detectors also implement ``learn(X, mask)`` and keep learning while serving.
    online: ClassVar[bool] = False
    names: tuple[str, ...]

    @abstractmethod
    def fit(self, X: np.ndarray, names: tuple[str, ...]) -> Detector: ...

    @abstractmethod
    def score(self, X: np.ndarray) -> np.ndarray: ...

    def feature_scores(self, X: np.ndarray) -> np.ndarray | None:
        """(n, features) per-feature anomaly, higher = more; ``None``: cannot attribute."""
        return None

    @abstractmethod
    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able metadata, named arrays)."""

    @classmethod
    @abstractmethod
    def from_arrays(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Detector: ...
