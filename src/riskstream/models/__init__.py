"""Detectors, calibration and model bundles.

Contract: a :class:`Detector` is fitted on history and scores batches, higher = more anomalous;
a :class:`ModelBundle` wraps one with its feature spec and calibration, scores to [0, 1], and
saves to a pickle-free ``.npz``.
"""

from riskstream.models.base import Detector
from riskstream.models.bundle import FEATURE_SETS, ModelBundle
from riskstream.models.calibration import QuantileCalibrator
from riskstream.models.iforest import IsolationForestDetector

__all__ = [
    "FEATURE_SETS",
    "Detector",
    "IsolationForestDetector",
    "ModelBundle",
    "QuantileCalibrator",
]
