"""The offline backtest: the streaming :class:`SpikeMonitor` run over one ``timestamp,value``
series, one row per step, so a CSV export can be checked against the same detector.

Each row is one step of a regular series (interval inferred from the timestamps); its value is
read as USD spent during that step. Counts in the settings (``window_min``, ``confirm_min``,
``min_history_min`` ...) count rows; the seasonal period is one day of rows; the money
thresholds are scaled from per-minute to per-step. Missing steps count as zero.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from schemas.alerts import Alert
from schemas.events import parse_ts
from schemas.money import usd_to_nusd
from streams.detect.bucket import MinuteBucket, minute_index, minute_start
from streams.detect.monitor import SpikeMonitor
from streams.detect.settings import DetectSettings

SERVICE = "series"


@dataclass(frozen=True, slots=True)
class Episode:
    """One alert episode of the backtest: rows ``first..last`` (inclusive), by row index."""

    first: int
    fired: int
    resolved: int | None
    alert: Alert


@dataclass(frozen=True, slots=True)
class SeriesResult:
    interval_s: int
    missing_steps: int
    scores: list[float]
    alerts: list[int]  # 1 where the row is anomalous inside an episode that fired
    episodes: list[Episode]


def infer_interval_s(timestamps: Sequence[datetime]) -> int:
    """The series' step in whole seconds: the smallest gap between consecutive timestamps.

    Raises ``ValueError`` if timestamps are not strictly increasing, the step is not a whole
    number of seconds, or some gap is not a multiple of the step.
    """
    if len(timestamps) < 2:
        raise ValueError("need at least two rows to infer the interval")
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(timestamps)]
    for i, gap in enumerate(gaps):
        if gap <= 0:
            raise ValueError(f"row {i + 2}: timestamps must be strictly increasing")
    step = min(gaps)
    if step != int(step):
        raise ValueError(f"interval {step}s is not a whole number of seconds")
    for i, gap in enumerate(gaps):
        if gap % step:
            raise ValueError(f"row {i + 2}: gap of {gap:g}s is not a multiple of {step:g}s")
    return int(step)


def detect_series(
    timestamps: Sequence[datetime],
    values: Sequence[Decimal],
    settings: DetectSettings | None = None,
    *,
    min_delta: Decimal | None = None,
) -> SeriesResult:
    """Score every row with the streaming spend detector.

    ``min_delta`` overrides the smallest excess worth an alert, in the series' own units per
    row (default: ``min_delta_usd_per_min`` times the interval in minutes).
    Returns per-row scores in ``[0, 1]`` and 0/1 alert flags, plus the alert episodes.
    """
    s = settings or DetectSettings()
    interval_s = infer_interval_s(timestamps)
    scale = Decimal(interval_s) / 60
    s = replace(
        s,
        min_delta_nusd_per_min=max(
            1,
            usd_to_nusd(min_delta)
            if min_delta is not None
            else int(Decimal(s.min_delta_nusd_per_min) * scale),
        ),
        cold_start_nusd_per_min=int(Decimal(s.cold_start_nusd_per_min) * scale),
    )
    # Time of day: a day of rows, with the +- halfwidth converted from minutes to rows; off
    # when a day is not a whole number of rows or too few rows to have a time of day.
    halfwidth = round(s.seasonal_halfwidth_min * 60 / interval_s)
    period = 86400 // interval_s if 86400 % interval_s == 0 else 0
    if period < 2 * halfwidth + 2:
        period = 0
    s = replace(s, seasonal_halfwidth_min=halfwidth)
    monitor = SpikeMonitor(s, period_min=period)
    t0 = timestamps[0]
    steps = [round((t - t0).total_seconds()) // interval_s for t in timestamps]
    missing = steps[-1] + 1 - len(steps)
    scores: list[float] = []
    anomalous: list[bool] = []
    fired: dict[str, tuple[int, int, Alert]] = {}
    resolved: dict[str, int] = {}
    step_to_row = {step: i for i, step in enumerate(steps)}
    for row, (step, value) in enumerate(zip(steps, values, strict=True)):
        bucket = MinuteBucket(SERVICE, minute_start(step), spend_nusd=usd_to_nusd(value))
        alerts, verdict = monitor.observe_verbose(bucket)
        assert verdict is not None
        scores.append(verdict.spike_score)
        anomalous.append(verdict.spike_anomalous)
        for alert in alerts:
            if alert.kind != "spike":
                continue
            if alert.status == "firing":
                start = minute_index(parse_ts(alert.figures["episode_start"]))
                fired[alert.alert_id] = (step_to_row.get(start, row), row, alert)
            else:
                resolved[alert.alert_id] = row
    flags = [0] * len(steps)
    episodes: list[Episode] = []
    for alert_id, (first, fire_row, alert) in fired.items():
        end = resolved.get(alert_id)
        for i in range(first, (end if end is not None else len(steps) - 1) + 1):
            if anomalous[i]:
                flags[i] = 1
        episodes.append(Episode(first, fire_row, end, alert))
    return SeriesResult(interval_s, missing, scores, flags, sorted(episodes, key=lambda e: e.first))


def parse_rows(lines: Sequence[str]) -> tuple[list[str], list[datetime], list[str], list[Decimal]]:
    """Parse ``timestamp,value`` CSV lines (a header row is optional).

    Returns the raw timestamp and value strings (echoed back unchanged) and their parsed
    forms. Raises ``ValueError`` naming the line for anything unreadable or negative.
    """
    raw_ts: list[str] = []
    raw_values: list[str] = []
    stamps: list[datetime] = []
    values: list[Decimal] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        parts = [p.strip() for p in text.split(",")]
        if len(parts) < 2:
            raise ValueError(f"line {number}: expected 'timestamp,value'")
        if number == 1 and parts[0].lower() in {"timestamp", "ts", "time"}:
            continue
        try:
            ts = parse_ts(parts[0])
        except ValueError as exc:
            raise ValueError(f"line {number}: bad timestamp {parts[0]!r}: {exc}") from None
        try:
            value = Decimal(parts[1])
        except ArithmeticError:
            raise ValueError(f"line {number}: bad value {parts[1]!r}") from None
        if not value.is_finite() or value < 0:
            raise ValueError(f"line {number}: value must be a non-negative number")
        raw_ts.append(parts[0])
        raw_values.append(parts[1])
        stamps.append(ts)
        values.append(value)
    return raw_ts, stamps, raw_values, values
