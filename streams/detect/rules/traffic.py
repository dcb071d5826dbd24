"""Traffic drop: a busy service with no call at all this minute.

"Busy" by the recent window (median calls >= ``busy_min_requests_per_min``), hardly ever idle
(calls in at least 95 % of its recent minutes: a bursty tool people use now and then pauses
without being down) and, once the time of day is known, usually busy at this time too.
"""

from __future__ import annotations

import math

from streams.detect.settings import DetectSettings

IDLE_SHARE_MAX = 0.05  # a busy service has calls in at least 95 % of its recent minutes


def is_traffic_drop(
    calls: float,
    calls_level: float,
    idle_minutes: int,
    window_minutes: int,
    seasonal_calls: float,
    cold: bool,
    s: DetectSettings,
) -> bool:
    busy_level = s.busy_min_requests_per_min
    busy = (
        not cold
        and calls_level >= busy_level
        and idle_minutes <= IDLE_SHARE_MAX * window_minutes
        and (math.isnan(seasonal_calls) or seasonal_calls >= busy_level)
    )
    return bool(busy and calls == 0)
