"""A client whose clock runs five minutes fast, among normal ones, through the real worker.

Three busy services (10 calls a minute each for the last 40 minutes, replayed in event time)
share one partition with a fourth whose clock is five minutes ahead. The worker clamps event
time to the ingest time, so the fast client cannot close the next minutes of its partition:
no traffic-drop alert and no spike alert.

The positive control runs the worker's detector code (``DetectStream``, per-partition minute
windows) over the same events in this process: with the fast client's events at its own clock
time, each of the three busy services gets a traffic-drop alert; clamped as the worker does,
none. So the skew is what was handled.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams import topics
from streams.broker import TansuBroker, create_topics
from streams.detect import DetectSettings, DetectStream
from tests.support.slack_server import SlackServer
from tests.support.worker import running_worker, wait_for

pytestmark = pytest.mark.integration

BUSY = ("chat", "search", "voice")
HISTORY_MIN = 40
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def event(service: str, at: datetime, cost: str = "0.0500") -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "ts": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "service": service,
        "operation": "call",
        "status": "ok",
        "provider": "acme",
        "unit": "call",
        "cost_usd": cost,
    }


def history(now: datetime) -> list[dict[str, Any]]:
    """10 calls a minute per busy service, every minute of the last 40 up to now."""
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=HISTORY_MIN)
    out = []
    for minute in range(HISTORY_MIN):
        for call in range(10):
            at = start + timedelta(minutes=minute, seconds=call * 5 + 1)
            out += [event(service, at) for service in BUSY]
    return out


async def produce(bootstrap: str, events: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for e in events:
            await producer.send(topics.USAGE, orjson.dumps(e), key=e["service"].encode())
        await producer.flush()
    finally:
        await producer.stop()


def detector_alerts(events: list[dict[str, Any]], now_us: int, clamp: bool) -> list[Any]:
    """The worker's detector over ``events`` in one partition, event time clamped or not."""
    stream = DetectStream(DetectSettings.from_config({}))
    alerts = []
    for e in events:
        ts_us = (datetime.fromisoformat(e["ts"].replace("Z", "+00:00")) - EPOCH) // timedelta(
            microseconds=1
        )
        if clamp:
            ts_us = min(ts_us, now_us)
        buckets = stream.minutes.add_event(
            0, e["service"], ts_us, 50_000_000, 0, "call", "acme", False, None, None
        )
        alerts += stream.observe(buckets)
    # The worker's detector tick (every 5 s): silent minutes up to the watermark are judged.
    alerts += stream.tick(datetime.fromtimestamp(now_us / 1e6, UTC))
    return alerts


def test_a_fast_clock_raises_no_drop_and_no_spike(slack: SlackServer, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    if now.second > 40:  # keep the run inside one wall-clock minute
        time.sleep(62 - now.second)
        now = datetime.now(UTC)
    past = history(now)
    fast = [event("fast-clock", now + timedelta(minutes=5, seconds=i)) for i in range(3)]
    live = [event(s, now + timedelta(seconds=1)) for s in BUSY]
    with TansuBroker() as broker:
        asyncio.run(create_topics(broker.bootstrap_servers, [topics.USAGE], 1))
        cfg = f"""
[kafka]
bootstrap_servers = "{broker.bootstrap_servers}"
partitions = 1

[worker]
http_port = {{http_port}}
state_dir = "{tmp_path / "state"}"

[clickhouse]
dsn = "chdb://{tmp_path / "chdb"}"

[alerting]
group_wait_s = 0

[[alerting.receivers]]
name = "oncall"
type = "slack"
webhook_url = "{slack.webhook_url()}"
"""
        with running_worker(cfg, tmp_path) as worker:
            asyncio.run(produce(broker.bootstrap_servers, past))
            wait_for(
                lambda: worker.scalar("SELECT count() FROM usage_events") == len(past),
                120,
                "the history stored",
            )
            asyncio.run(produce(broker.bootstrap_servers, fast + live))
            total = len(past) + len(fast) + len(live)
            wait_for(
                lambda: worker.scalar("SELECT count() FROM usage_events") == total,
                60,
                "the fast client stored",
            )
            [[clamped]] = worker.query(
                "SELECT countIf(ts <= ingested_at) FROM usage_events WHERE service='fast-clock'"
            )
            assert clamped == len(fast)
            time.sleep(8.0)  # two detector ticks: a closed minute would have been judged
            [[detector_alerts_stored]] = worker.query(
                "SELECT count() FROM alerts WHERE kind IN ('spike', 'failure')"
            )
            assert detector_alerts_stored == 0
            assert slack.delivered == []
    # The positive control: the same events, the same detector code.
    now_us = (datetime.now(UTC) - EPOCH) // timedelta(microseconds=1)
    order = past + fast + live
    raw = detector_alerts(order, now_us, clamp=False)
    drops = sorted(
        a.labels.get("service") for a in raw if a.labels.get("detector") == "traffic_drop"
    )
    assert drops == sorted(BUSY), [(a.kind, a.labels) for a in raw]
    assert detector_alerts(order, now_us, clamp=True) == []
