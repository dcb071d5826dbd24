"""The reference detector: a plain rolling-window Gaussian z-score.

For each row, the mean and standard deviation of the previous ``window`` rows (fewer at the
start, from 10 on); ``z = (x - mean) / std``; the score is the two-sided Gaussian
probability mass within ``|z|``, ``erf(|z| / sqrt(2))`` in ``[0, 1)``; a row is a detection at
``|z| >= 3`` (the textbook three-sigma rule). The textbook detector NAB ships as "windowed
Gaussian" (there with a window of 6,400 rows advanced 100 at a time), written here over
cumulative sums so it costs microseconds a row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Z_DEFAULT = 3.0
MIN_POINTS = 10


def zscores(values: Sequence[float], window: int) -> np.ndarray:
    """``z`` of every row against the previous ``window`` rows (``NaN`` before 10 rows or a
    missing value)."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    ok = ~np.isnan(x)
    v = np.where(ok, x, 0.0)
    c1 = np.concatenate(([0.0], np.cumsum(v)))
    c2 = np.concatenate(([0.0], np.cumsum(v * v)))
    cn = np.concatenate(([0], np.cumsum(ok)))
    idx = np.arange(n)
    lo = np.maximum(idx - window, 0)
    count = cn[idx] - cn[lo]
    s1 = c1[idx] - c1[lo]
    s2 = c2[idx] - c2[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / count
        var = np.maximum(s2 / count - mean * mean, 0.0)
        std = np.sqrt(var)
        # a flat window: any change is infinitely unusual; NAB's version uses 1e-6
        std = np.where(std > 0, std, 1e-6 * np.maximum(np.abs(mean), 1.0))
        z = (x - mean) / std
    z[(count < MIN_POINTS) | ~ok] = np.nan
    return z


def score(values: Sequence[float], window: int) -> tuple[list[float], list[bool]]:
    """Per row: the anomaly score ``erf(|z| / sqrt 2)`` and the detection ``|z| >= 3``."""
    z = np.abs(zscores(values, window))
    scores = [0.0 if math.isnan(v) else math.erf(v / math.sqrt(2.0)) for v in z.tolist()]
    flags = [bool(v >= Z_DEFAULT) for v in np.nan_to_num(z, nan=0.0).tolist()]
    return scores, flags
