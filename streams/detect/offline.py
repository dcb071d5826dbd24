"""The offline backtest: the streaming :class:`SpikeMonitor` run over one exported series,
one step at a time, so a CSV export can be checked against the same detector.

The series is first put on a regular grid (:mod:`streams.detect.exports`). Each step is read
as the amount spent in it (``kind="spend"``, USD), an amount of anything else (``"count"``)
or a reading (``"gauge"``: CPU %, latency, a balance). Counts in the settings
(``window_min``, ``confirm_min``, ``min_history_min`` ...) count steps; the seasonal period is
one day of steps, the week seven; the money thresholds are scaled from per minute to per step
for spend and are off for the other kinds (their units are unknown: ``min_delta`` sets one).
A missing step counts as zero for amounts and as no reading for a gauge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from schemas.alerts import Alert
from schemas.events import parse_ts
from streams.detect.bucket import minute_index
from streams.detect.exports import Grid, Kind
from streams.detect.monitor import SpikeMonitor
from streams.detect.settings import DetectSettings

SERVICE = "series"
NANO = Decimal(1_000_000_000)
HISTORY_DAYS = 28  # history held: the range a series without a money unit must leave


@dataclass(frozen=True, slots=True)
class Episode:
    """One alert episode of the backtest, by step: ``first`` (the episode's start),
    ``fired``, ``resolved`` (``None``: still open at the end)."""

    first: int
    fired: int
    resolved: int | None
    direction: str  # "rise" | "drop"
    observed: float  # series units per step
    baseline: float
    alert: Alert


@dataclass(frozen=True, slots=True)
class SeriesResult:
    interval_s: int
    missing_steps: int
    scores: list[float]  # per step
    alerts: list[int]  # per step: 1 where the step is anomalous inside an episode that fired
    episodes: list[Episode]
    start: datetime

    def step_time(self, step: int) -> datetime:
        return self.start + timedelta(seconds=step * self.interval_s)


def settings_for(
    settings: DetectSettings, interval_s: int, kind: Kind, min_delta: Decimal | None
) -> tuple[DetectSettings, int]:
    """The settings in steps of ``interval_s`` for ``kind``, and the seasonal period in steps
    (``0`` when a day is not a whole number of steps or too few to have a time of day)."""
    s = settings
    per_step = Decimal(interval_s) / 60
    if kind == "spend":
        delta = (
            int(min_delta * NANO) if min_delta is not None
            else int(Decimal(s.min_delta_nusd_per_min) * per_step)
        )  # fmt: skip
        s = s.model_copy(
            update={
                "min_delta_nusd_per_min": max(1, delta),
                "cold_start_nusd_per_min": int(Decimal(s.cold_start_nusd_per_min) * per_step),
            }
        )
    else:
        # Unknown units: no dollar minimum (unless given), no ratio (a reading may sit near 0
        # or below), no absolute cold-start amount. The statistical rules remain.
        delta = int(min_delta * NANO) if min_delta is not None else 0
        s = s.model_copy(
            update={"min_delta_nusd_per_min": delta, "min_ratio": 1.0, "cold_start_nusd_per_min": 0}
        )
    halfwidth = round(s.seasonal_halfwidth_min * 60 / interval_s)
    period = 86400 // interval_s if 86400 % interval_s == 0 else 0
    if period < 2 * halfwidth + 2:
        period = 0
    # A spike or drop this long becomes the new baseline: a span of time, not of rows.
    relearn = s.relearn_after_min
    if relearn:
        relearn = max(s.confirm_min + 1, round(relearn * 60 / interval_s))
    derived = {"seasonal_halfwidth_min": halfwidth, "relearn_after_min": relearn}
    return s.model_copy(update=derived), period


def detect_grid(
    grid: Grid,
    settings: DetectSettings | None = None,
    *,
    kind: Kind = "spend",
    min_delta: Decimal | None = None,
) -> SeriesResult:
    """Score every step of ``grid`` with the streaming detector.

    ``min_delta`` is the smallest excess worth an alert, in the series' own units per step
    (default: ``min_delta_usd_per_min`` times the step in minutes for spend, none otherwise).
    Returns per-step scores in ``[0, 1]`` and 0/1 alert flags, plus the alert episodes.
    """
    s, period = settings_for(settings or DetectSettings(), grid.step_s, kind, min_delta)
    keep = HISTORY_DAYS * 86400 // grid.step_s
    monitor = SpikeMonitor(
        s, period_min=period, spend_only=True, keep_min=keep, readings=kind == "gauge"
    )
    # Global step numbers: with one-minute steps on whole minutes they are the stream's minute
    # indexes, so alert ids match what the worker would send for the same minutes.
    base = round(grid.start.timestamp() / grid.step_s)
    n = len(grid.values)
    scores = [0.0] * n
    anomalous = [False] * n
    fired: dict[str, tuple[int, int, Alert]] = {}
    resolved: dict[str, int] = {}
    for k, value in enumerate(grid.values):
        x = math.nan if value is None else float(int(value * NANO))
        alerts, verdict = monitor.observe_value(SERVICE, base + k, x)
        if verdict is None:  # detection disabled
            continue
        scores[k] = verdict.score
        anomalous[k] = verdict.spike_anomalous or verdict.fall_anomalous
        for alert in alerts:
            if alert.status == "firing":
                start = minute_index(parse_ts(alert.figures["episode_start"])) - base
                fired[alert.alert_id] = (max(start, 0), k, alert)
            else:
                resolved[alert.alert_id] = k
    flags = [0] * n
    episodes: list[Episode] = []
    for alert_id, (first, fire_step, alert) in fired.items():
        end = resolved.get(alert_id)
        for i in range(first, (end if end is not None else n - 1) + 1):
            if anomalous[i]:
                flags[i] = 1
        drop = alert.labels.get("detector") == "spend_drop"
        episodes.append(
            Episode(
                first,
                fire_step,
                end,
                "drop" if drop else "rise",
                float(alert.figures.get("observed", "nan")),
                float(alert.figures.get("baseline", "nan")),
                alert,
            )
        )
    episodes.sort(key=lambda e: (e.first, e.fired))
    return SeriesResult(grid.step_s, grid.missing, scores, flags, episodes, grid.start)
