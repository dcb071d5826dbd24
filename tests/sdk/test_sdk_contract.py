"""Events from record() and track() reach a real Tansu broker, keyed by service, and pass the
pipeline's validator (schemas.events.validate_event) with exactly the fields given."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import spendwatch

pytestmark = pytest.mark.integration

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def configure(broker, topic, **extra):
    return spendwatch.configure(
        bootstrap_servers=broker.bootstrap_servers,
        service="contract-svc",
        environment="test",
        tags={"team": "payments"},
        topic=topic,
        **extra,
    )


def test_record_fields_round_trip(broker, topic, consume, stable):
    configure(broker, topic)
    when = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    spendwatch.record(
        "chat",
        provider="openai",
        model="gpt-4o",
        response_model="gpt-4o-2024-08-06",
        input_tokens=1200,
        output_tokens=300,
        cache_read_tokens=1024,
        cache_write_tokens=0,
        reasoning_tokens=128,
        cost_usd=Decimal("0.012345678"),
        latency_ms=812.5,
        request_id="req_abc",
        tags={"feature": "search"},
        ts=when,
    )
    spendwatch.record("voice", provider="twilio", unit="minute", quantity=2.5, cost_usd="0.0425")
    spendwatch.record("sms", unit="message", quantity=3, cost_usd=1)
    spendwatch.record("cached", provider="openai", model="gpt-4o", cost_usd="0.5", cache_hit=True)
    assert spendwatch.flush(10)
    events = consume(4)
    assert len(events) == 4
    assert all(e["schema_version"] == 1 for e in events)
    assert all(uuid.UUID(e["event_id"]).version == 4 for e in events)
    assert all(TS_RE.match(e["ts"]) for e in events)
    assert events[0]["ts"] == "2026-03-01T10:30:15.123456Z"
    assert events[0]["latency_ms"] == 812.5
    assert stable(events[0]) == {
        "schema_version": 1,
        "service": "contract-svc",
        "environment": "test",
        "tags": {"team": "payments", "feature": "search"},
        "operation": "chat",
        "status": "ok",
        "provider": "openai",
        "model": "gpt-4o",
        "response_model": "gpt-4o-2024-08-06",
        "input_tokens": 1200,
        "output_tokens": 300,
        "cache_read_tokens": 1024,
        "cache_write_tokens": 0,
        "reasoning_tokens": 128,
        "cost_usd": "0.012345678",
        "request_id": "req_abc",
    }
    assert (events[1]["unit"], events[1]["quantity"], events[1]["cost_usd"]) == (
        "minute",
        "2.5",
        "0.0425",
    )
    assert (events[2]["quantity"], events[2]["cost_usd"]) == ("3", "1")
    assert events[3]["cache_hit"] is True and events[3]["cost_usd"] == "0.5"
    stats = spendwatch.stats()
    assert (stats.sent, stats.queued, stats.dropped, stats.failed) == (4, 0, 0, 0)


def test_event_time_defaults_to_now(broker, topic, consume):
    configure(broker, topic)
    before = datetime.now(UTC)
    spendwatch.record("ping")
    after = datetime.now(UTC)
    assert spendwatch.flush(10)
    (event,) = consume(1)
    ts = datetime.strptime(event["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before - timedelta(microseconds=1) <= ts <= after


def test_track_context_manager_ok_and_error(broker, topic, consume, stable):
    configure(broker, topic)
    with spendwatch.track("chat", provider="anthropic", model="claude-sonnet-4-5") as t:
        t.set_usage(input_tokens=50, output_tokens=7, cache_read_tokens=20)
        t.quantity = None
        t.set_tag("agent", "planner")
    boom = ConnectionError("upstream down")
    with (
        pytest.raises(ConnectionError) as raised,
        spendwatch.track("geocode", unit="request") as t2,
    ):
        t2.quantity = 1
        raise boom
    assert raised.value is boom  # the very same exception object
    assert spendwatch.flush(10)
    ok, err = consume(2)
    assert stable(ok) == {
        "schema_version": 1,
        "service": "contract-svc",
        "environment": "test",
        "tags": {"team": "payments", "agent": "planner"},
        "operation": "chat",
        "status": "ok",
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "input_tokens": 50,
        "output_tokens": 7,
        "cache_read_tokens": 20,
    }
    assert stable(err) == {
        "schema_version": 1,
        "service": "contract-svc",
        "environment": "test",
        "tags": {"team": "payments"},
        "operation": "geocode",
        "status": "error",
        "error_type": "ConnectionError",
        "unit": "request",
        "quantity": "1",
    }
    assert ok["latency_ms"] >= 0 and err["latency_ms"] >= 0


def test_track_decorator_sync_and_async(broker, topic, consume):
    configure(broker, topic)

    @spendwatch.track("lookup", provider="crm", unit="record", quantity=1)
    def lookup(n: int) -> int:
        current = spendwatch.current_track()
        assert current is not None
        current.quantity = n
        return n * 2

    @spendwatch.track("enrich", provider="crm", unit="record")
    async def enrich(n: int) -> int:
        await asyncio.sleep(0.01)
        if n < 0:
            raise ValueError("negative")
        current = spendwatch.current_track()
        assert current is not None
        current.quantity = Decimal(n)
        return n

    assert lookup(5) == 10
    assert asyncio.run(enrich(7)) == 7
    with pytest.raises(ValueError, match="negative"):
        asyncio.run(enrich(-1))
    assert spendwatch.current_track() is None
    assert spendwatch.flush(10)
    events = consume(3)
    assert [
        (e["operation"], e["status"], e.get("quantity"), e.get("error_type")) for e in events
    ] == [
        ("lookup", "ok", "5", None),
        ("enrich", "ok", "7", None),
        ("enrich", "error", None, "ValueError"),
    ]
    assert events[1]["latency_ms"] >= 10.0


async def test_track_async_context_manager(broker, topic, consume):
    configure(broker, topic)
    async with spendwatch.track("transcribe", provider="deepgram", unit="minute") as t:
        await asyncio.sleep(0)
        t.quantity = "1.25"
        t.cost_usd = 0.0043
    assert await spendwatch.aflush(10)
    events = await asyncio.to_thread(consume, 1)
    assert (events[0]["quantity"], events[0]["cost_usd"]) == ("1.25", "0.0043")


def test_record_counts_and_reports_bad_fields_without_raising(broker, topic, caplog):
    configure(broker, topic)
    cases = [
        ({"cost_usd": "-1"}, "cost_usd"),
        ({"cost_usd": "abc"}, "cost_usd"),
        ({"cost_usd": Decimal("0.0000000001")}, "cost_usd"),
        ({"model": "m", "input_tokens": -1}, "input_tokens"),
        ({"model": "m", "input_tokens": True}, "input_tokens"),
        ({"input_tokens": 5}, "model"),
        ({"quantity": 2}, "unit"),
        ({"unit": "Minutes"}, "unit"),
        ({"model": "m", "input_tokens": 5, "cache_read_tokens": 6}, "cache_read_tokens"),
        ({"tags": {"bad key": "x"}}, "tags"),
        ({"status": "failed"}, "status"),
        ({"ts": datetime(2026, 1, 1)}, "ts"),
    ]
    with caplog.at_level("WARNING", logger="spendwatch"):
        for kwargs, _ in cases:
            assert spendwatch.record("op", **kwargs) is None
        with spendwatch.track("op", cost_usd=float("nan")):
            pass
        with spendwatch.track("op", provider="p", model="m") as t:
            t.set_usage(input_tokens=-5)
    stats = spendwatch.stats()
    assert (stats.queued, stats.sent, stats.rejected) == (0, 0, len(cases) + 2)
    logged = " ".join(r.getMessage() for r in caplog.records)
    for _, field in cases:
        assert f"spendwatch: {field}:" in logged, field


def test_per_event_service_keys_and_forwarded_events(broker, topic):
    """``record(service=...)`` overrides the configured service (and the message key); a
    forwarded wire event is sent unchanged; one JSON cannot carry fails alone, counted."""
    import orjson
    from spendwatch import runtime as sdk_runtime

    from tests.sdk.conftest import read_topic

    configure(broker, topic)
    spendwatch.record("chat", service="agent-a", request_id="1")
    sdk_runtime.submit({"forwarded": True, "service": "legacy", "request_id": "2"})
    sdk_runtime.submit({"service": "broken", "request_id": "x", "bad": {1, 2}})  # a set
    spendwatch.record("chat", request_id="3")
    assert spendwatch.flush(10)
    records = asyncio.run(read_topic(broker.bootstrap_servers, topic, 3))
    stats = spendwatch.stats()
    got = sorted((r.key, orjson.loads(r.value)["request_id"]) for r in records)
    assert got == [(b"agent-a", "1"), (b"contract-svc", "3"), (b"legacy", "2")]
    forwarded = next(orjson.loads(r.value) for r in records if r.key == b"legacy")
    assert forwarded == {"forwarded": True, "service": "legacy", "request_id": "2"}
    assert (stats.sent, stats.failed) == (3, 1)
