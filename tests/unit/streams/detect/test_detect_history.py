"""Warm start: rollup rows -> history buckets, and a DetectStream seeded from them."""

from __future__ import annotations

import statistics
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import numpy as np

from streams.detect import DetectSettings, DetectStream, SpikeMonitor, minute_index
from streams.detect.history import ServiceHistory, expensive_sql, history_window
from streams.detect.stream import HISTORY_TTL
from tests.unit.streams.detect.helpers_detect import T0, at, bucket
from tests.unit.streams.detect.test_detect_minutes import event

M0 = minute_index(T0)


def test_service_history_round_trips_buckets_and_stops_before_a_minute() -> None:
    buckets = [
        bucket(0, "0.10", provider="openai", errors=2, tokens=5, expensive_requests=3, by_model={}),
        bucket(2, "0.20", requests=4, by_model={}),  # no provider split
        bucket(3, "0.30", provider="anthropic", requests=6, by_model={}),
    ]
    h = ServiceHistory.from_buckets(buckets)
    assert len(h) == 3
    assert h.minutes.tolist() == [M0, M0 + 2, M0 + 3]
    assert h.values[:, 0].tolist() == [100_000_000, 10, 2, 5, 0, 3]
    assert list(h.buckets("svc", before=M0 + 99)) == buckets
    assert [b.index for b in h.buckets("svc", before=M0 + 3)] == [M0, M0 + 2]
    assert list(h.buckets("svc", before=M0)) == []


def test_expensive_rule_in_sql() -> None:
    default = DetectSettings()
    assert expensive_sql(default, []) == (
        "(tok > 0 AND toInt128(cost) * 1000000 >= toInt128(10000000000) * tok)"
    )
    patterns_only = DetectSettings.from_config({"expensive_usd_per_mtok": 0})
    assert expensive_sql(patterns_only, ["o1", "it's"]) == "model IN ('it\\'s', 'o1')"
    assert expensive_sql(patterns_only, []) == "0"


def test_seeding_without_a_provider_split_creates_no_error_rate_series() -> None:
    monitor = SpikeMonitor()
    old = bucket(0, "0.10", requests=10)  # older than the rate window: no split
    recent = bucket(1, "0.10", requests=10, provider="openai")
    assert monitor.seed([old, recent]) == 2
    assert list(monitor._services["svc"].rates) == ["openai"]


def test_history_window_ends_before_the_current_minute() -> None:
    settings = DetectSettings()
    first, end = history_window(settings, at(100) + timedelta(seconds=42))
    assert (first, end) == (M0 + 100 - settings.history_min, M0 + 100)
    assert settings.history_min == 7 * 1440 + 5 + 1  # seasonal days + half-width + 1


# -- a stream seeded from history -------------------------------------------------------------
# History: minutes 0-59 of one service at 10 calls and $0.10 / $0.12 a minute. Live: minutes
# 60-62 at 40 calls of a cent ($0.40-$0.44 a minute: 4x, but far below the $2/min that alerts
# without history), then one call in minute 63 at :20 that closes minute 62.
HISTORY_USD = ("0.10", "0.12")


def history(service: str = "svc", minutes: range = range(60)) -> ServiceHistory:
    return ServiceHistory.from_buckets(
        bucket(
            m,
            HISTORY_USD[m % 2],
            service=service,
            provider="openai",
            tokens=10_000,
            expensive_requests=10,  # a cent per 1,000 tokens is $10/Mtok: "expensive"
        )
        for m in minutes
    )


def live_events() -> list[dict]:
    events = []
    for minute in (60, 61, 62):
        for k in range(40):
            cost = 10_000_000 if k % 2 else 12_000_000  # $0.010 / $0.012
            events.append(event(minute * 60 + k, cost, tags={"agent": "looper"}))
    events.append(event(63 * 60 + 20, 10_000_000))
    return events


def run(stream: DetectStream) -> list:
    alerts = []
    for ev in live_events():
        alerts += stream.add(ev)
    return alerts


