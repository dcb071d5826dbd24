"""Two-minute call surge: a runaway loop on a small service whose spend per minute is noisy.

On a small service where a few calls cost many times the mean, one minute's spend swings
5-10x and a 3x runaway hides in that noise. A runaway loop multiplies the *call count*, which
is Poisson-like and far less heavy-tailed, and two minutes of it are stronger evidence than
each minute alone. The verdict vouches for both minutes (the episode starts at ``t - 1``).
"""

from __future__ import annotations

import math

from streams.detect.robust import upward_margin
from streams.detect.settings import DetectSettings


def surge_margin(
    calls: float,
    prev_calls: float,
    spend: float,
    prev_spend: float,
    calls_level: float,
    calls_scale: float,
    spend_level: float,
    s: DetectSettings,
) -> float:
    """Margin of the rule on minutes ``t - 1`` (``prev_*``) and ``t`` together.

    Over two minutes the calls must clear ``pair_z_threshold`` robust z (noise scale
    ``sqrt(2)`` x the minute's, never below the Poisson ``sqrt(count)``) and ``min_ratio``;
    each minute must carry 1.5x the calls baseline and the two must look like one rate
    (``|c1 - c0| <= z_threshold x sqrt(c0 + c1)``); the two minutes' spend must be 1.5x and
    ``2 x min_delta`` above twice the spend baseline. ``0`` when the rule is off or a
    baseline is missing.
    """
    if not s.pair_z_threshold or not calls_level > 0 or not spend_level > 0:
        return 0.0
    if prev_calls != prev_calls:
        return 0.0
    total = calls + prev_calls
    spend_total = spend + prev_spend
    half = (s.min_ratio - 1.0) / 2.0
    each = (min(calls, prev_calls) / calls_level - 1.0) / half
    # One rate over both minutes: under Poisson calls with equal rates the difference has
    # variance ``c0 + c1``; a one-minute burst next to a merely busy minute fails this.
    gap = abs(calls - prev_calls)
    steady = s.z_threshold * math.sqrt(total) / gap if gap > 0 else math.inf
    scale2 = max(math.sqrt(2.0) * calls_scale, math.sqrt(2.0 * calls_level))
    m_calls = upward_margin(
        total, 2.0 * calls_level, scale2, z=s.pair_z_threshold, min_delta=1.0,
        min_ratio=s.min_ratio,
    )  # fmt: skip
    # The spend only has to matter (2 x min_delta) and follow the calls up (1.5x); its noise
    # scale is what a heavy tail inflates, so the statistical evidence is the calls'.
    m_spend = upward_margin(
        spend_total, 2.0 * spend_level, 0.0, z=1.0,
        min_delta=2.0 * s.min_delta_nusd_per_min, min_ratio=1.0 + half,
    )  # fmt: skip
    return min(m_calls, each, steady, m_spend)
