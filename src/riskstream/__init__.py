"""riskstream: real-time anomaly and fraud detection for payment transactions.

Packages by concern: ``features`` (per-user state and feature kernels), ``models``
(detectors, calibration, model bundles), ``core`` (the one scoring core), ``transport``
(sources and sinks), ``storage`` (results stores), ``api`` (FastAPI app), ``simulate``
(synthetic data with labelled fraud scenarios), ``evaluation`` (honest detection metrics).
"""

__version__ = "0.1.0"
