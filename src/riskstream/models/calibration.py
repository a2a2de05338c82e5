"""Calibration: raw detector scores -> [0, 1] against the training distribution.

A calibrated score ``p`` means "more anomalous than a share ``p`` of training traffic", so a
threshold of 0.99 alerts on about 1 % of traffic like the training period. The mapping is a
piecewise-linear empirical CDF on quantiles that are dense in the upper tail, where the
thresholds live.

>>> cal = QuantileCalibrator.fit(np.arange(1000.0))
>>> [round(float(v), 3) for v in cal.transform(np.array([-5.0, 499.5, 989.01, 5000.0]))]
[0.0, 0.5, 0.99, 1.0]
"""

from __future__ import annotations

import numpy as np

#: Quantile levels: coarse in the body, dense in the tail (down to 1 in 100,000).
LEVELS = np.unique(
    np.concatenate(
        [
            np.linspace(0.0, 0.9, 91),
            np.linspace(0.9, 0.99, 91),
            np.linspace(0.99, 0.999, 91),
            np.linspace(0.999, 0.99999, 100),
            [1.0],
        ]
    )
)


class QuantileCalibrator:
    def __init__(self, quantiles: np.ndarray, levels: np.ndarray = LEVELS) -> None:
        self.quantiles = np.asarray(quantiles, dtype=np.float64)
        self.levels = np.asarray(levels, dtype=np.float64)

    @classmethod
    def fit(cls, scores: np.ndarray) -> QuantileCalibrator:
        q = np.quantile(np.asarray(scores, dtype=np.float64), LEVELS)
        return cls(np.maximum.accumulate(q))

    def transform(self, scores: np.ndarray) -> np.ndarray:
        q, lv = self.quantiles, self.levels
        # Ties in the quantiles (a flat region) would make interp pick the lowest level; take
        # the highest level reached by each distinct value so "above all training" -> 1.0.
        uq, last = np.unique(q[::-1], return_index=True)
        ul = lv[::-1][last]
        return np.clip(np.interp(scores, uq, ul, left=0.0, right=1.0), 0.0, 1.0)
