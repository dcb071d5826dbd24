"""Broker away at start or later: events wait within the queue bound and arrive exactly once
when it returns; beyond the bound the oldest are dropped and counted exactly.

Tansu keeps topics in memory, so a restarted broker starts empty: what the first broker
acknowledged is not expected on the second one. Tansu limit this depends on: a restarted
(memory) Tansu *acknowledges* a produce request for a topic it no longer has and discards it
(real Kafka answers UNKNOWN_TOPIC_OR_PARTITION; a fresh metadata request auto-creates the
topic). So before starting the second broker the test waits until the SDK has noticed the
outage (in-flight events back in its queue, producer dropped); the new producer's metadata
request then recreates the topic.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import Counter

import pytest
import spendwatch
from spendwatch.event import build

from streams.broker import TansuBroker, free_port

pytestmark = pytest.mark.integration

FAST_RETRY = {"request_timeout_ms": 1000, "retry_backoff_max_ms": 200}


@pytest.fixture
def port() -> int:
    return free_port()


def ids(events):
    return [e["request_id"] for e in events]


def test_broker_down_at_start_then_up(port, topic, consume):
    spendwatch.configure(
        bootstrap_servers=f"127.0.0.1:{port}", service="late-broker", topic=topic, **FAST_RETRY
    )
    for i in range(300):
        spendwatch.record("call", request_id=str(i))
    assert spendwatch.flush(0.3) is False
    assert spendwatch.stats().queued == 300
    with TansuBroker(port=port) as late:
        assert spendwatch.flush(20)
        events = consume(300, bootstrap=late.bootstrap_servers)
        stats = spendwatch.stats()
        spendwatch.shutdown(2)
    assert ids(events) == [str(i) for i in range(300)]
    assert len({e["event_id"] for e in events}) == 300
    assert (stats.sent, stats.queued, stats.dropped, stats.failed) == (300, 0, 0, 0)


def test_beyond_the_bound_oldest_are_dropped_and_counted(port, topic, consume):
    spendwatch.configure(
        bootstrap_servers=f"127.0.0.1:{port}",
        service="bounded",
        topic=topic,
        queue_size=50,
        **FAST_RETRY,
    )
    for i in range(137):
        spendwatch.record("call", request_id=str(i))
    stats = spendwatch.stats()
    assert (stats.queued, stats.dropped) == (50, 87)
    with TansuBroker(port=port) as late:
        assert spendwatch.flush(20)
        events = consume(50, bootstrap=late.bootstrap_servers)
        stats = spendwatch.stats()
        spendwatch.shutdown(2)
    assert ids(events) == [str(i) for i in range(87, 137)]
    assert (stats.sent, stats.queued, stats.dropped, stats.failed) == (50, 0, 87, 0)


def test_broker_lost_then_back_on_the_same_port(port, topic, consume):
    first = TansuBroker(port=port).start()
    try:
        spendwatch.configure(
            bootstrap_servers=first.bootstrap_servers, service="flaky", topic=topic, **FAST_RETRY
        )
        for i in range(10):
            spendwatch.record("before", request_id=f"a{i}")
        assert spendwatch.flush(10)
        assert ids(consume(10, bootstrap=first.bootstrap_servers)) == [f"a{i}" for i in range(10)]
    finally:
        first.stop(grace_s=0.2)  # a crash, not a graceful drain (Tansu waits 5 s for clients)
    for i in range(40):
        spendwatch.record("during", request_id=f"b{i}")
    assert spendwatch.flush(0.5) is False
    deadline = time.monotonic() + 15
    while spendwatch.stats().connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert spendwatch.stats().queued == 40
    with TansuBroker(port=port) as second:
        assert spendwatch.flush(30)
        events = consume(40, bootstrap=second.bootstrap_servers)
        stats = spendwatch.stats()
        spendwatch.shutdown(2)
    counts = Counter(ids(events))
    assert sorted(counts) == sorted(f"b{i}" for i in range(40))
    assert set(counts.values()) == {1}
    assert (stats.sent, stats.queued, stats.dropped, stats.failed) == (50, 0, 0, 0)


def test_shutdown_with_broker_down_returns_within_its_timeout(port, topic):
    spendwatch.configure(bootstrap_servers=f"127.0.0.1:{port}", service="gone", topic=topic)
    spendwatch.record("call")
    loop = asyncio.new_event_loop()
    try:
        started = loop.time()
        assert spendwatch.shutdown(timeout_s=0.5) is False
        # join waits at most timeout + 2 s for the sender thread (no timed assert on speed)
        assert loop.time() - started < 10
    finally:
        loop.close()
    spendwatch.record("after shutdown is discarded")
    assert spendwatch.stats().rejected == 1


def test_full_queue_with_the_broker_away_counts_every_drop_exactly(port, topic, consume):
    """The path an app takes on every call while its broker is unreachable: the queue is full,
    each ``record`` / ``track`` evicts the oldest event. Every eviction is counted, a refused
    value is still counted as rejected (not as a drop), and what is kept is the newest events
    with every field as given (``record`` and ``Track`` hand the fields to ``build`` by
    position)."""
    spendwatch.configure(
        bootstrap_servers=f"127.0.0.1:{port}",
        service="full",
        topic=topic,
        queue_size=20,
        **FAST_RETRY,
    )
    for i in range(20):
        spendwatch.record("fill", request_id=f"fill-{i}")
    assert (spendwatch.stats().queued, spendwatch.stats().dropped) == (20, 0)
    for i in range(500):
        spendwatch.record(
            "chat",
            provider="openai",
            model="gpt-4o-mini",
            response_model="gpt-4o-mini-2024-07-18",
            input_tokens=120,
            output_tokens=380,
            cache_read_tokens=20,
            reasoning_tokens=80,
            latency_ms=12.5,
            cache_hit=True,
            request_id=f"r-{i}",
            tags={"customer": "acme"},
            service="fleet-a",
        )
        if i % 100 == 0:
            spendwatch.record("chat", input_tokens=-1)  # refused: rejected, not dropped
    for i in range(300):
        with spendwatch.track("geocode", provider="mapbox", unit="request", quantity=1) as t:
            t.request_id = f"t-{i}"
    stats = spendwatch.stats()
    assert (stats.queued, stats.dropped, stats.rejected, stats.sent) == (20, 800, 5, 0)
    with TansuBroker(port=port) as late:
        assert spendwatch.flush(20)
        events = consume(20, bootstrap=late.bootstrap_servers)
        stats = spendwatch.stats()
        spendwatch.shutdown(2)
    assert ids(events) == [f"t-{i}" for i in range(280, 300)]
    assert {(e["operation"], e["provider"], e["unit"], e["quantity"]) for e in events} == {
        ("geocode", "mapbox", "request", "1")
    }
    assert (stats.sent, stats.queued, stats.dropped, stats.failed, stats.rejected) == (
        20,
        0,
        800,
        0,
        5,
    )


def test_record_fields_reach_the_event_by_name(port, topic, consume, broker, stable):
    """``record`` passes its fields to ``build`` by position: each one lands where it should."""
    spendwatch.configure(bootstrap_servers=broker.bootstrap_servers, service="app", topic=topic)
    spendwatch.record(
        "chat",
        status="error",
        provider="openai",
        model="gpt-4o-mini",
        response_model="gpt-4o-mini-2024-07-18",
        input_tokens=120,
        output_tokens=380,
        cache_read_tokens=20,
        cache_write_tokens=10,
        reasoning_tokens=80,
        cost_usd="0.000123",
        latency_ms=12.5,
        error_type="RateLimitError",
        cache_hit=True,
        partial=True,
        request_id="req-1",
        tags={"customer": "acme"},
        service="fleet-a",
    )
    spendwatch.record("embed", unit="request", quantity=3, provider="cohere")
    assert spendwatch.flush(10)
    events = sorted(consume(2), key=lambda e: e["operation"])  # two keys: two partitions
    assert [stable(e) for e in events] == [
        {
            "schema_version": 1,
            "service": "fleet-a",
            "operation": "chat",
            "status": "error",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "response_model": "gpt-4o-mini-2024-07-18",
            "input_tokens": 120,
            "output_tokens": 380,
            "cache_read_tokens": 20,
            "cache_write_tokens": 10,
            "reasoning_tokens": 80,
            "cost_usd": "0.000123",
            "error_type": "RateLimitError",
            "cache_hit": True,
            "partial": True,
            "request_id": "req-1",
            "tags": {"customer": "acme"},
        },
        {
            "schema_version": 1,
            "service": "app",
            "operation": "embed",
            "status": "ok",
            "provider": "cohere",
            "unit": "request",
            "quantity": "3",
        },
    ]
    assert events[0]["latency_ms"] == 12.5


def test_record_keywords_are_in_the_order_build_takes_them() -> None:
    """``record`` hands its keywords to ``build`` by position: the two lists must agree."""
    assert (
        list(inspect.signature(spendwatch.record).parameters)[1:]
        == list(inspect.signature(build).parameters)[2:]
    )
