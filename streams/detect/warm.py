"""Warm start: a (re)starting worker fills the monitor from stored history, then continues the
detector episodes still open, so baselines survive a restart and an alert open at the crash
resolves under its own id.

* :func:`seed` -- buckets in minute order (tests, backfills), loaded without alerting;
* :func:`seed_history` -- the bulk form for a service not seen yet: the int64 arrays read from
  ClickHouse (:mod:`streams.detect.history`) written as whole runs (~2 ms for seven days);
* :func:`restore` -- a firing detector alert read back from the ``alerts`` table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from schemas.alerts import Alert
from streams.detect import history as H
from streams.detect import render
from streams.detect.baseline import MIX, REQUESTS, SPEND, TOKENS
from streams.detect.bucket import MinuteBucket, minute_index, minute_start
from streams.detect.state import OTHER, Open, RateSeries, ServiceState

if TYPE_CHECKING:
    from streams.detect.monitor import SpikeMonitor

_SILENT = [0.0, 0.0, 0.0, math.nan]
_NO_RESID = [math.nan, math.nan]  # spend / baseline, z of spend


def seed(monitor: SpikeMonitor, buckets: Iterable[MinuteBucket]) -> int:
    """Load history (e.g. minute rollups read from ClickHouse at start-up) without alerting.

    Buckets must be in minute order per service and newer than nothing already observed for
    it (older ones are skipped); returns how many were loaded. Seeded minutes count as normal
    history: none is excluded from the baselines. A bucket with calls but no
    ``requests_by_provider`` leaves the error-rate series of that minute unknown.
    """
    rows = monitor.layout.rows
    loaded = 0
    for bucket in buckets:
        m = bucket.index
        st = monitor.service(bucket.service)
        if st is None:
            st = monitor._new_service(bucket.service, m)
        elif st.ring.last is not None and m <= st.ring.last:
            continue
        if st.ring.last is not None:
            gap_start = st.ring.last + 1
            st.ring.fill(gap_start, m, _SILENT[:rows], excluded=False)
            st.resid.fill(gap_start, m, _NO_RESID, excluded=False)
            for rs in st.rates.values():
                rs.ring.fill(gap_start, m, [math.nan], excluded=False)
        st.ring.put(m, monitor.row_values(bucket))
        st.resid.put(m, _NO_RESID)
        # No provider split (history older than the error-rate window): the rates of that
        # minute are unknown, and no series is created for it.
        known = bool(bucket.requests_by_provider) or not bucket.requests
        counts = monitor.provider_counts(st, bucket, m) if known else {}
        for provider, rs in st.rates.items():
            n, e = counts.get(provider, (0, 0))
            rs.ring.put(m, [e / n if n and known else math.nan])
        if bucket.requests:
            st.last_traffic = m
        loaded += 1
    return loaded


def seed_history(
    monitor: SpikeMonitor, service: str, history: H.ServiceHistory, before: int
) -> int:
    """Bulk form of :func:`seed` for a service not seen yet: the minutes of ``history``
    before minute ``before``, written into the ring as whole runs (the per-bucket path costs
    ~20 us a minute, ~0.2 s for seven days, on the event loop). Same state as
    ``seed(history.buckets(service, before))``; falls back to it for a known service."""
    n = int(np.searchsorted(history.minutes, before))
    if n == 0:
        return 0
    if monitor.service(service) is not None:
        return seed(monitor, history.buckets(service, before))
    rows = monitor.layout.rows
    minutes = history.minutes[:n]
    values = history.values[:, :n]
    first, last = int(minutes[0]), int(minutes[-1])
    st = monitor._new_service(service, first)
    # dense minutes first..last; the ring keeps only its capacity, so only those are built
    start = max(first, last - st.ring.capacity + 1)
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
    st.ring.put_many(start, [dense[r].tolist() for r in range(rows)])
    st.resid.fill(max(start, last - st.resid.capacity + 1), last + 1, _NO_RESID,
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
            counts = monitor.provider_counts(st, _split(service, m, split), m) if split else {}
            for provider, rs in st.rates.items():
                c, e = counts.get(provider, (0, 0))
                rs.ring.put(m, [e / c if c and known else math.nan])
            prev = m
    return n


def restore(monitor: SpikeMonitor, alert: Alert) -> bool:
    """Continue the episode of a detector alert that was still firing when the previous
    worker stopped (read back from ClickHouse at warm start; call after seeding its service),
    so it resolves under its own id instead of staying open for good while a second alert
    opens for the same trouble.

    The episode's seeded minutes leave the baselines as live ones would; its running figures
    (excess, peak) are rebuilt from the seeded minutes against the alert's baseline. Returns
    False for an alert that cannot be placed: unknown service, episode start before the
    seeded history, not a firing detector alert.
    """
    st: ServiceState | None = monitor.service(alert.labels.get("service", ""))
    start_at = alert.figures.get("episode_start")
    if alert.status != "firing" or st is None or st.ring.last is None or not start_at:
        return False
    start, last = minute_index(datetime.fromisoformat(start_at)), st.ring.last
    if start < st.first:
        return False  # (a silent service's drop may start after its last stored minute)
    detector = alert.labels.get("detector")
    baseline = _figure(alert.figures.get("baseline"))
    opened = Open(render.EpisodeStats(start), alert)
    if detector == "spike":
        episode = st.spike
        st.spike_open = opened
        level = baseline * 1e9  # USD -> nano-USD, as the ring holds spend
        for k in range(start, last + 1):
            v = st.ring.value(SPEND, k)
            if v > level:
                opened.stats.add(v, level)
        st.resid.exclude_range(start, last + 1)
    elif detector in ("traffic_drop", "spend_drop"):
        if detector == "traffic_drop":
            episode = st.drop
            st.drop_open = opened
            row, hit = REQUESTS, 0.0
            for k in range(start, last + 1):
                if st.ring.value(row, k) == hit:
                    opened.stats.add(0.0, baseline)
        else:
            episode = st.fall
            st.fall_open = opened
            opened.levels["baseline"] = baseline * 1e9
        st.resid.exclude_range(start, last + 1)
    elif detector == "error_rate":
        provider = alert.labels.get("provider", "")
        rs = st.rates.get(provider)
        if rs is None:
            if len(st.rates) >= monitor.settings.max_providers and provider != OTHER:
                return False
            rs = st.rates[provider] = RateSeries(monitor.settings, start)
        episode = rs.episode
        rs.open = opened
        opened.levels["outage"] = float(alert.severity == "critical")
        episode.start, episode.firing = start, True
        episode.run, episode.calm = max(episode.confirm, last - start + 1), 0
        if rs.ring.last is not None:
            rs.ring.exclude_range(start, min(last, rs.ring.last) + 1)
        return True
    else:
        return False
    episode.start, episode.firing = start, True
    episode.run, episode.calm = max(episode.confirm, last - start + 1), 0
    st.ring.exclude_range(start, last + 1)
    return True


def _figure(text: str | None) -> float:
    """A number from an alert figure ("0.120000000", "10.0", "n/a"); NaN when not one."""
    try:
        return float(text) if text is not None else math.nan
    except ValueError:
        return math.nan


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
