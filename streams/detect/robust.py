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


class HeldRange:
    """The range a series without a money unit kept over the history held, and how rare a
    reading outside it is.

    ``low`` / ``top`` are the ``share`` and ``1 - share`` quantiles of the values held: a rise
    must leave ``[low, top]`` to count (a margin of 1 at the edge, linear inside). Beyond the
    edge the margin grows with the reading's *rarity* in the series' own history, not with its
    distance: ``log p / log share``, ``p`` the share of held values at least as extreme (so 1
    at the edge, about 1.7 at the most extreme value of four weeks of five-minute rows), and
    beyond the most extreme value an exponential tail whose scale is the mean excess of the
    outer 1 % (a peaks-over-threshold estimate). A series with a heavy upper tail (bursts of
    every size) thus ranks a given distance past its edge lower than a series that never left
    a narrow band.
    """

    __slots__ = ("held", "low", "low_scale", "share", "top", "top_scale")

    def __init__(self, kept: FloatArray, share: float) -> None:
        held = np.sort(kept)
        n = len(held)
        self.held = held
        self.share = share
        self.low = _sorted_quantile(held, share)
        self.top = _sorted_quantile(held, 1.0 - share)
        q_hi = _sorted_quantile(held, 0.99)
        q_lo = _sorted_quantile(held, 0.01)
        k = max(1, n // 100)
        tiny = max(abs(self.top - self.low), abs(self.top), 1.0) * 1e-9
        self.top_scale = max(float(np.mean(held[-k:])) - q_hi, tiny)
        self.low_scale = max(q_lo - float(np.mean(held[:k])), tiny)

    def rise(self, x: float, level: float, margin: float) -> float:
        """``margin`` limited by how far ``x`` left the range upwards (no limit when the range
        does not lie above ``level``)."""
        top = self.top
        if not top > level or not margin > 0:
            return margin
        if x <= top:
            return min(margin, (x - level) / (top - level))
        held = self.held
        n = len(held)
        count = n - int(np.searchsorted(held, x, side="left"))
        if count > 0:
            log_p = math.log(count / n)
        else:
            log_p = math.log(1.0 / n) - (x - float(held[-1])) / self.top_scale
        return min(margin, max(1.0, log_p / math.log(self.share)))

    def fall(self, x: float, level: float, margin: float) -> float:
        """The mirror of :meth:`rise` for a reading below the range."""
        low = self.low
        if not low < level or not margin > 0:
            return margin
        if x >= low:
            return min(margin, (level - x) / (level - low))
        held = self.held
        n = len(held)
        count = int(np.searchsorted(held, x, side="right"))
        if count > 0:
            log_p = math.log(count / n)
        else:
            log_p = math.log(1.0 / n) - (float(held[0]) - x) / self.low_scale
        return min(margin, max(1.0, log_p / math.log(self.share)))


def _sorted_quantile(values: FloatArray, q: float) -> float:
    """``numpy.quantile`` (linear) of an already sorted array."""
    n = len(values)
    pos = q * (n - 1)
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    return float(values[lo] + (values[hi] - values[lo]) * (pos - lo))
