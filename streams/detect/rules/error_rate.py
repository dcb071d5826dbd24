"""Error rate per provider: a rise over the service's usual rate, or an outage.

At least ``min_errors_per_min`` errors and a rise of ``max(min_delta_error_rate, z x
max(MAD scale, binomial noise))`` over the median rate; at or above ``outage_error_rate`` it
is an outage, and that rule also works without a baseline (a new service, the cold start).
"""

from __future__ import annotations

import math

from streams.detect.settings import DetectSettings


def error_margin(
    rate: float, calls: int, level: float, scale: float, new: bool, s: DetectSettings
) -> float:
    """Margin of the rule for ``rate`` over ``calls`` calls against the baseline rate
    ``level`` (noise ``scale``); ``new``: no baseline yet, only the outage rule applies."""
    if new or math.isnan(level):
        return rate / s.outage_error_rate
    binomial = math.sqrt(max(level * (1 - level), 0.0) / calls)
    threshold = max(s.min_delta_error_rate, s.z_threshold * max(scale, binomial))
    return (rate - level) / threshold
