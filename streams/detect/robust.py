"""Robust statistics on small windows, vectorised over several series at once (pure numpy).

The median and the median absolute deviation (MAD) ignore up to half of their points being
outliers, which is what a baseline needs when the spikes it looks for may sit in its own
window. ``1.4826 * MAD`` estimates the standard deviation of Gaussian noise.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

MAD_TO_SIGMA = 1.4826
Q90_Z = 1.2816  # the standard normal's 90th percentile

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def median_mad(values: FloatArray, usable: BoolArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per-row median, MAD and count of the ``usable`` points of a ``(rows, n)`` array.

    ``usable`` marks the points that may enter the statistics (callers pass ``False`` for
    missing and already-flagged minutes). Rows without a usable point get ``NaN``.
    Returns ``(median, mad, count)``, each of shape ``(rows,)``.
    """
    med, mad, _, count = robust_stats(values, usable)
    return med, mad, count


def robust_stats(
    values: FloatArray, usable: BoolArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Like :func:`median_mad`, plus the upper-tail noise scale ``(q90 - median) / 1.2816``.

    Spend per minute is right-skewed (a few expensive calls make a minute dear), where the
    MAD understates how far normal minutes reach upwards; the 90th percentile does not.
    Returns ``(median, mad, upper_scale, count)``.
    """
    count = usable.sum(axis=1)
    if values.shape[1] == 0:
        nan = np.full(values.shape[0], np.nan)
        return nan, nan.copy(), nan.copy(), count.astype(np.float64)
    x = np.where(usable, values, np.nan)
    x.sort(axis=1)  # NaN sorts last, so the first ``count`` entries are the usable points
    lo = np.maximum((count - 1) // 2, 0)[:, None]
    hi = (count // 2)[:, None]
    q90 = np.maximum(np.floor(0.9 * (count - 1)).astype(np.int64), 0)[:, None]
    picked = np.take_along_axis(x, np.hstack((lo, hi, q90)), axis=1)
    empty = count == 0
    med = (picked[:, 0] + picked[:, 1]) / 2.0
    med[empty] = np.nan
    upper = (picked[:, 2] - med) / Q90_Z
    dev = np.abs(x - med[:, None])
    dev.sort(axis=1)
    d = np.take_along_axis(dev, np.hstack((lo, hi)), axis=1)
    mad = (d[:, 0] + d[:, 1]) / 2.0
    mad[empty] = np.nan
    return med, mad, upper, count.astype(np.float64)


def upward_margin(
    x: float, level: float, scale: float, *, z: float, min_delta: float, min_ratio: float | None
) -> float:
    """How far ``x`` clears every upward rule, as a multiple of the nearest threshold.

    The rules: ``x - level >= z * scale`` (unusual for this noise), ``x - level >= min_delta``
    (large enough to matter; ``<= 0`` = off) and, if ``min_ratio`` is given and above 1,
    ``x >= min_ratio * level``. Returns the smallest of the ratios "excess / threshold";
    ``>= 1`` means anomalous. ``NaN`` level or ``x`` gives ``0`` (no evidence, never anomalous).
    """
    if x != x or level != level:
        return 0.0
    excess = x - level
    if excess <= 0 or (min_delta <= 0 and not scale > 0):
        return 0.0  # no unit and no noise scale (a flat history): nothing to measure with
    m = excess / min_delta if min_delta > 0 else math.inf
    if scale > 0:
        m = min(m, excess / (z * scale))
    if min_ratio is not None and min_ratio > 1.0 and level > 0:
        m = min(m, (x / level - 1.0) / (min_ratio - 1.0))
    return float(m)


def downward_margin(
    x: float, level: float, scale: float, *, z: float, min_delta: float, min_ratio: float | None
) -> float:
    """The mirror of :func:`upward_margin` for a fall below ``level``: ``level - x >= z x
    scale``, ``level - x >= min_delta`` and, if ``min_ratio`` is above 1 and the level
    positive, ``x <= level / min_ratio``."""
    if x != x or level != level:
        return 0.0
    excess = level - x
    if excess <= 0 or (min_delta <= 0 and not scale > 0):
        return 0.0
    m = excess / min_delta if min_delta > 0 else math.inf
    if scale > 0:
        m = min(m, excess / (z * scale))
    if min_ratio is not None and min_ratio > 1.0 and level > 0:
        m = min(m, (level / x - 1.0) / (min_ratio - 1.0)) if x > 0 else m
    return float(m)


def score_of(margin: float) -> float:
    """Map a margin in ``[0, inf)`` to an anomaly score in ``[0, 1]``; ``margin 1 -> 0.5``."""
    if not margin > 0:
        return 0.0
    if math.isinf(margin):
        return 1.0
    return float(margin / (1.0 + margin))


def margin_threshold(sensitivity: float) -> float:
    """The margin a verdict needs at ``sensitivity`` in ``(0, 1)``: the alert rule is
    ``score >= 1 - sensitivity``, i.e. ``margin >= (1 - sensitivity) / sensitivity``
    (``0.5`` -> 1: exactly the rules as stated)."""
    return (1.0 - sensitivity) / sensitivity
