"""``SpikeMonitor``: per-service spike and failure detection over closed minutes.

Call :meth:`SpikeMonitor.observe` once per closed :class:`MinuteBucket` (per service, in
minute order) and :meth:`SpikeMonitor.close_idle` periodically with the instant up to which
input is complete; both return the alerts to publish (firing or resolved). The method is
described in ``streams/detect/README.md``. Not thread-safe: call from one event loop.

Spend spikes are judged per minute (robust z, ratio, the service's tail ratio, a minimum
dollar excess, corroborated by calls/tokens/model mix) and, for runaway loops on small
heavy-tailed services, over the last two minutes together: a call surge (Poisson-floored z of
the two-minute call count, both minutes elevated at one rate) whose spend clears twice the
minimum dollar excess. That verdict covers both minutes, so it confirms on its own.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from schemas.alerts import Alert, Severity
from streams.detect import history as H
from streams.detect import render
from streams.detect.bucket import MinuteBucket, minute_index, minute_start
from streams.detect.episode import Episode, EpisodeEvent
from streams.detect.ring import MinuteRing
from streams.detect.robust import (
    MAD_TO_SIGMA,
    BoolArray,
    FloatArray,
    median_mad,
    robust_stats,
    score_of,
    upward_margin,
)
from streams.detect.settings import MINUTES_PER_DAY, DetectSettings

SPEND, REQUESTS, TOKENS, MIX = 0, 1, 2, 3
ROW_NAMES = ("spend", "requests", "tokens", "expensive_call_share")
OTHER = "(other)"
_SILENT = [0.0, 0.0, 0.0, math.nan]
IDLE_SHARE_MAX = 0.05  # a busy service has calls in at least 95 % of its recent minutes
TAIL_QUANTILE = 0.99  # normal minutes' spend / baseline ratio a spike must also exceed
TAIL_MIN_POINTS = 240  # four hours of ratios before the learned tail applies
TAIL_EVERY_MIN = 10  # recompute the tail this often (a quantile over a day of minutes)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the detectors concluded about one service minute (backtests, CLI, debugging).

    ``spike_score`` is in ``[0, 1]`` (``>= 0.5`` means the minute is anomalous);
    ``spend_baseline_nusd`` is ``NaN`` when there is no baseline yet.
    """

    service: str
    minute: int
    spike_score: float
    spike_anomalous: bool
    drop_anomalous: bool
    cold: bool
    spend_baseline_nusd: float
    error_scores: dict[str, float] = field(default_factory=dict)


@dataclass
class MonitorStats:
    """Counters the worker may export: buckets ignored as late, services tracked/evicted."""

    late_buckets: int = 0
    evicted_services: int = 0


@dataclass
class _Open:
    """A firing (or pending) alert of one detector with its running figures."""

    stats: render.EpisodeStats
    alert: Alert | None = None
    levels: dict[str, float] = field(default_factory=dict)


class _RateSeries:
    """One provider's error-rate series of one service."""

    __slots__ = ("episode", "first", "frozen", "open", "ring")

    def __init__(self, settings: DetectSettings, first: int) -> None:
        self.ring = MinuteRing(1, settings.window_min + 1)
        self.first = first
        self.frozen = (math.nan, math.nan)
        self.episode = Episode(settings.confirm_min, settings.resolve_min)
        self.open: _Open | None = None


class _Service:
    __slots__ = (
        "adapting",
        "drop",
        "drop_open",
        "first",
        "frozen_level",
        "frozen_scale",
        "last_traffic",
        "name",
        "rates",
        "recent",
        "resid",
        "ring",
        "spike",
        "spike_open",
        "tail_at",
        "tail_ratio",
    )

    def __init__(
        self,
        name: str,
        first: int,
        settings: DetectSettings,
        keep: int,
        capacity: int,
        resid_capacity: int,
    ) -> None:
        self.name = name
        self.first = first
        self.last_traffic = first
        self.ring = MinuteRing(len(ROW_NAMES), capacity)
        # spend / baseline of each minute over the past day: the service's own tail shape
        self.resid = MinuteRing(1, resid_capacity)
        self.tail_ratio = math.nan
        self.tail_at = first
        self.frozen_level: FloatArray = np.full(len(ROW_NAMES), np.nan)
        self.frozen_scale: FloatArray = np.full(len(ROW_NAMES), np.nan)
        self.spike = Episode(settings.confirm_min, settings.resolve_min)
        self.drop = Episode(settings.drop_min, settings.resolve_min)
        self.spike_open: _Open | None = None
        self.drop_open: _Open | None = None
        self.adapting = False  # a long spike is being absorbed into the baseline
        self.rates: dict[str, _RateSeries] = {}
        self.recent: deque[MinuteBucket] = deque(maxlen=keep)


