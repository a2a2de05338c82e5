"""Calibration: raw detector scores -> [0, 1] against the training distribution.

A calibrated score ``p`` means "more anomalous than a share ``p`` of training traffic", so a
threshold of 0.99 alerts on about 1 % of traffic like the training period. The mapping is a
piecewise-linear empirical CDF on quantiles that are dense in the upper tail, where the
thresholds live. Past the densest tail level (1 in 100,000) an exponential tail keeps
scores strictly ordered instead of tying them at 1.0.

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
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    def _distinct(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct quantile values and the highest level each reaches (ties in the quantiles
        are a flat region of the CDF). Computed once: the quantiles never change after
        construction, and the sort cost ~30 µs on every batch of every member."""
        cached = self._cache
        if cached is None:
            values, _, highest = distinct_quantiles(self.quantiles, self.levels)
            cached = self._cache = (values, highest)
        return cached

    @classmethod
    def fit(cls, scores: np.ndarray) -> QuantileCalibrator:
        q = np.quantile(np.asarray(scores, dtype=np.float64), LEVELS)
        return cls(np.maximum.accumulate(q))

    def surprisal(self, scores: np.ndarray) -> np.ndarray:
        """``-ln(1 - p)``: unbounded, so scores past the training tail stay ordered.

        Below the last tail quantile it follows the empirical CDF; beyond it an exponential
        tail fitted on the levels 0.999 .. 0.99999 carries on (so two scores above every
        training score do not tie at p = 1, which would blur the ranking where alerts live).
        """
        uq, ul = self._distinct()
        scores = np.asarray(scores, dtype=np.float64)
        p = np.interp(scores, uq, ul, left=0.0, right=ul[-1])
        out = -np.log1p(-p)
        beyond = scores > uq[-1]
        out[beyond] = exponential_tail(uq, ul, scores[beyond])
        return out

    def transform(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated score ``p`` in [0, 1]: the share of training scores below."""
        return np.clip(-np.expm1(-self.surprisal(scores)), 0.0, 1.0)


#: The exponential tail is fitted from this level up to the last dense level (0.99999).
_TAIL_FROM = 0.999


def distinct_quantiles(
    quantiles: np.ndarray, levels: np.ndarray = LEVELS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct quantile values (the last level, 1.0, left out) with the lowest and highest
    level at which each is reached: a flat run of quantiles is a point mass in the data."""
    body = levels < 1.0
    q, lv = quantiles[body], levels[body]
    values, first = np.unique(q, return_index=True)
    _, last_rev = np.unique(q[::-1], return_index=True)
    return values, lv[first], lv[len(q) - 1 - last_rev]


def exponential_tail(values: np.ndarray, levels: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Surprisal ``-ln(1 - p)`` of ``x`` past the last of the distinct, increasing quantile
    ``values`` (reached at ``levels``): the line through the surprisals at the levels
    0.999 and 0.99999 carried on, at least one nat per tail width, so scores above every
    training score stay ordered instead of tying."""
    q_b, s_b = values[-1], -np.log1p(-levels[-1])
    anchor = min(int(np.searchsorted(levels, _TAIL_FROM)), len(values) - 1)
    q_a, s_a = values[anchor], -np.log1p(-levels[anchor])
    width = q_b - q_a if q_b > q_a else max(abs(q_b), 1.0) * 1e-9
    slope = max(s_b - s_a, 1.0) / width
    return s_b + slope * (np.asarray(x, dtype=np.float64) - q_b)
