"""Spike and failure detection on per-service minute series (pure numpy, explicit time).

Input: one :class:`MinuteBucket` per service per closed minute (spend in nano-USD, requests,
errors, tokens, spend on expensive models, breakdowns by model / tag / provider / error type),
built from priced events by :class:`MinuteAggregator`. Output: :class:`schemas.alerts.Alert`
records, ``kind="spike"`` (spend) or ``kind="failure"`` (error rate / outage per provider,
busy service gone silent), each firing once per episode and resolving with the same id.

Method, in short (details and every parameter in ``streams/detect/README.md``):

* Baseline per series = max(recent, time-of-day). *Recent*: median of the trailing
  ``window_min`` minutes, noise scale max(1.4826 MAD, (q90 - median) / 1.2816) because spend
  is right-skewed; minutes of confirmed alert episodes are left out, and the baseline is frozen
  while fewer than ``min_points`` usable minutes remain. *Time-of-day*: once
  ``seasonal_min_days`` days exist, the median / MAD of the same minute-of-day
  +- ``seasonal_halfwidth_min`` on up to ``seasonal_days`` previous days. Quiet services are
  compared with their minutes that have spend; every service with its own 99th-percentile
  spend/baseline ratio of the past day (the tail).
* A spend minute is anomalous when it clears all of: robust z >= ``z_threshold``, ratio >=
  ``min_ratio`` and the tail, excess >= ``min_delta_usd_per_min`` -- or when spend clearly
  rose and calls, tokens or the share of calls on expensive models cleared their own rules.
  New services (< ``min_history_min``) only alert above ``cold_start_usd_per_min``.
* Error rate per provider: rise >= max(``min_delta_error_rate``, z x noise) with at least
  ``min_errors_per_min`` errors; >= ``outage_error_rate`` is an outage (critical).
  Drop: a busy service (>= ``busy_min_requests_per_min``, hardly ever idle, usually busy at
  this time of day) with zero calls for ``drop_min`` minutes.
* Sustained shifts: the median of the last ``shift_min`` minutes; a lasting rise joins the
  spike episode, a lasting fall is a spend drop (``failure``, series ``spend_drop``). Time of
  week replaces time of day for a service it predicts better. Until the time of day is known
  (warm-up) an episode only starts on a jump above the last minutes.
* Score: each rule's margin ``m`` becomes ``m / (1 + m)`` in [0, 1]; alerts need
  ``score >= 1 - sensitivity``.
* Lifecycle: fire after ``confirm_min`` consecutive anomalous minutes, resolve after
  ``resolve_min`` normal ones; a spike lasting ``relearn_after_min`` becomes the new baseline
  (resolves as ``baseline_adapted``). Alert id = ``alert_id_for(kind, service, series,
  episode_start_iso)`` with series ``spend``, ``traffic`` or ``error_rate[:provider]``.
"""

from __future__ import annotations

from streams.detect.bucket import MinuteBucket, minute_index, minute_start
from streams.detect.minutes import MinuteAggregator
from streams.detect.monitor import SpikeMonitor, Verdict
from streams.detect.settings import DetectSettings
from streams.detect.stream import DetectStream

__all__ = [
    "DetectSettings",
    "DetectStream",
    "MinuteAggregator",
    "MinuteBucket",
    "SpikeMonitor",
    "Verdict",
    "minute_index",
    "minute_start",
]