class SpikeMonitor:
    """Streaming detectors for every service seen; state is bounded per service.

    Memory per service: 4 series x ``seasonal_days`` days of minutes x 9 bytes (about 360 KiB
    for 7 days) plus one ``window_min`` ring per provider.
    """

    def __init__(
        self, settings: DetectSettings | None = None, *, period_min: int = MINUTES_PER_DAY
    ) -> None:
        """``period_min`` is the seasonal period in steps (a day of minutes in the stream; the
        offline backtest passes a day of rows); ``0`` turns the time-of-day baseline off."""
        self.settings = s = settings or DetectSettings()
        self.stats = MonitorStats()
        self._services: dict[str, _Service] = {}
        self._day = period_min
        peak_len = period_min or MINUTES_PER_DAY
        self._capacity = max(
            s.seasonal_days * period_min + s.seasonal_halfwidth_min + 1 if period_min else 0,
            s.window_min + 1,
            peak_len + 1,
        )
        self._win = np.arange(-s.window_min, 0, dtype=np.int64)
        days = np.arange(1, s.seasonal_days + 1, dtype=np.int64) * period_min
        spread = np.arange(-s.seasonal_halfwidth_min, s.seasonal_halfwidth_min + 1, dtype=np.int64)
        self._season = (-days[:, None] + spread[None, :]).ravel()
        # Half of the slots the minimum number of days would provide.
        self._season_min_points = max(1, s.seasonal_min_days * len(spread) // 2)
        self._peak = np.arange(-peak_len, 0, dtype=np.int64)
        # Silent gaps longer than this are bulk-filled: by then every episode is settled.
        self._gap_eval = max(s.confirm_min, s.drop_min, s.resolve_min) + 2
        self._keep = max(s.confirm_min, s.drop_min) + 1

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
            st = self._services[bucket.service] = _Service(
                bucket.service, m, self.settings, self._keep, self._capacity, len(self._peak) + 1
            )
        elif st.ring.last is not None and m <= st.ring.last:
            self.stats.late_buckets += 1
            return [], None
        alerts = self._fill_gap(st, m)
        more, verdict = self._step(st, m, bucket)
        return alerts + more, verdict

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
                alerts += self._expire(st, final)
                del self._services[name]
                self.stats.evicted_services += 1
        return alerts

    def seed(self, buckets: Iterable[MinuteBucket]) -> int:
        """Load history (e.g. minute rollups read from ClickHouse at start-up) without alerting.

        Buckets must be in minute order per service and newer than nothing already observed
        for it (older ones are skipped); returns how many were loaded. Seeded minutes count as
        normal history: none is excluded from the baselines. A bucket with calls but no
        ``requests_by_provider`` leaves the error-rate series of that minute unknown.
        """
        loaded = 0
        for bucket in buckets:
            m = bucket.index
            st = self._services.get(bucket.service)
            if st is None:
                st = self._services[bucket.service] = _Service(
                    bucket.service,
                    m,
                    self.settings,
                    self._keep,
                    self._capacity,
                    len(self._peak) + 1,
                )
            elif st.ring.last is not None and m <= st.ring.last:
                continue
            if st.ring.last is not None:
                gap_start = st.ring.last + 1
                st.ring.fill(gap_start, m, _SILENT, excluded=False)
                st.resid.fill(gap_start, m, [math.nan], excluded=False)
                for rs in st.rates.values():
                    rs.ring.fill(gap_start, m, [math.nan], excluded=False)
            st.ring.put(m, self._row_values(bucket))
            st.resid.put(m, [math.nan])
            # No provider split (history older than the error-rate window): the rates of that
            # minute are unknown, and no series is created for it.
            known = bool(bucket.requests_by_provider) or not bucket.requests
            counts = self._provider_counts(st, bucket, m) if known else {}
            for provider, rs in st.rates.items():
                n, e = counts.get(provider, (0, 0))
                rs.ring.put(m, [e / n if n and known else math.nan])
            if bucket.requests:
                st.last_traffic = m
            loaded += 1
        return loaded

    def seed_history(self, service: str, history: H.ServiceHistory, before: int) -> int:
        """Bulk form of :meth:`seed` for a service not seen yet: the minutes of ``history``
        before minute ``before``, written into the rings as whole arrays (the per-bucket path
        costs ~20 us a minute, ~0.2 s for seven days, on the event loop). Same state as
        ``seed(history.buckets(service, before))``; falls back to it for a known service."""
        n = int(np.searchsorted(history.minutes, before))
        if n == 0:
            return 0
        if service in self._services:
            return self.seed(history.buckets(service, before))
        minutes = history.minutes[:n]
        values = history.values[:, :n]
        first, last = int(minutes[0]), int(minutes[-1])
        st = self._services[service] = _Service(
            service, first, self.settings, self._keep, self._capacity, len(self._peak) + 1
        )
        # dense minutes first..last; the ring keeps only its capacity, so only those are built
        start = max(first, last - self._capacity + 1)
        dense = np.tile(np.array(_SILENT)[:, None], (1, last - start + 1))
        kept = minutes >= start
        cols = (minutes[kept] - start).astype(np.int64)
        v = values[:, kept].astype(np.float64)
        requests = v[H.REQUESTS]
        dense[SPEND, cols] = v[H.SPEND]
        dense[REQUESTS, cols] = requests
        dense[TOKENS, cols] = v[H.TOKENS]
        with np.errstate(invalid="ignore", divide="ignore"):
            dense[MIX, cols] = np.where(requests > 0, v[H.EXPENSIVE_REQUESTS] / requests, np.nan)
        st.ring.put_many(start, dense)  # a fresh ring: its first write may start anywhere
        st.resid.fill(max(start, last - st.resid.capacity + 1), last + 1, [math.nan],
                      excluded=False)  # fmt: skip
        traffic = minutes[values[H.REQUESTS] > 0]
        if len(traffic):
            st.last_traffic = int(traffic[-1])
        # error-rate series, bucket by bucket as seed() does, from the first provider split
        if history.providers:
            prev: int | None = None
            for i in range(int(np.searchsorted(minutes, min(history.providers))), n):
                m = int(minutes[i])
                split = history.providers.get(m)
                known = bool(split) or not values[H.REQUESTS, i]
                if prev is not None:
                    for rs in st.rates.values():
                        rs.ring.fill(prev + 1, m, [math.nan], excluded=False)
                counts = self._provider_counts(st, _split(service, m, split), m) if split else {}
                for provider, rs in st.rates.items():
                    c, e = counts.get(provider, (0, 0))
                    rs.ring.put(m, [e / c if c and known else math.nan])
                prev = m
        return n

    def restore(self, alert: Alert) -> bool:
        """Continue the episode of a detector alert that was still firing when the previous
        worker stopped (read back from ClickHouse at warm start; call after seeding its
        service), so it resolves under its own id instead of staying open for good while a
        second alert opens for the same trouble.

        The episode's seeded minutes leave the baselines as live ones would; its running
        figures (excess, peak) are rebuilt from the seeded minutes against the alert's
        baseline. Returns False for an alert that cannot be placed: unknown service, episode
        start before the seeded history, not a firing detector alert.
        """
        st = self._services.get(alert.labels.get("service", ""))
        start_at = alert.figures.get("episode_start")
        if alert.status != "firing" or st is None or st.ring.last is None or not start_at:
            return False
        start, last = minute_index(datetime.fromisoformat(start_at)), st.ring.last
        if start < st.first:
            return False  # (a silent service's drop may start after its last stored minute)
        detector = alert.labels.get("detector")
        baseline = _figure(alert.figures.get("baseline"))
        opened = _Open(render.EpisodeStats(start), alert)
        minutes = np.arange(start, last + 1, dtype=np.int64)
        if detector == "spike":
            episode, ring = st.spike, st.ring
            st.spike_open = opened
            level = baseline * 1e9  # USD -> nano-USD, as the ring holds spend
            vals, _ = st.ring.take(minutes)
            for v in vals[SPEND]:
                if v > level:
                    opened.stats.add(float(v), level)
            st.resid.exclude_range(start, last + 1)
        elif detector == "traffic_drop":
            episode, ring = st.drop, st.ring
            st.drop_open = opened
            vals, _ = st.ring.take(minutes)
            for v in vals[REQUESTS]:
                if v == 0:
                    opened.stats.add(0.0, baseline)
            st.resid.exclude_range(start, last + 1)
        elif detector == "error_rate":
            provider = alert.labels.get("provider", "")
            rs = st.rates.get(provider)
            if rs is None:
                if len(st.rates) >= self.settings.max_providers and provider != OTHER:
                    return False
                rs = st.rates[provider] = _RateSeries(self.settings, start)
            episode, ring = rs.episode, rs.ring
            rs.open = opened
            opened.levels["outage"] = float(alert.severity == "critical")
        else:
            return False
        episode.start, episode.firing = start, True
        episode.run, episode.calm = max(episode.confirm, last - start + 1), 0
        if ring.last is not None:
            ring.exclude_range(start, min(last, ring.last) + 1)
        return True

    # -- one minute -------------------------------------------------------------------------
    def _fill_gap(self, st: _Service, stop: int) -> list[Alert]:
        """Silent minutes from the service's last minute up to (not including) ``stop``."""
        alerts: list[Alert] = []
        start = (st.ring.last if st.ring.last is not None else stop) + 1
        evaluate_until = min(stop, start + self._gap_eval)
        for g in range(start, evaluate_until):
            alerts += self._step(st, g, None)[0]
        if stop > evaluate_until:
            st.ring.fill(evaluate_until, stop, _SILENT, excluded=st.drop.firing)
            st.resid.fill(evaluate_until, stop, [math.nan], excluded=False)
            for rs in st.rates.values():
                rs.ring.fill(evaluate_until, stop, [math.nan], excluded=False)
            st.recent.clear()
        return alerts

    @staticmethod
    def _row_values(bucket: MinuteBucket | None) -> list[float]:
        if bucket is None:
            return list(_SILENT)
        n = bucket.requests
        mix = bucket.expensive_requests / n if n else math.nan
        return [float(bucket.spend_nusd), float(n), float(bucket.tokens), mix]

    def _step(
        self, st: _Service, m: int, bucket: MinuteBucket | None
    ) -> tuple[list[Alert], Verdict]:
        s = self.settings
        x = self._row_values(bucket)
        st.ring.put(m, x)
        if bucket is not None:
            st.recent.append(bucket)
            if bucket.requests:
                st.last_traffic = m
        history = m - st.first
        cold = history < s.min_history_min

        # Recent baseline: median / MAD of the trailing window, skipping anomalous minutes;
        # frozen at its last good value while too few usable minutes remain (long episodes).
        vals, excl = st.ring.take(m + self._win)
        usable = ~excl & ~np.isnan(vals)
        med, mad, upper, count = robust_stats(vals, usable)
        ok = count >= s.min_points
        st.frozen_level = np.where(ok, med, st.frozen_level)
        st.frozen_scale = np.where(ok, np.fmax(MAD_TO_SIGMA * mad, upper), st.frozen_scale)
        level = st.frozen_level.copy()
        scale = st.frozen_scale.copy()

        # Time-of-day baseline: the same minute-of-day (+- halfwidth) on previous days, all
        # points (the median across days shrugs off one bad day), once enough days exist.
        seasonal_on = self._day > 0 and history >= s.seasonal_min_days * self._day
        season_level = np.full(len(ROW_NAMES), np.nan)
        if seasonal_on:
            svals, _ = st.ring.take(m + self._season)
            smed, smad, scount = median_mad(svals, ~np.isnan(svals))
            good = scount >= self._season_min_points
            good[MIX] = False  # the model mix follows the recent window only
            season_level = np.where(good, smed, np.nan)
            level[:MIX] = np.fmax(level[:MIX], season_level[:MIX])
            scale[:MIX] = np.fmax(scale[:MIX], np.where(good, MAD_TO_SIGMA * smad, np.nan)[:MIX])
        scale[:MIX] = np.fmax(scale[:MIX], s.scale_floor_ratio * level[:MIX])
        # The share of calls on expensive models is binomial: never less noisy than that.
        if x[REQUESTS] > 0 and not np.isnan(level[MIX]):
            p = min(max(float(level[MIX]), 0.02), 0.98)
            scale[MIX] = np.fmax(scale[MIX], math.sqrt(p * (1 - p) / x[REQUESTS]))

        spend_level = float(level[SPEND])
        prior = math.nan  # cold start: median of the minutes seen so far
        spend_scale = max(float(scale[SPEND]), s.scale_floor_ratio * spend_level)
        if not cold and not math.isnan(spend_level) and spend_level < s.min_delta_nusd_per_min:
            # A quiet service (mostly idle minutes): a ratio against ~0 means nothing, so
            # compare with its typical *active* minute -- in the window, or else over the past
            # day (bursty tools used by people, cron jobs).
            spend_level, spend_scale = self._active_level(st, m, vals[SPEND], usable[SPEND],
                                                          spend_level, spend_scale)  # fmt: skip

        # -- spend spike --------------------------------------------------------------------
        span = 1  # minutes the spike verdict vouches for (2: the two-minute call rule)
        if cold or math.isnan(spend_level):
            # No baseline yet: only an absolute amount that also jumped against the minutes
            # seen so far (a worker restart must not page for every big, steady service).
            margin = 0.0
            prior = float(med[SPEND])
            if s.cold_start_nusd_per_min and count[SPEND] >= 3:
                growth = (x[SPEND] / prior - 1.0) / (s.min_ratio - 1.0) if prior > 0 else math.inf
                margin = min(x[SPEND] / s.cold_start_nusd_per_min, growth)
            cause = "new_service"
        else:
            margin_spend = upward_margin(
                x[SPEND],
                spend_level,
                spend_scale,
                z=s.z_threshold,
                min_delta=s.min_delta_nusd_per_min,
                min_ratio=s.min_ratio,
            )
            # Requests, tokens or model mix may carry a spike the spend rule alone misses, but
            # only if the money clearly moved too: up by min_delta, half the z threshold and
            # half the minimum ratio.
            gate = upward_margin(
                x[SPEND],
                spend_level,
                spend_scale,
                z=s.z_threshold / 2,
                min_delta=s.min_delta_nusd_per_min,
                min_ratio=1 + (s.min_ratio - 1) / 2,
            )
            m_req = upward_margin(
                x[REQUESTS], level[REQUESTS], scale[REQUESTS], z=s.z_threshold,
                min_delta=s.min_delta_requests_per_min, min_ratio=s.min_ratio,
            )  # fmt: skip
            m_tok = upward_margin(
                x[TOKENS], level[TOKENS], scale[TOKENS], z=s.z_threshold,
                min_delta=s.min_delta_tokens_per_min, min_ratio=s.min_ratio,
            )  # fmt: skip
            m_mix = upward_margin(
                x[MIX], level[MIX], scale[MIX], z=s.z_threshold,
                min_delta=s.min_delta_expensive_share, min_ratio=None,
            )  # fmt: skip
            # Spend per minute is often heavy-tailed (a few expensive calls): the spike must
            # also beat this service's own 99th-percentile spend/baseline ratio of the past day.
            tail = self._tail_ratio(st, m)
            if tail > s.min_ratio and spend_level > 0:
                margin_spend = min(margin_spend, (x[SPEND] / spend_level - 1.0) / (tail - 1.0))
            margin = max(margin_spend, min(gate, max(m_req, m_tok, m_mix)))
            m_pair = self._pair_margin(st, m, x, level, scale, spend_level, spend_scale)
            if m_pair >= 1.0 and m_pair > margin:
                margin, span = m_pair, 2
            cause = self._cause(m_mix, x, level)
        spike_anomalous = margin >= 1.0

        # -- drop to zero -------------------------------------------------------------------
        # Busy by the recent window and, once known, usually busy at this time of day too.
        busy_level = s.busy_min_requests_per_min
        season_requests = float(season_level[REQUESTS])
        # "Busy" also means hardly ever idle: a bursty service (people using a tool) has idle
        # minutes in its window and its pauses are not outages.
        idle_minutes = int(np.count_nonzero(usable[REQUESTS] & (vals[REQUESTS] == 0)))
        busy = (
            not cold
            and st.frozen_level[REQUESTS] >= busy_level
            and idle_minutes <= IDLE_SHARE_MAX * count[REQUESTS]
            and (math.isnan(season_requests) or season_requests >= busy_level)
        )
        drop_anomalous = bool(busy and x[REQUESTS] == 0)

        resid = x[SPEND] / spend_level if not cold and spend_level > 0 else math.nan
        st.resid.put(m, [resid])

        levels = {
            "spend": _nz(prior if cold or math.isnan(spend_level) else spend_level),
            "requests": _nz(level[REQUESTS]),
            "tokens": _nz(level[TOKENS]),
            "expensive_call_share": _nz(level[MIX]),
        }
        alerts = self._spike_lifecycle(
            st, m, spike_anomalous, x[SPEND], levels, cause, margin, span
        )
        alerts += self._drop_lifecycle(st, m, drop_anomalous, float(st.frozen_level[REQUESTS]))
        more, error_scores = self._error_rates(st, m, bucket, cold)
        alerts += more
        verdict = Verdict(
            service=st.name,
            minute=m,
            spike_score=score_of(margin),
            spike_anomalous=spike_anomalous,
            drop_anomalous=drop_anomalous,
            cold=cold,
            spend_baseline_nusd=spend_level,
            error_scores=error_scores,
        )
        return alerts, verdict

    def _pair_margin(
        self,
        st: _Service,
        m: int,
        x: list[float],
        level: FloatArray,
        scale: FloatArray,
        spend_level: float,
        spend_scale: float,
    ) -> float:
        """Margin of the two-minute call-surge rule on minutes ``m - 1`` and ``m`` together.

        A runaway loop multiplies the call count, which is Poisson-like and far less
        heavy-tailed than spend. Over two minutes the calls must clear ``pair_z_threshold``
        robust z (noise scale ``sqrt(2)`` x the minute's, never below the Poisson
        ``sqrt(count)``) and ``min_ratio``; each minute must carry at least half of the
        ratio's rise (one busy minute is not a surge); and the two minutes' spend must rise by
        ``2 x min_delta`` with the spend gate of the per-minute rule (z/2, 1.5x), so cents
        never page. ``0`` when the rule is off or the service has no call baseline.
        """
        s = self.settings
        calls_level = float(level[REQUESTS])
        if not s.pair_z_threshold or not calls_level > 0 or not spend_level > 0:
            return 0.0
        prev, prev_excl = st.ring.take(np.array([m - 1], dtype=np.int64))
        if prev_excl[SPEND, 0] or np.isnan(prev[REQUESTS, 0]):
            return 0.0  # the previous minute already belongs to a confirmed episode
        calls = x[REQUESTS] + float(prev[REQUESTS, 0])
        spend = x[SPEND] + float(prev[SPEND, 0])
        half = (s.min_ratio - 1.0) / 2.0
        each = (min(x[REQUESTS], float(prev[REQUESTS, 0])) / calls_level - 1.0) / half
        # One rate over both minutes: under Poisson calls with equal rates the difference has
        # variance ``c0 + c1``; a one-minute burst next to a merely busy minute fails this.
        gap = abs(x[REQUESTS] - float(prev[REQUESTS, 0]))
        steady = s.z_threshold * math.sqrt(calls) / gap if gap > 0 else math.inf
        calls_scale = max(math.sqrt(2.0) * float(scale[REQUESTS]), math.sqrt(2.0 * calls_level))
        m_calls = upward_margin(
            calls, 2.0 * calls_level, calls_scale, z=s.pair_z_threshold, min_delta=1.0,
            min_ratio=s.min_ratio,
        )  # fmt: skip
        # The spend only has to matter (2 x min_delta) and follow the calls up (1.5x); its
        # noise scale is what a heavy tail inflates, so the statistical evidence is the calls'.
        m_spend = upward_margin(
            spend, 2.0 * spend_level, 0.0, z=1.0, min_delta=2.0 * s.min_delta_nusd_per_min,
            min_ratio=1.0 + half,
        )  # fmt: skip
        return min(m_calls, each, steady, m_spend)

    def _tail_ratio(self, st: _Service, m: int) -> float:
        """The 99th percentile of normal minutes' spend / baseline over the past day (cached
        for ``TAIL_EVERY_MIN`` minutes); ``NaN`` until ``TAIL_MIN_POINTS`` ratios exist."""
        if m - st.tail_at >= TAIL_EVERY_MIN:
            st.tail_at = m
            vals, excluded = st.resid.take(m + self._peak)
            row = vals[0][~excluded[0] & ~np.isnan(vals[0])]
            if row.size >= TAIL_MIN_POINTS:
                st.tail_ratio = float(np.quantile(row, TAIL_QUANTILE))
        return st.tail_ratio

    def _active_level(
        self,
        st: _Service,
        m: int,
        window: FloatArray,
        usable: BoolArray,
        level: float,
        scale: float,
    ) -> tuple[float, float]:
        """Level and noise scale of a quiet service's minutes with spend (see ``_step``)."""
        active = usable & (window > 0)
        if active.sum() < max(3, self.settings.min_points // 2):
            day, excluded = st.ring.take(m + self._peak)
            row = day[SPEND]
            active = ~excluded[SPEND] & ~np.isnan(row) & (row > 0)
            window = row
            if active.sum() < 3:
                return level, scale
        med, mad, upper, _ = robust_stats(window[None, :], active[None, :])
        active_scale = max(float(MAD_TO_SIGMA * mad[0]), float(upper[0]))
        return max(level, float(med[0])), max(scale, active_scale)

    def _cause(self, m_mix: float, x: list[float], level: FloatArray) -> str:
        s = self.settings
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

    def _spike_lifecycle(
        self,
        st: _Service,
        m: int,
        anomalous: bool,
        spend: float,
        levels: dict[str, float],
        cause: str,
        margin: float,
        span: int = 1,
    ) -> list[Alert]:
        s = self.settings
        if anomalous:
            start = st.spike.start if st.spike.start is not None else m - span + 1
            if st.spike_open is None or st.spike_open.stats.start != start:
                st.spike_open = _Open(render.EpisodeStats(start))
                if start < m:  # the two-minute rule vouches for the previous minute too
                    prev, _ = st.ring.take(np.array([m - 1], dtype=np.int64))
                    st.spike_open.stats.add(float(prev[SPEND, 0]), levels["spend"])
            st.spike_open.stats.add(spend, levels["spend"])
        event = st.spike.step(m, anomalous, span)
        # Only minutes of a confirmed episode leave the baselines: excluding every single
        # exceedance would truncate the noise distribution and breed more exceedances.
        if not st.adapting:
            if event is not None and event.kind == "fire":
                st.ring.exclude_range(event.start, m + 1)
                st.resid.exclude_range(event.start, m + 1)
            elif anomalous and st.spike.firing:
                st.ring.exclude(m)
                st.resid.exclude(m)
        alerts: list[Alert] = []
        if event is not None and event.kind == "fire" and st.spike_open is not None:
            window = [b for b in st.recent if b.index >= event.start]
            ratio = st.spike_open.stats.peak_ratio
            severity: Severity = "critical" if ratio >= s.critical_ratio else "warning"
            st.spike_open.alert = render.spike_alert(
                service=st.name,
                start=event.start,
                minute=m,
                window=window,
                levels=levels,
                cause=cause,
                severity=severity,
                max_contributors=s.max_contributors,
            )
            st.spike_open.levels = levels
            alerts.append(st.spike_open.alert)
        elif event is not None and event.kind == "resolve":
            reason: render.Resolution = (
                "baseline_adapted" if st.adapting else "returned_to_baseline"
            )
            alerts += self._resolve(st.spike_open, event, reason, spend, levels["spend"])
            st.spike_open = None
            st.adapting = False
        if (
            s.relearn_after_min
            and st.spike.firing
            and not st.adapting
            and st.spike.start is not None
            and m - st.spike.start + 1 >= s.relearn_after_min
        ):
            # Still high after relearn_after_min: treat it as a level shift. Its minutes enter
            # the baseline, which catches up, and the alert resolves as "baseline_adapted".
            st.adapting = True
            st.ring.exclude_range(st.spike.start, m + 1, flag=False)
        return alerts

    def _drop_lifecycle(
        self, st: _Service, m: int, anomalous: bool, baseline: float
    ) -> list[Alert]:
        if anomalous:
            start = st.drop.start if st.drop.start is not None else m
            if st.drop_open is None or st.drop_open.stats.start != start:
                st.drop_open = _Open(render.EpisodeStats(start))
            st.drop_open.stats.add(0.0, baseline)
        event = st.drop.step(m, anomalous)
        if event is not None and event.kind == "fire":
            st.ring.exclude_range(event.start, m + 1)
            st.resid.exclude_range(event.start, m + 1)
        elif anomalous and st.drop.firing:
            st.ring.exclude(m)
            st.resid.exclude(m)
        if event is None:
            return []
        if event.kind == "fire":
            assert st.drop_open is not None
            st.drop_open.alert = render.drop_alert(
                service=st.name, start=event.start, minute=m, baseline=baseline
            )
            return [st.drop_open.alert]
        alerts = self._resolve(st.drop_open, event, "returned_to_baseline", None, baseline)
        st.drop_open = None
        return alerts

    def _resolve(
        self,
        opened: _Open | None,
        event: EpisodeEvent,
        reason: render.Resolution,
        observed: float | None,
        baseline: float,
    ) -> list[Alert]:
        if opened is None or opened.alert is None:
            return []
        figures: dict[str, str] = {}
        if opened.alert.figures.get("unit") == "usd_per_min" and observed is not None:
            figures = {"observed": render.usd(observed), "baseline": render.usd(baseline)}
        return [
            render.resolved(
                opened.alert,
                minute=event.minute,
                stats=opened.stats,
                reason=reason,
                figures=figures,
            )
        ]

    # -- error rates per provider -------------------------------------------------------------
    def _provider_counts(
        self, st: _Service, bucket: MinuteBucket, m: int
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
                    st.rates[key] = _RateSeries(self.settings, m)
            n, e = out.get(key, (0, 0))
            out[key] = (n + requests.get(provider, 0), e + errors.get(provider, 0))
        return out

    def _error_rates(
        self, st: _Service, m: int, bucket: MinuteBucket | None, cold_service: bool
    ) -> tuple[list[Alert], dict[str, float]]:
        s = self.settings
        counts = self._provider_counts(st, bucket, m) if bucket is not None else {}
        alerts: list[Alert] = []
        scores: dict[str, float] = {}
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
                vals, excl = rs.ring.take(m + self._win)
                med, mad, count = median_mad(vals, ~excl & ~np.isnan(vals))
                if count[0] >= s.min_points:
                    rs.frozen = (float(med[0]), MAD_TO_SIGMA * float(mad[0]))
                level, scale = rs.frozen
                outage = rate >= s.outage_error_rate
                if cold_service or m - rs.first < s.min_history_min or math.isnan(level):
                    margin = rate / s.outage_error_rate
                else:
                    binomial = math.sqrt(max(level * (1 - level), 0.0) / n)
                    threshold = max(s.min_delta_error_rate, s.z_threshold * max(scale, binomial))
                    margin = (rate - level) / threshold
            if n:
                anomalous = margin >= 1.0
                scores[provider] = score_of(margin)
            if anomalous:
                start = rs.episode.start if rs.episode.start is not None else m
                if rs.open is None or rs.open.stats.start != start:
                    rs.open = _Open(render.EpisodeStats(start))
                rs.open.stats.add(rate, 0.0 if math.isnan(level) else level)
                rs.open.levels["outage"] = max(rs.open.levels.get("outage", 0.0), float(outage))
            event = rs.episode.step(m, anomalous)
            if event is not None and event.kind == "fire":
                rs.ring.exclude_range(event.start, m + 1)
            elif anomalous and rs.episode.firing:
                rs.ring.exclude(m)
            if event is None:
                continue
            if event.kind == "fire" and rs.open is not None:
                window = [b for b in st.recent if b.index >= event.start]
                pc = [self._counts_for(b, provider) for b in window]
                rs.open.alert = render.error_rate_alert(
                    service=st.name,
                    provider=provider,
                    start=event.start,
                    minute=m,
                    window=window,
                    errors=sum(c[1] for c in pc),
                    requests=sum(c[0] for c in pc),
                    baseline=level,
                    outage=bool(rs.open.levels.get("outage")),
                    max_contributors=s.max_contributors,
                )
                alerts.append(rs.open.alert)
            elif event.kind == "resolve":
                figures = {"observed": render.share(e, n) or "0"} if n else {}
                if rs.open is not None and rs.open.alert is not None:
                    alerts.append(
                        render.resolved(
                            rs.open.alert,
                            minute=m,
                            stats=rs.open.stats,
                            reason="returned_to_baseline",
                            figures=figures,
                        )
                    )
                rs.open = None
        return alerts, scores

    def _counts_for(self, bucket: MinuteBucket, provider: str) -> tuple[int, int]:
        if not bucket.requests_by_provider:
            return bucket.requests, bucket.errors
        if provider != OTHER:
            return (
                bucket.requests_by_provider.get(provider, 0),
                bucket.errors_by_provider.get(provider, 0),
            )
        known = (
            set(self._services[bucket.service].rates) if bucket.service in self._services else set()
        )
        n = sum(v for k, v in bucket.requests_by_provider.items() if k not in known)
        e = sum(v for k, v in bucket.errors_by_provider.items() if k not in known)
        return n, e

    def _expire(self, st: _Service, final: int) -> list[Alert]:
        alerts: list[Alert] = []
        for opened, episode in (
            (st.spike_open, st.spike),
            (st.drop_open, st.drop),
            *((rs.open, rs.episode) for rs in st.rates.values()),
        ):
            if episode.firing and opened is not None and opened.alert is not None:
                alerts.append(
                    render.resolved(
                        opened.alert, minute=final, stats=opened.stats, reason="expired", figures={}
                    )
                )
        return alerts


def _figure(text: str | None) -> float:
    """A number from an alert figure ("0.120000000", "10.0", "n/a"); NaN when not one."""
    try:
        return float(text) if text is not None else math.nan
    except ValueError:
        return math.nan


def _nz(value: float) -> float:
    return 0.0 if math.isnan(value) else float(value)


def _split(service: str, m: int, split: tuple[dict[str, int], dict[str, int]]) -> MinuteBucket:
    """A bucket carrying only minute ``m``'s calls and errors per provider."""
    return MinuteBucket(
        service=service,
        minute_start=minute_start(m),
        requests=sum(split[0].values()),
        errors=sum(split[1].values()),
        requests_by_provider=split[0],
        errors_by_provider=split[1],
    )
