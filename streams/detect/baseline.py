"""The baseline of one service minute: expected level and noise scale per metric.

Computed from the service's :class:`~streams.detect.rings.SeriesRing` before the rules run:

* **Recent**: median and noise scale ``max(1.4826 MAD, (q90 - median) / 1.2816)`` of the
  usable minutes of the trailing ``window_min``; frozen at the last good value while fewer
  than ``min_points`` remain (a long episode).
* **Seasonal**, once ``seasonal_min_days`` days exist: the median and MAD of the same time of
  day +- ``seasonal_halfwidth_min`` on up to ``seasonal_days`` previous days, or -- when it
  has predicted the service better over the past day -- of the same time of the week on the
  previous weeks (``seasonal_weeks``; a weekday/weekend rhythm). Chosen per service by the
  mean absolute error of each over the past day.
* ``level_up = max(recent, seasonal)`` (what a rise is measured against: a pattern seen on
  previous days is not a spike) and ``level_down = min(recent, seasonal)`` (what a drop is
  measured against: a quiet night that happens every night is not a drop).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from streams.detect.rings import SeriesRing
from streams.detect.robust import MAD_TO_SIGMA

SPEND, REQUESTS, TOKENS, MIX = 0, 1, 2, 3
ROW_NAMES = ("spend", "requests", "tokens", "expensive_call_share")
NAN = math.nan


@dataclass(slots=True)
class Frozen:
    """The last recent baseline computed from enough usable minutes, per row."""

    level: list[float]
    scale: list[float]

    @classmethod
    def empty(cls, rows: int) -> Frozen:
        return cls([NAN] * rows, [NAN] * rows)


@dataclass(slots=True)
class SeasonChoice:
    """Which seasonal sample predicts this service better: running mean absolute errors of
    the time-of-day and time-of-week medians (spend row), over about a day."""

    day_error: float = NAN
    week_error: float = NAN
    compared: int = 0

    def weekly(self, min_compared: int) -> bool:
        return (
            self.compared >= min_compared
            and self.week_error == self.week_error
            and self.week_error < 0.9 * self.day_error
        )

    def update(self, x: float, day: float, week: float, alpha: float) -> None:
        if x != x or day != day or week != week:
            return
        if self.compared == 0:
            self.day_error, self.week_error = abs(x - day), abs(x - week)
        else:
            self.day_error += alpha * (abs(x - day) - self.day_error)
            self.week_error += alpha * (abs(x - week) - self.week_error)
        self.compared += 1


@dataclass(slots=True)
class Baseline:
    """Per row: recent level / scale, seasonal level / scale (``NaN`` when off), the
    combined levels and scale, and the usable-minute count of the recent window."""

    recent: list[float]
    recent_scale: list[float]
    count: list[int]
    season: list[float]
    season_scale: list[float]
    level: list[float]  # max(recent, seasonal): what rises are measured against
    low: list[float]  # min(recent, seasonal): what drops are measured against
    scale: list[float]
    seasonal_on: bool
    weekly: bool
    idle: int  # usable minutes without a call in the recent window


def _fmax(a: float, b: float) -> float:
    """``numpy.fmax`` on scalars: the larger, ignoring a ``NaN``."""
    if a != a:
        return b
    if b != b:
        return a
    return a if a >= b else b


def _fmin(a: float, b: float) -> float:
    if a != a:
        return b
    if b != b:
        return a
    return a if a <= b else b


def compute(
    ring: SeriesRing,
    minute: int,
    frozen: Frozen,
    *,
    min_points: int,
    seasonal_on: bool,
    weekly: bool,
    season_min_points: int,
    week_min_points: int,
    scale_floor_ratio: float,
    upper_tail: bool = True,
) -> Baseline:
    """The baseline of ``minute`` (already written to ``ring``). Updates ``frozen``.

    ``upper_tail``: the recent noise scale is at least ``(q90 - median) / 1.2816`` (amounts
    summed from heavy-tailed parts: spend, calls); ``False`` for readings (a gauge), whose scale
    is ``1.4826 MAD`` alone -- their bursts are priced in by the series' own tail of ``z``."""
    rows = ring.rows
    recent = ring.recent(minute)
    count = [len(w) for w in recent]
    for r in range(rows):
        if count[r] >= min_points:
            w = recent[r]
            med = w.median()
            frozen.level[r] = med
            mad_scale = MAD_TO_SIGMA * w.mad(med)
            frozen.scale[r] = _fmax(mad_scale, w.upper(med)) if upper_tail else mad_scale
    idle = recent[REQUESTS].count_equal(0.0) if rows > REQUESTS else 0
    level = list(frozen.level)
    low = list(frozen.level)
    scale = list(frozen.scale)
    season = [NAN] * rows
    season_scale = [NAN] * rows
    if seasonal_on:
        name = "week" if weekly else "day"
        need = week_min_points if weekly else season_min_points
        for r in range(min(rows, MIX)):  # the model mix follows the recent window only
            sw = ring.season(name, r, minute)
            if len(sw) >= need:
                med = sw.median()
                season[r] = med
                season_scale[r] = MAD_TO_SIGMA * sw.mad(med)
                level[r] = _fmax(level[r], med)
                low[r] = _fmin(low[r], med)
                scale[r] = _fmax(scale[r], season_scale[r])
    for r in range(min(rows, MIX)):
        scale[r] = _fmax(scale[r], scale_floor_ratio * level[r])
    return Baseline(
        recent=list(frozen.level),
        recent_scale=list(frozen.scale),
        count=count,
        season=season,
        season_scale=season_scale,
        level=level,
        low=low,
        scale=scale,
        seasonal_on=seasonal_on,
        weekly=weekly,
        idle=idle,
    )
