"""Sustained shifts: the median of the last ``shift_min`` minutes against the baseline.

One noisy minute proves little; the median of several is robust (one dear minute does not
move it). Upwards this catches a lasting
rise (a new agent loop that stays) on a service too noisy for the per-minute rule; downwards
a service whose spend fell and stays down (it is failing quietly, or a job stopped). The
same z, ratio and dollar minimum apply as for spikes; a drop is measured against the lower of
the recent and seasonal levels, so a quiet time that happens every day is not a drop.
"""

from __future__ import annotations

import math

from streams.detect.robust import HeldRange, downward_margin, upward_margin
from streams.detect.settings import DetectSettings

# The median of k independent minutes spreads sqrt(pi / (2 k)) as far as one minute (0.56 for
# k = 5), but real series are autocorrelated (a busy hour is busy throughout): the noise scale
# is kept as it is, so the rule only ever asks for half of the minutes to clear the bar.
SPREAD = 1.0


def shift_margins(
    recent: list[float],
    level_up: float,
    level_down: float,
    scale: float,
    s: DetectSettings,
    tail_z: tuple[float, float] = (math.nan, math.nan),
    held: HeldRange | None = None,
) -> tuple[float, float]:
    """``(rise, drop)`` margins of the median of ``recent`` (the last ``shift_min`` minutes,
    missing ones left out; at least half of them must be present). ``tail_z``: the 99th
    percentiles of normal minutes' z and -z over the past day; the shift must beat them."""
    points = sorted(v for v in recent if v == v)
    k = s.shift_min
    if not k or len(points) * 2 <= k:
        return 0.0, 0.0
    n = len(points)
    med = (points[(n - 1) // 2] + points[n // 2]) / 2.0
    spread = scale * SPREAD
    z, delta, ratio = s.z_threshold, s.min_delta_nusd_per_min, s.min_ratio
    z_up = max(z, tail_z[0]) if tail_z[0] == tail_z[0] else z
    z_down = max(z, tail_z[1]) if tail_z[1] == tail_z[1] else z
    rise = upward_margin(med, level_up, spread, z=z_up, min_delta=delta, min_ratio=ratio)
    drop = downward_margin(med, level_down, spread, z=z_down, min_delta=delta, min_ratio=ratio)
    if held is not None:  # (a series without a ratio rule) the range it kept: leave it
        rise = held.rise(med, level_up, rise)
        drop = held.fall(med, level_down, drop)
    return rise, drop
