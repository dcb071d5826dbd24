"""``SortedWindow``: a small multiset of floats kept sorted, for rolling robust statistics.

A detector step adds one value and removes one, then reads the median, an upper quantile and
the median absolute deviation (MAD). Sorting the window again at every step (what numpy does
on a fresh array) costs tens of microseconds in call overhead; ``bisect`` on a Python list of
60-80 floats costs about one. The statistics match :func:`streams.detect.robust.robust_stats`
on the same points exactly (same order statistics, same averaging of the two middle ones).
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort


class SortedWindow:
    """The values currently in a window, sorted; ``NaN`` is never stored."""

    __slots__ = ("xs",)

    def __init__(self, values: list[float] | None = None) -> None:
        self.xs: list[float] = sorted(v for v in values if v == v) if values else []

    def __len__(self) -> int:
        return len(self.xs)

    def add(self, x: float) -> None:
        insort(self.xs, x)

    def remove(self, x: float) -> None:
        """Remove one occurrence of ``x`` (which must be present)."""
        del self.xs[bisect_left(self.xs, x)]

    def clear(self) -> None:
        self.xs.clear()

    def median(self) -> float:
        xs = self.xs
        n = len(xs)
        if not n:
            return math.nan
        return (xs[(n - 1) // 2] + xs[n // 2]) / 2.0

    def upper(self, median: float) -> float:
        """The upper-tail noise scale ``(q90 - median) / 1.2816`` (q90 by rank, as numpy's
        ``robust_stats`` takes it)."""
        xs = self.xs
        n = len(xs)
        if not n:
            return math.nan
        return (xs[max(int(0.9 * (n - 1)), 0)] - median) / 1.2816

    def mad(self, median: float) -> float:
        """Median absolute deviation from ``median`` (the window's own median)."""
        xs = self.xs
        n = len(xs)
        if not n:
            return math.nan
        # Deviations grow outwards from the median on both sides: merge the two runs until
        # the middle order statistics of the deviations are reached.
        j = bisect_left(xs, median)
        i = j - 1
        lo_rank, hi_rank = (n - 1) // 2, n // 2
        lo_value = 0.0
        d = 0.0
        for rank in range(hi_rank + 1):
            if i >= 0 and (j >= n or median - xs[i] <= xs[j] - median):
                d = median - xs[i]
                i -= 1
            else:
                d = xs[j] - median
                j += 1
            if rank == lo_rank:
                lo_value = d
        return (lo_value + d) / 2.0

    def count_equal(self, x: float) -> int:
        xs = self.xs
        lo = bisect_left(xs, x)
        hi = lo
        while hi < len(xs) and xs[hi] == x:
            hi += 1
        return hi - lo
