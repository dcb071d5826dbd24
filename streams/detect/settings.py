"""``[detect]`` settings: every knob of the spike and failure detectors, validated at start-up.

Money thresholds are decimal strings (or TOML numbers read through ``Decimal(str(x))``) and are
held as integer nano-USD. Statistical knobs (z threshold, ratios, shares) are plain floats:
they scale noise estimates, they never carry money.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from schemas.errors import ConfigError
from schemas.money import usd_to_nusd

MINUTES_PER_DAY = 1440

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DetectSettings:
    """Parameters of the robust baseline, the detection rules and the alert lifecycle.

    See ``streams/detect/README.md`` for what each one does; defaults are the tuned values
    recorded in ``bench/detect_quality/RESULTS.md``.
    """

    enabled: bool = True
    warm_start: bool = True  # a (re)starting worker reads its history from ClickHouse
    # alert rule: anomaly score >= 1 - sensitivity (0.5: every rule exactly as stated below;
    # higher pages on weaker evidence, lower asks for more)
    sensitivity: float = 0.5
    # -- baseline --------------------------------------------------------------------------
    window_min: int = 60  # trailing window of the rolling median / MAD
    min_points: int = 20  # usable (non-anomalous, non-missing) minutes the window needs
    min_history_min: int = 30  # cold start: no relative alerts before this much history
    seasonal_min_days: int = 3  # days of history before the time-of-day baseline joins in
    seasonal_days: int = 7  # previous days consulted (and days of history kept)
    seasonal_halfwidth_min: int = 5  # +- minutes around the same minute-of-day
    seasonal_weeks: int = 1  # previous weeks for the time-of-week baseline; 0 = off
    scale_floor_ratio: float = 0.05  # noise scale is at least this fraction of the baseline
    # -- upward spikes (spend, requests, tokens, model mix) ------------------------------------
    z_threshold: float = 3.0  # robust z-score (excess / noise scale) a spike must reach
    min_ratio: float = 2.0  # spend, requests, tokens must reach this multiple of baseline
    min_delta_nusd_per_min: int = 50_000_000  # $0.05/min: smaller excess never alerts
    min_delta_requests_per_min: int = 10
    min_delta_tokens_per_min: int = 20_000
    min_delta_expensive_share: float = 0.25  # model mix: share of spend on expensive models
    # two-minute call surge (runaway loops on small, heavy-tailed services); 0 = off
    pair_z_threshold: float = 4.5  # z of the two-minute call count over its baseline
    critical_ratio: float = 5.0  # spike severity: critical at or above this multiple
    cold_start_nusd_per_min: int = 2_000_000_000  # $2/min alerts even without history; 0 = off
    relearn_after_min: int = 120  # a level shift this old becomes the new baseline; 0 = never
    # sustained shifts: the median of the last shift_min minutes against the baseline (a
    # lasting rise too noisy minute by minute; a spend drop); 0 = off
    shift_min: int = 5
    # -- failures ----------------------------------------------------------------------------
    min_delta_error_rate: float = 0.10  # error rate must rise this much above its baseline
    min_errors_per_min: int = 3
    outage_error_rate: float = 0.5  # at or above: an outage (critical), even in cold start
    busy_min_requests_per_min: float = 5.0  # a "busy" service: drop to zero is an alert
    drop_min: int = 3  # silent minutes before a busy service's drop alert fires
    # -- lifecycle ---------------------------------------------------------------------------
    confirm_min: int = 2  # consecutive anomalous minutes before an alert fires
    resolve_min: int = 3  # consecutive normal minutes before it resolves (hysteresis)
    allowed_lateness_s: int = 15  # a minute closes this long after its end (event time)
    # -- breakdowns --------------------------------------------------------------------------
    expensive_models: tuple[str, ...] = ()  # fnmatch patterns, e.g. "claude-opus*", "o1*"
    expensive_nusd_per_mtok: int = 10_000_000_000  # $10 per million tokens or more: expensive
    tag_keys: tuple[str, ...] = ("agent", "team", "feature", "customer")
    max_breakdown_keys: int = 64  # per dimension per minute; the rest is summed as "(other)"
    max_providers: int = 8  # error-rate series per service; the rest share "(other)"
    max_contributors: int = 3  # per dimension in an alert

    @property
    def history_min(self) -> int:
        """Minutes of history kept per series (ring-buffer length)."""
        return max(
            self.seasonal_days * MINUTES_PER_DAY + self.seasonal_halfwidth_min + 1,
            self.seasonal_weeks * 7 * MINUTES_PER_DAY + self.seasonal_halfwidth_min + 1,
            self.window_min + 1,
        )

    @classmethod
    def from_config(cls, section: dict[str, Any], path: str = "detect") -> DetectSettings:
        """Build from the ``[detect]`` table; raise :class:`ConfigError` naming the field."""
        if not isinstance(section, dict):
            raise ConfigError(path, "must be a table")
        known = {f.name for f in fields(cls)} - {
            "min_delta_nusd_per_min",
            "cold_start_nusd_per_min",
            "expensive_nusd_per_mtok",
        }
        known |= {"min_delta_usd_per_min", "cold_start_usd_per_min", "expensive_usd_per_mtok"}
        for key in section:
            if key not in known:
                raise ConfigError(
                    f"{path}.{key}", f"unknown setting (expected one of {sorted(known)})"
                )
        d = cls()

        def get(key: str, default: T, check: Callable[[str, Any], T]) -> T:
            return check(f"{path}.{key}", section[key]) if key in section else default

        s = cls(
            enabled=get("enabled", d.enabled, _bool),
            warm_start=get("warm_start", d.warm_start, _bool),
            sensitivity=get("sensitivity", d.sensitivity, _float_range(0.05, 0.95)),
            window_min=get("window_min", d.window_min, _int_range(5, 1440)),
            min_points=get("min_points", d.min_points, _int_range(3, 1440)),
            min_history_min=get("min_history_min", d.min_history_min, _int_range(0, 10080)),
            seasonal_min_days=get("seasonal_min_days", d.seasonal_min_days, _int_range(1, 28)),
            seasonal_days=get("seasonal_days", d.seasonal_days, _int_range(1, 28)),
            seasonal_halfwidth_min=get(
                "seasonal_halfwidth_min", d.seasonal_halfwidth_min, _int_range(0, 60)
            ),
            seasonal_weeks=get("seasonal_weeks", d.seasonal_weeks, _int_range(0, 4)),
            scale_floor_ratio=get("scale_floor_ratio", d.scale_floor_ratio, _float_range(0, 10)),
            z_threshold=get("z_threshold", d.z_threshold, _float_range(0.5, 100)),
            min_ratio=get("min_ratio", d.min_ratio, _float_range(1.01, 1000)),
            min_delta_nusd_per_min=get(
                "min_delta_usd_per_min", d.min_delta_nusd_per_min, _usd(allow_zero=False)
            ),
            min_delta_requests_per_min=get(
                "min_delta_requests_per_min", d.min_delta_requests_per_min, _int_range(1, 10**9)
            ),
            min_delta_tokens_per_min=get(
                "min_delta_tokens_per_min", d.min_delta_tokens_per_min, _int_range(1, 10**12)
            ),
            min_delta_expensive_share=get(
                "min_delta_expensive_share", d.min_delta_expensive_share, _float_range(0.01, 1)
            ),
            pair_z_threshold=get("pair_z_threshold", d.pair_z_threshold, _zero_or(1, 100)),
            critical_ratio=get("critical_ratio", d.critical_ratio, _float_range(1.01, 10**6)),
            cold_start_nusd_per_min=get(
                "cold_start_usd_per_min", d.cold_start_nusd_per_min, _usd(allow_zero=True)
            ),
            relearn_after_min=get("relearn_after_min", d.relearn_after_min, _int_range(0, 10**6)),
            shift_min=get("shift_min", d.shift_min, _int_range(0, 240)),
            min_delta_error_rate=get(
                "min_delta_error_rate", d.min_delta_error_rate, _float_range(0.001, 1)
            ),
            min_errors_per_min=get(
                "min_errors_per_min", d.min_errors_per_min, _int_range(1, 10**9)
            ),
            outage_error_rate=get("outage_error_rate", d.outage_error_rate, _float_range(0.01, 1)),
            busy_min_requests_per_min=get(
                "busy_min_requests_per_min", d.busy_min_requests_per_min, _float_range(0.1, 10**9)
            ),
            drop_min=get("drop_min", d.drop_min, _int_range(1, 1440)),
            confirm_min=get("confirm_min", d.confirm_min, _int_range(1, 60)),
            resolve_min=get("resolve_min", d.resolve_min, _int_range(1, 1440)),
            allowed_lateness_s=get("allowed_lateness_s", d.allowed_lateness_s, _int_range(0, 3600)),
            expensive_models=get("expensive_models", d.expensive_models, _str_tuple),
            expensive_nusd_per_mtok=get(
                "expensive_usd_per_mtok", d.expensive_nusd_per_mtok, _usd(allow_zero=True)
            ),
            tag_keys=get("tag_keys", d.tag_keys, _str_tuple),
            max_breakdown_keys=get(
                "max_breakdown_keys", d.max_breakdown_keys, _int_range(1, 10_000)
            ),
            max_providers=get("max_providers", d.max_providers, _int_range(1, 256)),
            max_contributors=get("max_contributors", d.max_contributors, _int_range(1, 50)),
        )
        if s.min_points > s.window_min:
            raise ConfigError(f"{path}.min_points", f"must be at most window_min ({s.window_min})")
        if s.seasonal_min_days > s.seasonal_days:
            raise ConfigError(
                f"{path}.seasonal_min_days", f"must be at most seasonal_days ({s.seasonal_days})"
            )
        if s.shift_min == 1:
            raise ConfigError(f"{path}.shift_min", "must be 0 (off) or from 2 to 240")
        if 0 < s.relearn_after_min <= s.confirm_min:
            raise ConfigError(f"{path}.relearn_after_min", "must be 0 or more than confirm_min")
        return s


def _bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(field, "must be true or false")
    return value


def _int_range(lo: int, hi: int) -> Callable[[str, Any], int]:
    def check(field: str, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise ConfigError(field, f"must be an integer from {lo} to {hi}")
        return value

    return check


def _float_range(lo: float, hi: float) -> Callable[[str, Any], float]:
    def check(field: str, value: Any) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool) or not lo <= value <= hi:
            raise ConfigError(field, f"must be a number from {lo} to {hi}")
        return float(value)

    return check


def _zero_or(lo: float, hi: float) -> Callable[[str, Any], float]:
    def check(field: str, value: Any) -> float:
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not (value == 0 or lo <= value <= hi)
        ):
            raise ConfigError(field, f"must be 0 (off) or a number from {lo} to {hi}")
        return float(value)

    return check


def _usd(*, allow_zero: bool) -> Callable[[str, Any], int]:
    def check(field: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(field, 'must be a USD amount, e.g. "0.05"')
        try:
            # TOML floats go through str() so 0.1 stays 0.1 (never binary float arithmetic).
            amount = Decimal(str(value))
        except InvalidOperation:
            raise ConfigError(field, f"{value!r} is not a decimal USD amount") from None
        if not amount.is_finite() or amount < 0 or (amount == 0 and not allow_zero):
            raise ConfigError(
                field, "must be a positive USD amount" + (" or 0" if allow_zero else "")
            )
        return usd_to_nusd(amount)

    return check


def _str_tuple(field: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(field, "must be a list of non-empty strings")
    return tuple(value)
