"""``SpikeMonitor``: per-service spike and failure detection over closed minutes.

Call :meth:`SpikeMonitor.observe` once per closed :class:`MinuteBucket` (per service, in
minute order) and :meth:`SpikeMonitor.close_idle` periodically with the instant up to which
input is complete; both return the alerts to publish (firing or resolved). The offline
backtest drives the same monitor with :meth:`SpikeMonitor.observe_value`, one value per step
of a spend-only series. Not thread-safe: call from one event loop.

This module only gathers each minute's inputs and hands them on: the baselines are computed
in :mod:`streams.detect.baseline`, the rules are pure functions in
:mod:`streams.detect.rules`, episodes and alerts move in :mod:`streams.detect.lifecycle`, and
the warm start lives in :mod:`streams.detect.warm`. The method is described in
``streams/detect/README.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from schemas.alerts import Alert
from streams.detect import baseline as B
from streams.detect import history as H
from streams.detect import lifecycle, warm
from streams.detect.baseline import MIX, REQUESTS, SPEND
from streams.detect.bucket import MinuteBucket, minute_index
from streams.detect.robust import (
    MAD_TO_SIGMA,
    HeldRange,
    margin_threshold,
    robust_stats,
    score_of,
)
from streams.detect.rules.cause import likely_cause
from streams.detect.rules.error_rate import error_margin
from streams.detect.rules.shift import shift_margins
from streams.detect.rules.spike import cold_margin, reading_drop_margin, spike_margin
from streams.detect.rules.surge import surge_margin
from streams.detect.rules.traffic import is_traffic_drop
from streams.detect.settings import MINUTES_PER_DAY, DetectSettings
from streams.detect.state import OTHER, Layout, RateSeries, ServiceState
from streams.detect.window import SortedWindow

ROW_NAMES = B.ROW_NAMES
_SILENT = [0.0, 0.0, 0.0, math.nan]
_NO_RESID = [math.nan, math.nan]  # spend / baseline, z of spend
TAIL_QUANTILE = 0.99  # normal minutes' spend / baseline ratio a spike must also exceed
TAIL_MIN_POINTS = 240  # four hours of ratios before the learned tail applies
TAIL_EVERY_MIN = 10  # recompute the tail this often (a quantile over a day of minutes)
RANGE_QUANTILE = 0.995  # a series without a money unit must leave this range of its history
RECURRING_EPISODES = 3  # episodes in a day after which their minutes count as normal noise
# warm-up: a rise must also be a jump above the median of the last three minutes (or the last
# step, for series coarser than a minute: a ramp of half-hour steps climbs steadily)
JUMP_LOOKBACK_MIN = 3

__all__ = ["OTHER", "ROW_NAMES", "MonitorStats", "SpikeMonitor", "Verdict"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the detectors concluded about one service minute (backtests, CLI, debugging).

    ``spike_score`` is in ``[0, 1]`` (``>= 1 - sensitivity`` means the minute is anomalous:
    ``0.5`` at the default sensitivity); ``fall_score`` the same for a sustained spend drop;
    ``score`` the larger of the two. ``spend_baseline_nusd`` is ``NaN`` when there is no
    baseline yet.
    """

    service: str
    minute: int
    spike_score: float
    spike_anomalous: bool
    drop_anomalous: bool
    cold: bool
    spend_baseline_nusd: float
    error_scores: dict[str, float] = field(default_factory=dict)
    fall_score: float = 0.0
    fall_anomalous: bool = False
    score: float = 0.0


@dataclass(frozen=True, slots=True)
class _Minute:
    """Where one service minute stands: its baseline and the spend level and noise scale the
    rules measure against (after the quiet-service adjustment)."""

    base: B.Baseline
    spend_level: float
    spend_scale: float
    cold: bool
    warm_up: bool


@dataclass(frozen=True, slots=True)
class _Spend:
    """The spend rules' verdict: rise margin (and the minutes it vouches for), fall margin
    and the median it read, the likely cause, the cold-start prior."""

    margin: float
    span: int
    fall: float
    recent: float
    cause: str
    prior: float