def test_a_warm_stream_catches_a_runaway_that_a_cold_one_misses() -> None:
    assert run(DetectStream()) == []  # cold: 30 minutes of history needed, $2/min without

    warm = DetectStream()
    warm.load_history({"svc": history()}, at(60))
    alerts = run(warm)
    assert [(a.kind, a.status) for a in alerts] == [("spike", "firing")]
    [fired] = alerts
    assert fired.labels["cause"] == "runaway_loop"
    assert fired.figures["episode_start"] == at(60).isoformat()
    assert fired.fired_at == at(62)  # minute 61 closed: two anomalous minutes
    # observed: mean of minutes 60-61 ($0.44 each); baseline: median of minutes 1-60 with
    # minute 60 being live ($0.44): 30 x $0.12, 29 x $0.10, 1 x $0.44
    spend = [Decimal(HISTORY_USD[m % 2]) for m in range(1, 60)] + [Decimal("0.44")]
    assert fired.figures["observed"] == "0.440000000"
    assert fired.figures["baseline"] == str(statistics.median(spend).quantize(Decimal("1e-9")))
    assert (warm.seeded_services, warm.seeded_minutes, warm.pending_history) == (1, 60, 0)


def test_history_from_the_first_live_minute_on_is_left_to_the_stream() -> None:
    """A worker that crashed mid-minute stored part of that minute; the replay brings all of
    it, so history is seeded only before the service's first live minute."""
    stream = DetectStream()
    stream.load_history({"svc": history(minutes=range(62))}, at(60))
    run(stream)
    assert stream.seeded_minutes == 60
    assert stream.monitor.stats.late_buckets == 0


def test_only_services_that_show_up_are_seeded_and_the_rest_expires() -> None:
    """History of a service this worker never sees (another worker's partition) must not be
    taken for a busy service that went silent; it is dropped after ``HISTORY_TTL``."""
    stream = DetectStream()
    stream.load_history({"svc": history(), "other": history("other")}, at(60))
    run(stream)
    assert stream.pending_history == 1
    quiet = []
    for s in range(0, 600, 5):
        quiet += stream.tick(at(64) + timedelta(seconds=s))
    # svc's spike resolves, then svc went silent; nothing at all about "other"
    assert [(a.labels["service"], a.labels["detector"], a.status) for a in quiet] == [
        ("svc", "spike", "resolved"),
        ("svc", "traffic_drop", "firing"),
    ]
    assert stream.pending_history == 1
    stream.tick(at(60) + HISTORY_TTL)
    assert stream.pending_history == 0


def test_bulk_seeding_leaves_the_same_state_as_seeding_bucket_by_bucket() -> None:
    """``seed_history`` writes whole arrays; ``seed`` goes minute by minute. Gaps, minutes
    without calls, provider splits on the last hour only: the same rings, then the same
    alerts for the same live minutes."""
    buckets = []
    for m in range(0, 3000):
        if m % 97 in (5, 6, 7):  # silent gaps
            continue
        recent = m >= 3000 - 61
        n = 10 + m % 3
        buckets.append(
            bucket(
                m,
                ("0.10", "0.12", "0.11")[m % 3],
                requests=n,
                errors=m % 2 if recent else 0,
                tokens=1000 * n,
                provider="openai" if recent else "",
                expensive_requests=m % 4,
                by_model={},
            )
        )
    history = ServiceHistory.from_buckets(buckets)
    one, bulk = SpikeMonitor(), SpikeMonitor()
    loaded = len([b for b in buckets if b.index < M0 + 2990])
    assert one.seed(history.buckets("svc", before=M0 + 2990)) == loaded
    assert bulk.seed_history("svc", history, before=M0 + 2990) == loaded
    a, b = one._services["svc"], bulk._services["svc"]
    assert (a.first, a.last_traffic, a.ring.last) == (b.first, b.last_traffic, b.ring.last)
    np.testing.assert_array_equal(a.ring.values, b.ring.values)
    np.testing.assert_array_equal(a.ring.excluded, b.ring.excluded)
    np.testing.assert_array_equal(a.resid.values, b.resid.values)
    assert list(a.rates) == list(b.rates) == ["openai"]
    np.testing.assert_array_equal(a.rates["openai"].ring.values, b.rates["openai"].ring.values)
    assert a.rates["openai"].ring.last == b.rates["openai"].ring.last
    assert a.rates["openai"].first == b.rates["openai"].first
    live = [
        bucket(m, "0.55" if m < 2996 else "0.11", requests=50, errors=1, provider="openai")
        for m in range(2990, 3005)
    ]
    alerts_one = [x for lb in live for x in one.observe(lb)]
    alerts_bulk = [x for lb in live for x in bulk.observe(lb)]
    assert alerts_one == alerts_bulk
    assert [(x.kind, x.status) for x in alerts_one] == [("spike", "firing"), ("spike", "resolved")]


