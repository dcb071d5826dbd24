"""Spend spike: is this minute's spend unusually high for this service?

A minute is anomalous when spend clears every one of: robust z >= ``z_threshold`` against the
baseline's noise scale, ``min_ratio`` x the baseline, the service's own tail ratio (the 99th
percentile of normal minutes' spend / baseline), and an excess of ``min_delta`` -- or when
spend clearly rose (z/2, half the ratio's rise, ``min_delta``) *and* calls, tokens or the
share of calls on expensive models cleared their own rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from streams.detect.baseline import MIX, REQUESTS, SPEND, TOKENS
from streams.detect.robust import HeldRange, downward_margin, upward_margin
from streams.detect.settings import DetectSettings


@dataclass(frozen=True, slots=True)
class SpikeMargin:
    margin: float
    mix: float  # the model-mix rule's own margin (names the cause)


def spike_margin(
    x: Sequence[float],
    level: Sequence[float],
    scale: Sequence[float],
    spend_level: float,
    spend_scale: float,
    tail: float,
    s: DetectSettings,
    *,
    local: float = math.nan,
    tail_z: float = math.nan,
    held: HeldRange | None = None,
) -> SpikeMargin:
    """Margin of the per-minute spend rule with its corroborated variant.

    ``x``, ``level``, ``scale`` are per row (spend, calls, tokens, expensive-call share; a
    spend-only series has one row). ``spend_level`` / ``spend_scale`` are the spend baseline
    after the quiet-service adjustment. ``tail`` is the service's tail ratio (``NaN``: not
    learned yet). ``local`` (warm-up only) is the level of the last few minutes: a rise must
    also be a jump above it, since a gradual rise may be the time of day the detector has not
    learned yet. ``tail_z`` is the 99th percentile of the z of normal minutes over the past
    day: a spike must beat that too. ``top`` (series without a ratio rule only) is the 99th
    percentile of the values held: a rise must leave that range.
    """
    spend = x[SPEND]
    z, delta, ratio = s.z_threshold, s.min_delta_nusd_per_min, s.min_ratio
    half_ratio = 1 + (ratio - 1) / 2
    margin = upward_margin(spend, spend_level, spend_scale, z=z, min_delta=delta, min_ratio=ratio)
    # Requests, tokens or model mix may carry a spike the spend rule alone misses, but only if
    # the money clearly moved too: up by min_delta, half the z threshold and half the ratio.
    gate = upward_margin(
        spend, spend_level, spend_scale, z=z / 2, min_delta=delta, min_ratio=half_ratio
    )
    mix_gate = gate  # a shift in the model mix is no time-of-day effect: never jump-gated
    if local == local:
        jump = upward_margin(spend, local, spend_scale, z=z, min_delta=delta, min_ratio=ratio)
        jump_gate = upward_margin(
            spend, local, spend_scale, z=z / 2, min_delta=delta, min_ratio=half_ratio
        )
        margin, gate = min(margin, jump), min(gate, jump_gate)
    m_req = m_tok = m_mix = 0.0
    if len(x) > MIX:
        m_req = upward_margin(
            x[REQUESTS], level[REQUESTS], scale[REQUESTS], z=z,
            min_delta=s.min_delta_requests_per_min, min_ratio=ratio,
        )  # fmt: skip
        m_tok = upward_margin(
            x[TOKENS], level[TOKENS], scale[TOKENS], z=z,
            min_delta=s.min_delta_tokens_per_min, min_ratio=ratio,
        )  # fmt: skip
        m_mix = upward_margin(
            x[MIX], level[MIX], scale[MIX], z=z,
            min_delta=s.min_delta_expensive_share, min_ratio=None,
        )  # fmt: skip
    # Spend per minute is often heavy-tailed (a few expensive calls): the spike must also
    # beat this service's own 99th-percentile spend / baseline ratio of the past day. Only
    # where ratios mean something (min_ratio on).
    if ratio > 1 and tail > ratio and spend_level > 0:
        margin = min(margin, (spend / spend_level - 1.0) / (tail - 1.0))
    # The same in noise units, for any series: where normal minutes often reach z = 5 (an
    # autocorrelated series whose short window understates its spread), z = 3 is no news.
    if tail_z > z and spend_scale > 0:
        margin = min(margin, (spend - spend_level) / (tail_z * spend_scale))
    if held is not None:
        # The noise rules decide whether the reading is unusual at all; past them, how rare it
        # is in the series' own history grades it (see ``HeldRange``).
        margin = held.rise(spend, spend_level, math.inf if margin >= 1.0 else margin)
    corroborated = max(min(gate, max(m_req, m_tok)), min(mix_gate, m_mix))
    return SpikeMargin(max(margin, corroborated), m_mix)


def cold_margin(spend: float, prior: float, points: int, s: DetectSettings) -> float:
    """Before a baseline exists: spend of at least ``cold_start_usd_per_min`` that also jumped
    to ``min_ratio`` x the median of the minutes seen so far (``prior``, over ``points``
    minutes), so a worker restart does not page for every big, steady service."""
    if not s.cold_start_nusd_per_min or points < 3:
        return 0.0
    if prior > 0:
        growth = (spend / prior - 1.0) / (s.min_ratio - 1.0) if s.min_ratio > 1 else math.inf
    else:
        growth = math.inf
    return min(spend / s.cold_start_nusd_per_min, growth)


def reading_drop_margin(
    x: float,
    level: float,
    scale: float,
    s: DetectSettings,
    *,
    tail_z: float,
    local: float,
    held: HeldRange,
) -> float:
    """Margin of one reading *below* its baseline, for a series without a money unit (a
    gauge: speed, CPU, latency) -- where one low reading is as much news as one high one.

    Mirrors the rise: ``z`` (and the series' own 99th percentile of ``-z``, ``tail_z``) below
    the drop level, then graded by how rare the reading is in the range the series kept
    (``held``). In the warm-up (``local`` given) it must also fall below the last few readings:
    a nightly fall the detector has not learned yet is gradual."""
    z = max(s.z_threshold, tail_z) if tail_z == tail_z else s.z_threshold
    delta = s.min_delta_nusd_per_min
    margin = downward_margin(x, level, scale, z=z, min_delta=delta, min_ratio=None)
    if local == local:
        jump = downward_margin(x, local, scale, z=s.z_threshold, min_delta=delta, min_ratio=None)
        margin = min(margin, jump)
    return held.fall(x, level, math.inf if margin >= 1.0 else margin)
