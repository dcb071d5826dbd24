"""The likely cause a spike alert names, from which figures moved."""

from __future__ import annotations

import math
from collections.abc import Sequence

from streams.detect.baseline import MIX, REQUESTS, TOKENS
from streams.detect.settings import DetectSettings


def likely_cause(
    m_mix: float, x: Sequence[float], level: Sequence[float], s: DetectSettings
) -> str:
    """``model_switch``, ``runaway_loop`` (calls x1.5+), ``prompt_bloat`` (tokens per call
    x1.5+) or ``costlier_calls``; a spend-only series has no figures to tell."""
    if len(x) <= MIX:
        return "costlier_calls"
    if m_mix >= 1.0:
        return "model_switch"
    if level[REQUESTS] > 0 and x[REQUESTS] >= 1.5 * level[REQUESTS]:
        return "runaway_loop"
    per_req_now = x[TOKENS] / x[REQUESTS] if x[REQUESTS] else 0.0
    per_req_base = level[TOKENS] / level[REQUESTS] if level[REQUESTS] > 0 else 0.0
    if per_req_base > 0 and per_req_now >= 1.5 * per_req_base:
        return "prompt_bloat"
    if not math.isnan(level[MIX]) and x[MIX] - level[MIX] >= s.min_delta_expensive_share / 2:
        return "model_switch"
    return "costlier_calls"
