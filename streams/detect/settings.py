"""``[detect]`` settings: every knob of the spike and failure detectors, validated at start-up.

A pydantic model like every other section (``schemas/settings.py``): unknown keys refused,
strict scalars, ranges. Money thresholds are decimal strings (or TOML numbers) written in USD
(``min_delta_usd_per_min``) and held as integer nano-USD (``min_delta_nusd_per_min``); code
that derives settings uses ``model_copy(update=...)`` with nano-USD. Statistical knobs (z
threshold, ratios, shares) are plain floats: they scale noise estimates, they never carry
money.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    model_validator,
)

from schemas.errors import ConfigError
from schemas.settings import FieldError, Money, PositiveMoney, Range, Section, Text, config_error

MINUTES_PER_DAY = 1440


def _zero_or(low: float, high: float) -> AfterValidator:
    def check(value: float) -> float:
        if not math.isfinite(value) or not (value == 0 or low <= value <= high):
            raise ValueError(f"must be 0 (off) or a number from {low:g} to {high:g}")
        return value

    return AfterValidator(check)


class DetectSettings(Section):
    """Parameters of the robust baseline, the detection rules and the alert lifecycle.

    See ``streams/detect/README.md`` for what each one does; defaults are the tuned values
    recorded in ``bench/detect_quality/RESULTS.md``.
    """

    # The file spells money in USD (the alias); the model holds nano-USD under its own name,
    # and only the file's spelling is accepted as input.
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=False, validate_by_alias=True
    )

    enabled: StrictBool = True
    warm_start: StrictBool = True  # a (re)starting worker reads its history from ClickHouse
    # alert rule: anomaly score >= 1 - sensitivity (0.5: every rule exactly as stated below;
    # higher pages on weaker evidence, lower asks for more)
    sensitivity: Annotated[StrictFloat, Range(0.05, 0.95)] = 0.5
    # -- baseline --------------------------------------------------------------------------
    # trailing window of the rolling median / MAD
    window_min: Annotated[StrictInt, Range(5, 1440)] = 60
    # usable (non-anomalous, non-missing) minutes needed
    min_points: Annotated[StrictInt, Range(3, 1440)] = 20
    # cold start: no relative alerts before this
    min_history_min: Annotated[StrictInt, Range(0, 10080)] = 30
    # days of history before the time-of-day baseline
    seasonal_min_days: Annotated[StrictInt, Range(1, 28)] = 3
    # previous days consulted (and days of history kept)
    seasonal_days: Annotated[StrictInt, Range(1, 28)] = 7
    # +- minutes around the same minute-of-day
    seasonal_halfwidth_min: Annotated[StrictInt, Range(0, 60)] = 5
    # previous weeks for the time-of-week baseline; 0 = off
    seasonal_weeks: Annotated[StrictInt, Range(0, 4)] = 1
    # noise scale >= this fraction of the baseline
    scale_floor_ratio: Annotated[StrictFloat, Range(0, 10)] = 0.05
    # -- upward spikes (spend, requests, tokens, model mix) ------------------------------------
    # robust z-score (excess / noise scale) to reach
    z_threshold: Annotated[StrictFloat, Range(0.5, 100)] = 3.0
    # spend, requests, tokens: this multiple of baseline
    min_ratio: Annotated[StrictFloat, Range(1.01, 1000)] = 2.0
    # $0.05/min: smaller excess never alerts
    min_delta_nusd_per_min: PositiveMoney = Field(default=50_000_000, alias="min_delta_usd_per_min")
    min_delta_requests_per_min: Annotated[StrictInt, Range(1, 10**9)] = 10
    min_delta_tokens_per_min: Annotated[StrictInt, Range(1, 10**12)] = 20_000
    # model mix: share on expensive models
    min_delta_expensive_share: Annotated[StrictFloat, Range(0.01, 1)] = 0.25
    # two-minute call surge (runaway loops on small, heavy-tailed services); 0 = off
    pair_z_threshold: Annotated[StrictFloat, _zero_or(1, 100)] = 4.5
    # spike severity: critical at this multiple
    critical_ratio: Annotated[StrictFloat, Range(1.01, 10**6)] = 5.0
    # $2/min alerts even without history; 0 = off
    cold_start_nusd_per_min: Money = Field(default=2_000_000_000, alias="cold_start_usd_per_min")
    # a shift this old becomes the baseline; 0 = never
    relearn_after_min: Annotated[StrictInt, Range(0, 10**6)] = 120
    # sustained shifts: the median of the last shift_min minutes against the baseline (a
    # lasting rise too noisy minute by minute; a spend drop); 0 = off
    shift_min: Annotated[StrictInt, Range(0, 240)] = 5
    # -- failures ----------------------------------------------------------------------------
    # error rate rise above its baseline
    min_delta_error_rate: Annotated[StrictFloat, Range(0.001, 1)] = 0.10
    min_errors_per_min: Annotated[StrictInt, Range(1, 10**9)] = 3
    # at or above: an outage, even in cold start
    outage_error_rate: Annotated[StrictFloat, Range(0.01, 1)] = 0.5
    # "busy": drop to zero alerts
    busy_min_requests_per_min: Annotated[StrictFloat, Range(0.1, 10**9)] = 5.0
    # silent minutes before a busy service's drop alert fires
    drop_min: Annotated[StrictInt, Range(1, 1440)] = 3
    # -- lifecycle ---------------------------------------------------------------------------
    # consecutive anomalous minutes before an alert fires
    confirm_min: Annotated[StrictInt, Range(1, 60)] = 2
    # consecutive normal minutes before it resolves
    resolve_min: Annotated[StrictInt, Range(1, 1440)] = 3
    # a minute closes this long after its end
    allowed_lateness_s: Annotated[StrictInt, Range(0, 3600)] = 15
    # -- breakdowns --------------------------------------------------------------------------
    expensive_models: tuple[Text, ...] = ()  # fnmatch patterns, e.g. "claude-opus*", "o1*"
    # $10 per million tokens or more: expensive
    expensive_nusd_per_mtok: Money = Field(default=10_000_000_000, alias="expensive_usd_per_mtok")
    tag_keys: tuple[Text, ...] = ("agent", "team", "feature", "customer")
    # per dimension per minute; rest is "(other)"
    max_breakdown_keys: Annotated[StrictInt, Range(1, 10_000)] = 64
    # error-rate series per service; the rest share "(other)"
    max_providers: Annotated[StrictInt, Range(1, 256)] = 8
    max_contributors: Annotated[StrictInt, Range(1, 50)] = 3  # per dimension in an alert

    @model_validator(mode="after")
    def _consistent(self) -> DetectSettings:
        if self.min_points > self.window_min:
            raise FieldError(("min_points",), f"must be at most window_min ({self.window_min})")
        if self.seasonal_min_days > self.seasonal_days:
            raise FieldError(
                ("seasonal_min_days",), f"must be at most seasonal_days ({self.seasonal_days})"
            )
        if self.shift_min == 1:
            raise FieldError(("shift_min",), "must be 0 (off) or from 2 to 240")
        if 0 < self.relearn_after_min <= self.confirm_min:
            raise FieldError(("relearn_after_min",), "must be 0 or more than confirm_min")
        return self

    @property
    def history_min(self) -> int:
        """Minutes of history kept per series (ring-buffer length)."""
        return max(
            self.seasonal_days * MINUTES_PER_DAY + self.seasonal_halfwidth_min + 1,
            self.seasonal_weeks * 7 * MINUTES_PER_DAY + self.seasonal_halfwidth_min + 1,
            self.window_min + 1,
        )

    @classmethod
    def from_config(cls, section: Any, path: str = "detect") -> DetectSettings:
        """Build from the ``[detect]`` table; raise :class:`ConfigError` naming the field."""
        if not isinstance(section, dict):
            raise ConfigError(path, "must be a table")
        try:
            return cls.model_validate(section)
        except ValidationError as exc:
            raise config_error(exc, cls, prefix=tuple(path.split("."))) from None
