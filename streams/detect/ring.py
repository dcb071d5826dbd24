"""A bounded per-minute history: rows are series, columns are minutes modulo the capacity.

Every minute from the first one written to the last is present (gaps are filled by the
caller), so a slot read for a minute within ``capacity`` of the last one holds that minute's
value, or ``NaN`` if it predates the history.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from streams.detect.robust import BoolArray, FloatArray


class MinuteRing:
    """``rows x capacity`` float64 values plus an ``excluded`` mask (anomalous minutes).

    Memory: ``rows * capacity * 9`` bytes (7 days x 4 series is about 360 KiB).
    """

    __slots__ = ("capacity", "excluded", "last", "values")

    def __init__(self, rows: int, capacity: int) -> None:
        self.capacity = capacity
        self.values: FloatArray = np.full((rows, capacity), np.nan)
        self.excluded: BoolArray = np.zeros((rows, capacity), dtype=np.bool_)
        self.last: int | None = None

    def put(self, minute: int, column: FloatArray | list[float]) -> None:
        """Write minute ``minute`` (must be ``last + 1`` or the first write)."""
        if self.last is not None and minute != self.last + 1:
            raise ValueError(f"minute {minute} written after {self.last}: fill the gap first")
        slot = minute % self.capacity
        self.values[:, slot] = column
        self.excluded[:, slot] = False
        self.last = minute

    def put_many(self, start: int, columns: FloatArray) -> None:
        """Write consecutive minutes ``start, start + 1, ...`` (``columns`` is rows x n; only
        the last ``capacity`` are kept); ``start`` must be ``last + 1`` or the first write."""
        if self.last is not None and start != self.last + 1:
            raise ValueError(f"minute {start} written after {self.last}: fill the gap first")
        n = columns.shape[1]
        if n == 0:
            return
        keep = min(n, self.capacity)
        slots = np.arange(start + n - keep, start + n) % self.capacity
        self.values[:, slots] = columns[:, n - keep :]
        self.excluded[:, slots] = False
        self.last = start + n - 1

    def fill(self, start: int, stop: int, column: list[float], *, excluded: bool) -> None:
        """Write the same ``column`` for every minute in ``[start, stop)`` (a silent gap)."""
        if stop <= start:
            return
        if self.last is not None and start != self.last + 1:
            raise ValueError(f"fill from {start} after {self.last}")
        n = min(stop - start, self.capacity)
        slots = np.arange(stop - n, stop) % self.capacity
        self.values[:, slots] = np.asarray(column, dtype=np.float64)[:, None]
        self.excluded[:, slots] = excluded
        self.last = stop - 1

    def exclude(self, minute: int, flag: bool = True) -> None:
        """Mark (or unmark) every row of ``minute`` as anomalous: baselines skip it."""
        self.excluded[:, minute % self.capacity] = flag

    def exclude_range(self, start: int, stop: int, flag: bool = True) -> None:
        """Mark (or unmark, ``flag=False``) every row of the minutes ``[start, stop)``."""
        n = min(max(stop - start, 0), self.capacity)
        self.excluded[:, np.arange(stop - n, stop) % self.capacity] = flag

    def take(self, minutes: npt.NDArray[np.int64]) -> tuple[FloatArray, BoolArray]:
        """Values and exclusion marks at absolute ``minutes`` (each within the capacity)."""
        slots = minutes % self.capacity
        return self.values[:, slots], self.excluded[:, slots]
