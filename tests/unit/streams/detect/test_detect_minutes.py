"""MinuteAggregator and DetectStream: priced events -> closed minute buckets -> alerts."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from streams.detect import DetectSettings, DetectStream, MinuteAggregator, MinuteBucket
from tests.unit.streams.detect.helpers_detect import at


def event(
    ts_s: float,
    cost_nusd: int,
    *,
    service: str = "svc",
    status: str = "ok",
    model: str = "gpt-4o",
    provider: str = "openai",
    tokens: tuple[int, int] = (1000, 0),
    tags: dict[str, str] | None = None,
    error_type: str | None = None,
) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "ts": (at(0) + timedelta(seconds=ts_s)).isoformat(),
        "service": service,
        "operation": "chat",
        "status": status,
        "provider": provider,
        "model": model,
        "input_tokens": tokens[0],
        "output_tokens": tokens[1],
        "cost_nusd": cost_nusd,
        "cost_source": "catalog",
    }
    if tags:
        ev["tags"] = tags
    if error_type:
        ev["error_type"] = error_type
    return ev


def test_minutes_close_by_event_time_after_the_allowed_lateness() -> None:
    agg = MinuteAggregator(DetectSettings())  # allowed lateness 15 s
    assert agg.add(event(10, 1_000, tags={"agent": "planner", "call": "x1"})) == []
    assert agg.add(event(50, 30_000_000, model="claude-opus-4", provider="anthropic")) == []
    assert agg.add(event(65, 7, service="other")) == []
    assert agg.add(event(74.9, 2_000, status="error", error_type="timeout")) == []  # 00:01:14.9
    assert agg.watermark == at(0)  # complete up to 00:00: minute 0 is still open
    closed = agg.add(event(75, 5))  # 00:01:15 = end of minute 0 + 15 s
    assert closed == [
        MinuteBucket(
            service="svc",
            minute_start=at(0),
            spend_nusd=30_001_000,
            requests=2,
            errors=0,
            tokens=2_000,
            # $0.03 for 1000 tokens = $30 per million tokens >= $10: an expensive call
            expensive_spend_nusd=30_000_000,
            expensive_requests=1,
            by_model={"gpt-4o": 1_000, "claude-opus-4": 30_000_000},
            by_tag={"agent:planner": 1_000},  # only the configured tag keys
            requests_by_provider={"openai": 1, "anthropic": 1},
            errors_by_provider={},
            errors_by_type={},
        )
    ]
    assert agg.watermark == at(1)
    # an event for the closed minute is late: counted, left out of detection
    assert agg.add(event(59, 1_000_000)) == []
    assert agg.late_events == 1
    rest = agg.flush()
    assert [(b.service, b.minute_start, b.requests, b.errors) for b in rest] == [
        ("other", at(1), 1, 0),
        ("svc", at(1), 2, 1),
    ]
    assert rest[1].errors_by_provider == {"openai": 1}
    assert rest[1].errors_by_type == {"timeout": 1}


def test_malformed_events_are_counted_not_raised() -> None:
    agg = MinuteAggregator()
    assert agg.add({"service": "svc"}) == []
    assert agg.add({**event(1, 5), "ts": "yesterday"}) == []
    assert agg.add({**event(1, 5), "cost_nusd": -3}) == []
    assert agg.bad_events == 3 and agg.events == 0
    assert agg.last_error.startswith("ValueError")


def test_an_idle_stream_closes_by_the_wall_clock_after_two_quiet_ticks() -> None:
    agg = MinuteAggregator()
    agg.add(event(10, 100))
    now = at(5)
    assert agg.close_until(now) == []  # an event arrived since the last tick
    closed = agg.close_until(now)  # quiet for a whole tick: the source is idle
    assert [(b.minute_start, b.spend_nusd) for b in closed] == [(at(0), 100)]
    assert agg.watermark == at(4)  # minutes ending by now - 15 s are complete


def test_expensive_models_by_name_pattern() -> None:
    settings = DetectSettings.from_config(
        {"expensive_models": ["o1*"], "expensive_usd_per_mtok": 0}
    )
    agg = MinuteAggregator(settings)
    agg.add(event(1, 10, model="o1-preview"))
    agg.add(event(2, 10_000_000, model="gpt-4o"))  # dear per token, but the price rule is off
    [b] = agg.flush()
    assert (b.expensive_spend_nusd, b.expensive_requests) == (10, 1)


def test_breakdowns_are_bounded() -> None:
    settings = DetectSettings.from_config({"max_breakdown_keys": 2, "max_providers": 1})
    agg = MinuteAggregator(settings)
    for i, provider in enumerate(("a", "b", "c")):
        agg.add(event(i, 10, model=f"m{i}", provider=provider, status="error"))
    [b] = agg.flush()
    assert b.by_model == {"m0": 10, "m1": 10, "(other)": 10}
    assert b.requests_by_provider == {"a": 1, "(other)": 2}
    assert b.errors_by_provider == {"a": 1, "(other)": 2}


def test_detect_stream_turns_a_runaway_into_one_alert_and_one_resolve() -> None:
    stream = DetectStream()
    alerts = []
    for minute in range(100):
        calls = 40 if minute in (60, 61, 62) else 10
        for k in range(calls):
            cost = 100_000_000 if k % 2 else 120_000_000  # $0.10 / $0.12 a call
            alerts += stream.add(event(minute * 60 + k, cost, tags={"agent": "planner"}))
    assert [(a.kind, a.status) for a in alerts] == [("spike", "firing"), ("spike", "resolved")]
    assert alerts[0].labels["cause"] == "runaway_loop"
    assert alerts[0].figures["episode_start"] == at(60).isoformat()
    assert alerts[0].fired_at == at(62)
    assert alerts[1].fired_at == at(66)
    # the last minutes are still open; a flush closes them without a new alert
    assert stream.flush() == []
    # then the stream goes quiet: after two idle ticks the silence is noticed
    quiet: list = []
    for s in range(0, 600, 5):
        quiet += stream.tick(at(100) + timedelta(seconds=s))
    assert [(a.kind, a.labels["detector"], a.status) for a in quiet] == [
        ("failure", "traffic_drop", "firing")
    ]
    assert quiet[0].figures["silent_since"] == at(100).isoformat()
