"""``SeriesRing``: one service's recent minutes, with the rolling windows the baselines read.

Rows are metrics (spend, calls, tokens, share of calls on expensive models), columns minutes
modulo the capacity; one exclusion flag per minute (a minute of a confirmed episode leaves
every baseline). Every minute from the first written to the last is present (the caller fills
gaps). Alongside the values the ring keeps, per row and sorted, the usable values of the
trailing window (``recent``) and the values at the same time on previous days or weeks
(``season``), and updates them by one minute at a time: a detector step then reads a median,
an upper quantile and a MAD from a sorted list instead of sorting arrays again.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from streams.detect.window import SortedWindow

NAN = math.nan


class SeriesRing:
    """``rows x capacity`` floats plus an exclusion flag per minute.

    ``window`` is the trailing window length (minutes ``m - window .. m - 1`` for the baseline
    of minute ``m``); ``seasons`` maps a name to the offsets (minutes before ``m``, all
    positive) whose values form that seasonal sample.
    """

    __slots__ = (
        "_recent",
        "_season",
        "_season_at",
        "_slide",
        "_win_hi",
        "_win_lo",
        "capacity",
        "excluded",
        "first",
        "last",
        "rows",
        "seasons",
        "values",
        "window",
    )

    def __init__(
        self, rows: int, capacity: int, window: int, seasons: Mapping[str, Sequence[int]]
    ) -> None:
        self.rows = rows
        self.capacity = capacity
        self.window = window
        # array('d'): 8 bytes a value (a list of floats would take 32)
        self.values = [array("d", [NAN]) * capacity for _ in range(rows)]
        self.excluded = bytearray(capacity)
        self.first: int | None = None
        self.last: int | None = None
        self.seasons = {name: sorted(set(offsets)) for name, offsets in seasons.items()}
        deepest = max((max(o) for o in self.seasons.values() if o), default=0)
        if capacity < max(deepest + 2, window + 1):
            raise ValueError(f"capacity {capacity} too small for offsets up to {deepest}")
        # Sliding a season by one minute: the oldest point of each run of consecutive offsets
        # leaves, the newest point of each run joins.
        self._slide = {
            name: (
                [o for o in offs if o + 1 not in set(offs)],
                [o for o in offs if o - 1 not in set(offs)],
            )
            for name, offs in self.seasons.items()
        }
        self._recent = [SortedWindow() for _ in range(rows)]
        self._win_lo = 0
        self._win_hi = -1  # the recent windows hold the usable minutes _win_lo.._win_hi
        self._season: dict[tuple[str, int], SortedWindow] = {}
        self._season_at: dict[tuple[str, int], int] = {}

    # -- writing ----------------------------------------------------------------------------
    def put(self, minute: int, column: Sequence[float]) -> None:
        """Write minute ``minute`` (must be ``last + 1`` or the first write)."""
        if self.last is not None and minute != self.last + 1:
            raise ValueError(f"minute {minute} written after {self.last}: fill the gap first")
        slot = minute % self.capacity
        for r in range(self.rows):
            self.values[r][slot] = column[r]
        self.excluded[slot] = 0
        if self.first is None:
            self.first = minute
        self.last = minute

    def fill(self, start: int, stop: int, column: Sequence[float], *, excluded: bool) -> None:
        """Write the same ``column`` for every minute in ``[start, stop)`` (a silent gap)."""
        if stop <= start:
            return
        if self.last is not None and start != self.last + 1:
            raise ValueError(f"fill from {start} after {self.last}")
        n = min(stop - start, self.capacity)
        flag = 1 if excluded else 0
        for minute in range(stop - n, stop):
            slot = minute % self.capacity
            for r in range(self.rows):
                self.values[r][slot] = column[r]
            self.excluded[slot] = flag
        if self.first is None:
            self.first = start
        self.last = stop - 1
        self._invalidate()

    def put_many(self, start: int, columns: Sequence[Sequence[float]]) -> None:
        """Write consecutive minutes from ``start`` (``columns`` is rows x n; only the last
        ``capacity`` are kept); ``start`` must be ``last + 1`` or the first write."""
        if self.last is not None and start != self.last + 1:
            raise ValueError(f"minute {start} written after {self.last}: fill the gap first")
        n = len(columns[0]) if len(columns) else 0
        if n == 0:
            return
        keep = min(n, self.capacity)
        first_kept = start + n - keep
        # at most two contiguous runs of slots (the ring wraps once)
        slot = first_kept % self.capacity
        head = min(keep, self.capacity - slot)
        for r in range(self.rows):
            kept = array("d", [float(v) for v in columns[r][n - keep :]])
            self.values[r][slot : slot + head] = kept[:head]
            self.values[r][0 : keep - head] = kept[head:]
        self.excluded[slot : slot + head] = bytes(head)
        self.excluded[0 : keep - head] = bytes(keep - head)
        if self.first is None:
            self.first = start
        self.last = start + n - 1
        self._invalidate()

    def _invalidate(self) -> None:
        self._win_lo, self._win_hi = 0, -1
        for w in self._recent:
            w.clear()
        self._season_at.clear()

    # -- reading ----------------------------------------------------------------------------
    def held(self, minute: int) -> bool:
        """Whether ``minute`` is within the written history still held."""
        last = self.last
        if last is None:
            return False
        first = self.first if self.first is not None else last
        lo = last - self.capacity + 1
        return (first if first > lo else lo) <= minute <= last

    def value(self, row: int, minute: int) -> float:
        last = self.last
        if last is None or minute > last:
            return NAN
        first = self.first if self.first is not None else last
        lo = last - self.capacity + 1
        if minute < (first if first > lo else lo):
            return NAN
        return self.values[row][minute % self.capacity]

    def take(
        self, row: int, minutes: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Values (``NaN`` outside the history held) and exclusion marks at ``minutes``."""
        slots = minutes % self.capacity
        vals = np.frombuffer(self.values[row], dtype=np.float64)[slots]
        excluded = np.frombuffer(self.excluded, dtype=np.uint8)[slots].astype(np.bool_)
        if self.first is None or self.last is None:
            return np.full(len(minutes), np.nan), excluded
        lo = max(self.first, self.last - self.capacity + 1)
        outside = (minutes < lo) | (minutes > self.last)
        vals = np.where(outside, np.nan, vals)
        return vals, excluded & ~outside

    def is_excluded(self, minute: int) -> bool:
        return self.held(minute) and bool(self.excluded[minute % self.capacity])

    def _usable(self, row: int, minute: int) -> bool:
        if not self.held(minute):
            return False
        slot = minute % self.capacity
        v = self.values[row][slot]
        return not self.excluded[slot] and v == v

    def recent(self, minute: int) -> list[SortedWindow]:
        """Per row, the usable (not excluded, not missing) values of minutes
        ``minute - window .. minute - 1``."""
        lo, hi = minute - self.window, minute - 1
        if hi < self._win_hi or lo > self._win_hi or self._win_hi < self._win_lo:
            for w in self._recent:
                w.clear()
            self._win_lo, self._win_hi = lo, lo - 1
        for k in range(self._win_lo, lo):  # leaving
            if k <= self._win_hi:
                self._window_remove(k)
        self._win_lo = lo
        for k in range(self._win_hi + 1, hi + 1):  # entering
            self._window_add(k)
        self._win_hi = max(self._win_hi, hi)
        return self._recent

    def _window_add(self, minute: int) -> None:
        if not self.held(minute):
            return
        slot = minute % self.capacity
        if self.excluded[slot]:
            return
        for r in range(self.rows):
            v = self.values[r][slot]
            if v == v:
                self._recent[r].add(v)

    def _window_remove(self, minute: int) -> None:
        if not self.held(minute):
            return
        slot = minute % self.capacity
        if self.excluded[slot]:
            return
        for r in range(self.rows):
            v = self.values[r][slot]
            if v == v:
                self._recent[r].remove(v)

    def exclude(self, minute: int, flag: bool = True) -> None:
        """Mark (or unmark) every row of ``minute`` as anomalous: baselines skip it."""
        if not self.held(minute):
            return
        slot = minute % self.capacity
        if bool(self.excluded[slot]) == flag:
            return
        in_window = self._win_lo <= minute <= self._win_hi
        if in_window and flag:
            self._window_remove(minute)
        self.excluded[slot] = 1 if flag else 0
        if in_window and not flag:
            self._window_add(minute)

    def exclude_range(self, start: int, stop: int, flag: bool = True) -> None:
        """Mark (or unmark) every row of the minutes ``[start, stop)``."""
        for minute in range(max(start, stop - self.capacity), stop):
            self.exclude(minute, flag)

    def season(self, name: str, row: int, minute: int) -> SortedWindow:
        """The non-missing values of ``row`` at ``minute - offset`` for the offsets of season
        ``name`` (exclusions do not apply: the median across days shrugs off one bad day)."""
        key = (name, row)
        offsets = self.seasons[name]
        at = self._season_at.get(key)
        window = self._season.get(key)
        if window is not None and at == minute:
            return window
        if window is None or at is None or at != minute - 1:
            window = self._season[key] = SortedWindow(
                [self.value(row, minute - o) for o in offsets]
            )
        else:
            leave, join = self._slide[name]
            for o in leave:
                v = self.value(row, minute - 1 - o)
                if v == v:
                    window.remove(v)
            for o in join:
                v = self.value(row, minute - o)
                if v == v:
                    window.add(v)
        self._season_at[key] = minute
        return window
