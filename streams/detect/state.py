"""Per-service detector state: the minute ring, frozen baselines, episodes and open alerts.

Plain containers: the monitor (:mod:`streams.detect.monitor`) steps them minute by minute,
the lifecycle (:mod:`streams.detect.lifecycle`) moves their episodes, the warm start
(:mod:`streams.detect.warm`) fills them from stored history.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from schemas.alerts import Alert
from streams.detect import render
from streams.detect.baseline import Frozen, SeasonChoice
from streams.detect.bucket import MinuteBucket
from streams.detect.lifecycle import Episode
from streams.detect.ring import MinuteRing
from streams.detect.rings import SeriesRing
from streams.detect.robust import HeldRange
from streams.detect.settings import DetectSettings

OTHER = "(other)"


@dataclass
class Open:
    """A firing (or pending) alert of one detector with its running figures."""

    stats: render.EpisodeStats
    alert: Alert | None = None
    levels: dict[str, float] = field(default_factory=dict)


class RateSeries:
    """One provider's error-rate series of one service."""

    __slots__ = ("episode", "first", "frozen", "open", "ring")

    def __init__(self, settings: DetectSettings, first: int) -> None:
        self.ring = MinuteRing(1, settings.window_min + 1)
        self.first = first
        self.frozen = (math.nan, math.nan)
        self.episode = Episode(settings.confirm_min, settings.resolve_min)
        self.open: Open | None = None


@dataclass(frozen=True, slots=True)
class Layout:
    """What every service's state is sized by (one per monitor)."""

    rows: int  # 4 (spend, calls, tokens, model mix) or 1 (a spend-only series)
    capacity: int
    window: int
    seasons: dict[str, list[int]]
    resid_capacity: int
    keep: int  # buckets kept for contributors


class ServiceState:
    __slots__ = (
        "adapting",
        "choice",
        "drop",
        "drop_open",
        "fall",
        "fall_open",
        "fired",
        "first",
        "frozen",
        "last_traffic",
        "name",
        "range",
        "rates",
        "recent",
        "resid",
        "ring",
        "spike",
        "spike_open",
        "tail_at",
        "tail_ratio",
        "tail_z",
    )

    def __init__(self, name: str, first: int, settings: DetectSettings, layout: Layout) -> None:
        self.name = name
        self.first = first
        self.last_traffic = first
        self.ring = SeriesRing(layout.rows, layout.capacity, layout.window, layout.seasons)
        # spend / baseline and the z of spend, of each minute over the past day: the
        # service's own tail shape
        self.resid = MinuteRing(2, layout.resid_capacity)
        self.tail_ratio = math.nan
        self.tail_z = (math.nan, math.nan)  # 99th percentiles of z and of -z
        self.range: HeldRange | None = None  # the range of the values held (no money unit)
        self.tail_at = first
        self.frozen = Frozen.empty(layout.rows)
        self.choice = SeasonChoice()

        self.spike = Episode(settings.confirm_min, settings.resolve_min)
        self.drop = Episode(settings.drop_min, settings.resolve_min)  # no calls at all
        self.fall = Episode(settings.confirm_min, settings.resolve_min)  # spend fell and stays
        self.spike_open: Open | None = None
        self.drop_open: Open | None = None
        self.fall_open: Open | None = None
        self.adapting = False  # a long spike is being absorbed into the baseline
        self.fired: deque[int] = deque(maxlen=16)  # start minutes of recent fired episodes
        self.rates: dict[str, RateSeries] = {}
        self.recent: deque[MinuteBucket] = deque(maxlen=layout.keep)

    def exclude(self, minute: int, flag: bool = True) -> None:
        self.ring.exclude(minute, flag)
        self.resid.exclude(minute, flag)

    def exclude_range(self, start: int, stop: int, flag: bool = True) -> None:
        self.ring.exclude_range(start, stop, flag)
        self.resid.exclude_range(start, stop, flag)