@dataclass
class MonitorStats:
    """Counters the worker may export: buckets ignored as late, services tracked/evicted."""

    late_buckets: int = 0
    evicted_services: int = 0


class SpikeMonitor:
    """Streaming detectors for every service seen; state is bounded per service.

    Memory per service: 4 series x ``max(seasonal_days, 7 x seasonal_weeks)`` days of minutes
    x 9 bytes (about 360 KiB for 7 days) plus one ``window_min`` ring per provider.
    """

    def __init__(
        self,
        settings: DetectSettings | None = None,
        *,
        period_min: int = MINUTES_PER_DAY,
        spend_only: bool = False,
        keep_min: int = 0,
        readings: bool = False,
    ) -> None:
        """``period_min`` is the seasonal period in steps (a day of minutes in the stream; the
        offline backtest passes a day of rows); ``0`` turns the time-of-day baseline off.
        ``spend_only``: the series carries spend alone (the offline backtest), so the call,
        token and model-mix rules have nothing to read. ``keep_min``: hold at least this many
        steps of history (the offline backtest holds four weeks: the range rule of series
        without a money unit reads all of it; nothing else looks further back). ``readings``:
        the values are readings (a gauge), not amounts: the noise scale is the MAD's alone
        (no right-skew allowance; see :func:`streams.detect.baseline.compute`)."""
        self.settings = s = settings or DetectSettings()
        self.stats = MonitorStats()
        self._readings = readings
        self._services: dict[str, ServiceState] = {}
        self._day = period_min
        self._threshold = margin_threshold(s.sensitivity)
        h = s.seasonal_halfwidth_min
        peak_len = period_min or MINUTES_PER_DAY
        # The tails are 99th percentiles over the past day: 1,440 points of one-minute steps.
        # A coarser series reads the past week instead (2,016 five-minute steps), or a single
        # day would leave it two or three points past its 99th percentile.
        tail_len = peak_len if peak_len >= MINUTES_PER_DAY else 7 * peak_len
        spread = range(-h, h + 1)
        seasons: dict[str, list[int]] = {}
        self._week = 7 * period_min if period_min and s.seasonal_weeks else 0
        if period_min:
            seasons["day"] = [
                d * period_min + j for d in range(1, s.seasonal_days + 1) for j in spread
            ]
            if self._week:
                seasons["week"] = [
                    w * self._week + j for w in range(1, s.seasonal_weeks + 1) for j in spread
                ]
        # (a seasonal sample slides by reading the point one minute older than its oldest)
        capacity = max(
            s.seasonal_days * period_min + h + 2 if period_min else 0,
            s.seasonal_weeks * self._week + h + 2 if self._week else 0,
            s.window_min + 1,
            peak_len + 1,
            s.shift_min + 1,
            keep_min,
        )
        self._layout = Layout(
            rows=1 if spend_only else len(ROW_NAMES),
            capacity=capacity,
            window=s.window_min,
            seasons=seasons,
            resid_capacity=tail_len + 1,
            keep=max(s.confirm_min, s.drop_min) + 1,
        )
        self._capacity = capacity
        # Half of the slots the minimum number of days would provide.
        self._season_min_points = max(1, s.seasonal_min_days * len(spread) // 2)
        self._week_min_points = max(1, len(spread) // 2)
        self._peak = np.arange(-peak_len, 0, dtype=np.int64)
        self._tail_span = np.arange(-tail_len, 0, dtype=np.int64)
        # Silent gaps longer than this are bulk-filled: by then every episode is settled.
        self._gap_eval = max(s.confirm_min, s.drop_min, s.resolve_min) + 2

    # -- public API -------------------------------------------------------------------------
    @property
    def services(self) -> list[str]:
        return sorted(self._services)

    def observe(self, bucket: MinuteBucket) -> list[Alert]:
        """Feed one closed minute of one service; return alerts that fire or resolve.

        Minutes of a service must arrive in order; a bucket for a minute at or before the
        service's last one (late or duplicate) is ignored and counted in ``stats.late_buckets``.
        Missing minutes between two buckets are silent minutes (no calls).
        """
        return self.observe_verbose(bucket)[0]

    def observe_verbose(self, bucket: MinuteBucket) -> tuple[list[Alert], Verdict | None]:
        """Like :meth:`observe`, also returning the :class:`Verdict` of the bucket's minute
        (``None`` for an ignored late bucket)."""
        if not self.settings.enabled:
            return [], None
        m = bucket.index
        st = self._services.get(bucket.service)
        if st is None:
            st = self._new_service(bucket.service, m)
        elif st.ring.last is not None and m <= st.ring.last:
            self.stats.late_buckets += 1
            return [], None
        alerts = self._fill_gap(st, m)
        more, verdict = self._step(st, m, self.row_values(bucket), bucket)
        return alerts + more, verdict

    def observe_value(
        self, service: str, minute: int, value: float
    ) -> tuple[list[Alert], Verdict | None]:
        """One step of a spend-only series (the offline backtest): ``value`` in nano-USD, may
        be negative (refunds) or ``NaN`` (no reading: the step is no evidence either way).
        Steps must come in order, each ``minute`` the previous one + 1."""
        if not self.settings.enabled:
            return [], None
        st = self._services.get(service)
        if st is None:
            st = self._new_service(service, minute)
        elif st.ring.last is not None and minute != st.ring.last + 1:
            raise ValueError(f"step {minute} after {st.ring.last}: steps must be consecutive")
        x = [value, *_SILENT[1 : self._layout.rows]]
        return self._step(st, minute, x, None)

    def close_idle(self, now: datetime) -> list[Alert]:
        """Treat every minute that ended at or before ``now`` without a bucket as silent.

        ``now`` is the instant up to which input is complete (the aggregator's watermark, see
        ``MinuteAggregator.watermark``), not necessarily the wall clock. Detects busy services
        going silent, resolves spikes of services that stopped, and drops services silent for
        the whole history window (their open alerts resolve as ``expired``).
        """
        if not self.settings.enabled:
            return []
        final = minute_index(now) - 1
        alerts: list[Alert] = []
        for name in sorted(self._services):
            st = self._services[name]
            if st.ring.last is not None and st.ring.last < final:
                alerts += self._fill_gap(st, final + 1)
            if final - st.last_traffic > self._capacity:
                alerts += lifecycle.expire(st, final)
                del self._services[name]
                self.stats.evicted_services += 1
        return alerts

    def seed(self, buckets: Iterable[MinuteBucket]) -> int:
        """Load history without alerting; see :func:`streams.detect.warm.seed`."""
        return warm.seed(self, buckets)

    def seed_history(self, service: str, history: H.ServiceHistory, before: int) -> int:
        """Bulk history of a service not seen yet; see :func:`streams.detect.warm.seed_history`."""
        return warm.seed_history(self, service, history, before)

    def restore(self, alert: Alert) -> bool:
        """Continue a detector alert still firing; see :func:`streams.detect.warm.restore`."""
        return warm.restore(self, alert)

    # -- state (also used by the warm start) ------------------------------------------------
    @property
    def layout(self) -> Layout:
        return self._layout

    def service(self, name: str) -> ServiceState | None:
        return self._services.get(name)

    def forget(self, name: str) -> None:
        """Stop following ``name`` without alerting: another worker follows it now (its
        partition moved), so here it must not be taken for silent."""
        self._services.pop(name, None)

    def _new_service(self, name: str, first: int) -> ServiceState:
        st = self._services[name] = ServiceState(name, first, self.settings, self._layout)
        return st

    def row_values(self, bucket: MinuteBucket | None) -> list[float]:
        if bucket is None:
            return _SILENT[: self._layout.rows]
        n = bucket.requests
        mix = bucket.expensive_requests / n if n else math.nan
        return [float(bucket.spend_nusd), float(n), float(bucket.tokens), mix][: self._layout.rows]

    # -- one minute -------------------------------------------------------------------------
    def _fill_gap(self, st: ServiceState, stop: int) -> list[Alert]:
        """Silent minutes from the service's last minute up to (not including) ``stop``."""
        alerts: list[Alert] = []
        start = (st.ring.last if st.ring.last is not None else stop) + 1
        evaluate_until = min(stop, start + self._gap_eval)
        for g in range(start, evaluate_until):
            alerts += self._step(st, g, self.row_values(None), None)[0]
        if stop > evaluate_until:
            st.ring.fill(evaluate_until, stop, _SILENT, excluded=st.drop.firing)
            st.resid.fill(evaluate_until, stop, _NO_RESID, excluded=False)
            for rs in st.rates.values():
                rs.ring.fill(evaluate_until, stop, [math.nan], excluded=False)
            st.recent.clear()
        return alerts

    def _step(
        self, st: ServiceState, m: int, x: list[float], bucket: MinuteBucket | None
    ) -> tuple[list[Alert], Verdict]:
        """One closed minute of one service: write it, compute its baseline, judge it, move
        the episodes."""
        rows = self._layout.rows
        st.ring.put(m, x)
        if bucket is not None:
            st.recent.append(bucket)
            if bucket.requests:
                st.last_traffic = m
        elif rows == 1 and x[SPEND] == x[SPEND] and x[SPEND] != 0:
            st.last_traffic = m
        ctx = self._context(st, m, x)
        spend = self._judge_spend(st, m, x, ctx)
        return self._advance(st, m, x, bucket, ctx, spend)

    def _context(self, st: ServiceState, m: int, x: list[float]) -> _Minute:
        """The baseline of minute ``m`` and where the service stands (cold, warm-up)."""
        s = self.settings
        rows = self._layout.rows
        ring = st.ring
        history = m - st.first
        cold = history < s.min_history_min
        day = self._day
        seasonal_on = day > 0 and history >= s.seasonal_min_days * day
        weekly = False
        if seasonal_on and self._week and history >= self._week + s.seasonal_halfwidth_min:
            d = ring.season("day", SPEND, m).median()
            w = ring.season("week", SPEND, m).median()
            st.choice.update(x[SPEND], d, w, 1.0 / (7 * day))  # a week of memory
            weekly = st.choice.weekly(day)
        base = B.compute(
            ring,
            m,
            st.frozen,
            min_points=s.min_points,
            seasonal_on=seasonal_on,
            weekly=weekly,
            season_min_points=self._season_min_points,
            week_min_points=self._week_min_points,
            scale_floor_ratio=s.scale_floor_ratio,
            upper_tail=not self._readings,
        )
        level, scale = base.level, base.scale
        # The share of calls on expensive models is binomial: never less noisy than that.
        if rows > MIX and x[REQUESTS] > 0 and level[MIX] == level[MIX]:
            p = min(max(level[MIX], 0.02), 0.98)
            scale[MIX] = B._fmax(scale[MIX], math.sqrt(p * (1 - p) / x[REQUESTS]))
        spend_level = level[SPEND]
        spend_scale = max(scale[SPEND], s.scale_floor_ratio * spend_level)
        quiet = max(s.min_delta_nusd_per_min, 0)
        if (
            not cold
            and spend_level == spend_level
            and (spend_level < quiet or (quiet == 0 and spend_level <= 0))
        ):
            # A quiet service (mostly idle minutes): a ratio against ~0 means nothing, so
            # compare with its typical *active* minute -- in the window, or else over the past
            # day (bursty tools used by people, cron jobs).
            spend_level, spend_scale = self._active_level(st, m, spend_level, spend_scale)
        return _Minute(base, spend_level, spend_scale, cold, day > 0 and not seasonal_on)

    def _judge_spend(self, st: ServiceState, m: int, x: list[float], ctx: _Minute) -> _Spend:
        """The spend rules' margins for minute ``m`` (see :mod:`streams.detect.rules`)."""
        s = self.settings
        ring = st.ring
        base, spend_level, spend_scale = ctx.base, ctx.spend_level, ctx.spend_scale
        level, scale = base.level, base.scale
        spend = x[SPEND]
        if spend != spend:  # no reading: no evidence either way (the tails still refresh)
            if not ctx.cold and spend_level == spend_level:
                self._tail_ratio(st, m)
            return _Spend(0.0, 1, 0.0, math.nan, "costlier_calls", math.nan)
        if ctx.cold or spend_level != spend_level:
            prior = ring.recent(m)[SPEND].median()
            margin = cold_margin(spend, prior, base.count[SPEND], s)
            return _Spend(margin, 1, 0.0, math.nan, "new_service", prior)
        local = math.nan
        if ctx.warm_up and st.spike.start is None:
            # Without the time of day, a gradual rise may be the daily cycle: an episode only
            # starts on a jump above the last few minutes.
            local = self._local_level(st, m)
        tail = self._tail_ratio(st, m)
        spike = spike_margin(
            x, level, scale, spend_level, spend_scale, tail, s, local=local,
            tail_z=st.tail_z[0], held=st.range,
        )  # fmt: skip
        margin, span = spike.margin, 1
        if self._layout.rows > MIX and not ring.is_excluded(m - 1):
            m_pair = surge_margin(
                x[REQUESTS],
                ring.value(REQUESTS, m - 1),
                spend,
                ring.value(SPEND, m - 1),
                level[REQUESTS],
                scale[REQUESTS],
                spend_level,
                s,
            )
            if m_pair >= self._threshold and m_pair > margin:
                margin, span = m_pair, 2
        fall, recent = 0.0, math.nan
        if st.range is not None and self._readings:
            # A reading may fail either way: one reading below the range the series kept is
            # news (a speed, a CPU), where one quiet minute of spend or calls is not.
            if ctx.warm_up and local != local:
                local = self._local_level(st, m)
            fall = reading_drop_margin(
                spend, base.low[SPEND], spend_scale, s, tail_z=st.tail_z[1], local=local,
                held=st.range,
            )  # fmt: skip
            if fall > 0:
                recent = spend
        if s.shift_min and not ctx.warm_up:
            last = [ring.value(SPEND, k) for k in range(m - s.shift_min + 1, m + 1)]
            rise, shift_fall = shift_margins(
                last, spend_level, base.low[SPEND], spend_scale, s, tail_z=st.tail_z,
                held=st.range,
            )  # fmt: skip
            if rise > margin:
                margin, span = rise, 1
            if shift_fall > fall:
                fall, recent = shift_fall, _median(last)
        return _Spend(margin, span, fall, recent, likely_cause(spike.mix, x, level, s), math.nan)

    def _advance(
        self,
        st: ServiceState,
        m: int,
        x: list[float],
        bucket: MinuteBucket | None,
        ctx: _Minute,
        v: _Spend,
    ) -> tuple[list[Alert], Verdict]:
        """Verdicts -> episodes -> alerts, and the minute's tail statistics."""
        s = self.settings
        rows = self._layout.rows
        base, spend_level, spend_scale, cold = ctx.base, ctx.spend_level, ctx.spend_scale, ctx.cold
        spend = x[SPEND]
        missing = spend != spend
        spike_anomalous = v.margin >= self._threshold
        silent = rows > REQUESTS and x[REQUESTS] == 0  # the traffic rule speaks for it
        fall_anomalous = v.fall >= self._threshold and not silent
        drop_anomalous = False
        if rows > REQUESTS:
            drop_anomalous = is_traffic_drop(
                x[REQUESTS],
                st.frozen.level[REQUESTS],
                base.idle,
                base.count[REQUESTS],
                base.season[REQUESTS],
                cold,
                s,
            )
        resid = spend / spend_level if not cold and spend_level > 0 else math.nan
        z_spend = (
            (spend - spend_level) / spend_scale
            if not cold and spend_scale > 0 and spend_level == spend_level
            else math.nan
        )
        st.resid.put(m, [resid, z_spend])
        level = base.level
        levels = {
            "spend": _nz(v.prior if cold or spend_level != spend_level else spend_level),
            "requests": _nz(level[REQUESTS]) if rows > REQUESTS else 0.0,
            "tokens": _nz(level[2]) if rows > 2 else 0.0,
            "expensive_call_share": _nz(level[MIX]) if rows > MIX else 0.0,
        }
        evidence = None if missing else spike_anomalous
        alerts = lifecycle.spike_step(st, m, evidence, spend, levels, v.cause, v.span, s)
        if rows > REQUESTS:
            alerts += lifecycle.traffic_step(st, m, drop_anomalous, st.frozen.level[REQUESTS])
        fall_evidence = None if missing or silent else fall_anomalous
        alerts += lifecycle.fall_step(st, m, fall_evidence, _nz(v.recent), _nz(base.low[SPEND]), s)
        error_scores: dict[str, float] = {}
        if bucket is not None or st.rates:
            more, error_scores = self._error_rates(st, m, bucket, cold)
            alerts += more
        spike_score, fall_score = score_of(v.margin), score_of(v.fall)
        verdict = Verdict(
            service=st.name,
            minute=m,
            spike_score=spike_score,
            spike_anomalous=spike_anomalous,
            drop_anomalous=drop_anomalous,
            cold=cold,
            spend_baseline_nusd=spend_level,
            error_scores=error_scores,
            fall_score=fall_score,
            fall_anomalous=fall_anomalous,
            score=max(spike_score, fall_score),
        )
        return alerts, verdict

    def _local_level(self, st: ServiceState, m: int) -> float:
        """Median spend of the last few minutes before ``m`` (warm-up)."""
        lookback = max(1, min(JUMP_LOOKBACK_MIN, JUMP_LOOKBACK_MIN * self._day // MINUTES_PER_DAY))
        vals = [st.ring.value(SPEND, k) for k in range(m - lookback, m)]
        return _median(vals)

    def _tail_ratio(self, st: ServiceState, m: int) -> float:
        """The 99th percentile of normal minutes' spend / baseline over the past day (a week
        for a series coarser than a minute; cached
        for ``TAIL_EVERY_MIN`` minutes); ``NaN`` until ``TAIL_MIN_POINTS`` ratios exist."""
        if m - st.tail_at >= TAIL_EVERY_MIN:
            st.tail_at = m
            vals, excluded = st.resid.take(m + self._tail_span)
            row = vals[0][~excluded[0] & ~np.isnan(vals[0])]
            if row.size >= TAIL_MIN_POINTS:
                st.tail_ratio = _quantile(row, TAIL_QUANTILE)
            keep = ~np.isnan(vals[1])
            day_ago = m - len(self._peak)
            if sum(1 for start in st.fired if start >= day_ago) < RECURRING_EPISODES:
                keep &= ~excluded[1]
            else:
                # Episodes after episodes: bursts of this size are this series' normal, however
                # often they were alerted on. Only the episode still open stays out.
                opened = [e.start for e in (st.spike, st.fall) if e.start is not None]
                if opened:
                    keep &= (m + self._tail_span) < min(opened)
            z = vals[1][keep]
            if z.size >= TAIL_MIN_POINTS:
                st.tail_z = (_quantile(z, TAIL_QUANTILE), -_quantile(z, 1.0 - TAIL_QUANTILE))
            if self.settings.min_ratio <= 1:
                # No ratio rule (a series without a money unit): what matters is leaving the
                # range the series kept over its whole history held (up to a week or more).
                minutes = np.arange(m - st.ring.capacity + 1, m, dtype=np.int64)
                held, _ = st.ring.take(SPEND, minutes)
                opened = [e.start for e in (st.spike, st.fall) if e.start is not None]
                ok = ~np.isnan(held)
                if opened:
                    ok &= minutes < min(opened)
                if ok.sum() >= TAIL_MIN_POINTS:
                    st.range = HeldRange(held[ok], 1.0 - RANGE_QUANTILE)
        return st.tail_ratio

    def _active_level(
        self, st: ServiceState, m: int, level: float, scale: float
    ) -> tuple[float, float]:
        """Level and noise scale of a quiet service's minutes with spend (see ``_step``)."""
        xs = st.ring.recent(m)[SPEND].xs
        active = [v for v in xs if v > 0]
        if len(active) >= max(3, self.settings.min_points // 2):
            w = SortedWindow(active)
            med = w.median()
            active_scale = max(MAD_TO_SIGMA * w.mad(med), w.upper(med))
            return max(level, med), max(scale, active_scale)
        vals, excluded = st.ring.take(SPEND, m + self._peak)
        ok = ~excluded & ~np.isnan(vals) & (vals > 0)
        if ok.sum() < 3:
            return level, scale
        med_a, mad, upper, _ = robust_stats(vals[None, :], ok[None, :])
        active_scale = max(float(MAD_TO_SIGMA * mad[0]), float(upper[0]))
        return max(level, float(med_a[0])), max(scale, active_scale)

    # -- error rates per provider -------------------------------------------------------------
    def provider_counts(
        self, st: ServiceState, bucket: MinuteBucket, m: int
    ) -> dict[str, tuple[int, int]]:
        """``{provider: (requests, errors)}`` for the bucket, creating series as needed and
        folding providers beyond ``max_providers`` into ``(other)``."""
        requests = dict(bucket.requests_by_provider) or (
            {"": bucket.requests} if bucket.requests else {}
        )
        errors = dict(bucket.errors_by_provider) or ({"": bucket.errors} if bucket.errors else {})
        out: dict[str, tuple[int, int]] = {}
        for provider in sorted(set(requests) | set(errors)):
            key = provider
            if key not in st.rates:
                if len(st.rates) >= self.settings.max_providers:
                    key = OTHER
                if key not in st.rates:
                    st.rates[key] = RateSeries(self.settings, m)
            n, e = out.get(key, (0, 0))
            out[key] = (n + requests.get(provider, 0), e + errors.get(provider, 0))
        return out

    def _error_rates(
        self, st: ServiceState, m: int, bucket: MinuteBucket | None, cold_service: bool
    ) -> tuple[list[Alert], dict[str, float]]:
        s = self.settings
        counts = self.provider_counts(st, bucket, m) if bucket is not None else {}
        alerts: list[Alert] = []
        scores: dict[str, float] = {}
        win = np.arange(-s.window_min, 0, dtype=np.int64)
        for provider, rs in st.rates.items():
            n, e = counts.get(provider, (0, 0))
            rate = e / n if n else math.nan
            rs.ring.put(m, [rate])
            level = rs.frozen[0]
            anomalous: bool | None = None
            outage = False
            margin = 0.0
            if n and e >= s.min_errors_per_min:
                # The baseline is only needed (and computed) when enough calls failed to matter.
                vals, excl = rs.ring.take(m + win)
                med, mad, _, count = robust_stats(vals, ~excl & ~np.isnan(vals))
                if count[0] >= s.min_points:
                    rs.frozen = (float(med[0]), MAD_TO_SIGMA * float(mad[0]))
                level, scale = rs.frozen
                outage = rate >= s.outage_error_rate
                new = cold_service or m - rs.first < s.min_history_min
                margin = error_margin(rate, n, level, scale, new, s)
            if n:
                anomalous = margin >= self._threshold
                scores[provider] = score_of(margin)
            alerts += lifecycle.rate_step(
                st, rs, provider, m, anomalous, rate, level, outage, n, e, s
            )
        return alerts, scores


def _quantile(values: np.ndarray, q: float) -> float:
    """``numpy.quantile(values, q)`` (linear interpolation) by partial sort: a tenth of the
    cost on a day of minutes."""
    n = len(values)
    pos = q * (n - 1)
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    part = np.partition(values, (lo, hi))
    return float(part[lo] + (part[hi] - part[lo]) * (pos - lo))


def _median(values: list[float]) -> float:
    points = sorted(v for v in values if v == v)
    n = len(points)
    if not n:
        return math.nan
    return (points[(n - 1) // 2] + points[n // 2]) / 2.0


def _nz(value: float) -> float:
    return 0.0 if value != value else float(value)