# -- episodes open at a restart ----------------------------------------------------------------
def scenario(minutes: range) -> list:
    """Normal minutes at $0.10 / $0.12 and 10 calls, a runaway in 60-64 at $0.44 and 40."""
    return [
        bucket(m, "0.44", requests=40, provider="openai", tokens=40_000, by_model={})
        if 60 <= m <= 64
        else bucket(m, HISTORY_USD[m % 2], provider="openai", tokens=10_000, by_model={})
        for m in minutes
    ]


def test_a_spike_open_at_a_restart_resolves_under_its_own_id() -> None:
    whole = SpikeMonitor()
    alerts = [a for b in scenario(range(80)) for a in whole.observe(b)]
    fired, resolved = alerts
    assert (fired.status, resolved.status, fired.alert_id) == (
        "firing",
        "resolved",
        resolved.alert_id,
    )
    assert fired.fired_at == at(62)  # the previous worker stopped after minute 62 closed

    # the restarted worker: minutes 0-62 from ClickHouse, the firing alert still open
    history = ServiceHistory.from_buckets(scenario(range(63)))
    restarted = SpikeMonitor()
    restarted.seed_history("svc", history, before=M0 + 63)
    assert restarted.restore(fired)
    [after] = [a for b in scenario(range(63, 80)) for a in restarted.observe(b)]
    # the same notice; only the excess differs: the restarted worker rebuilds it from the
    # seeded minutes against the alert's baseline ($0.12), the live one summed each minute
    # against that minute's baseline ($0.11 for minute 60)
    assert replace(after, figures={}) == replace(resolved, figures={})
    assert {k: v for k, v in after.figures.items() if k != "excess_usd"} == {
        k: v for k, v in resolved.figures.items() if k != "excess_usd"
    }
    assert (resolved.figures["excess_usd"], after.figures["excess_usd"]) == (
        "1.630000000",
        "1.610000000",
    )

    # without restore the same worker opens a second alert for the same runaway
    forgetful = SpikeMonitor()
    forgetful.seed_history("svc", history, before=M0 + 63)
    again = [a for b in scenario(range(63, 80)) for a in forgetful.observe(b)]
    assert [(a.status, a.alert_id == fired.alert_id) for a in again] == [
        ("firing", False),
        ("resolved", False),
    ]


def test_a_traffic_drop_open_at_a_restart_resolves_when_calls_return() -> None:
    calls = [event(m * 60 + k, 10_000_000) for m in range(60) for k in range(10)]
    whole = DetectStream()
    for ev in calls:
        whole.add(ev)
    quiet = []
    for s in range(0, 8 * 60, 5):  # minutes 60-67 silent
        quiet += whole.tick(at(60) + timedelta(seconds=s))
    [drop] = quiet
    assert drop.labels["detector"] == "traffic_drop" and drop.status == "firing"

    buckets = [bucket(m, "0.10", provider="openai", tokens=10_000, by_model={}) for m in range(60)]
    restarted = DetectStream()
    # drop alerts are continued at load: the service is silent, it may never "show up"
    restarted.load_history({"svc": ServiceHistory.from_buckets(buckets)}, at(68), [drop])
    assert (restarted.restored_alerts, restarted.pending_history) == (1, 0)
    back = [event(68 * 60 + 30 + k, 10_000_000) for k in range(10)]
    back += [event(m * 60 + k, 10_000_000) for m in range(69, 74) for k in range(10)]
    out = [a for ev in back for a in restarted.add(ev)]
    assert [(a.alert_id, a.status) for a in out] == [(drop.alert_id, "resolved")]


def test_restore_refuses_what_it_cannot_place() -> None:
    monitor = SpikeMonitor()
    monitor.seed_history("svc", ServiceHistory.from_buckets(scenario(range(10, 63))), M0 + 63)
    live = SpikeMonitor()
    fired = next(a for b in scenario(range(80)) for a in live.observe(b))
    assert not monitor.restore(replace(fired, status="resolved"))
    assert not monitor.restore(replace(fired, labels={**fired.labels, "service": "other"}))
    assert not monitor.restore(replace(fired, labels={**fired.labels, "detector": "budget"}))
    early = replace(fired, figures={**fired.figures, "episode_start": at(5).isoformat()})
    assert not monitor.restore(early)  # before the seeded history
    assert monitor.restore(fired)
