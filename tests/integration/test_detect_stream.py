"""Spike detection through the real broker: priced events in, exactly one alert and one resolve out.

A real Tansu broker carries ``spendwatch.priced.v1`` (key = service) and
``spendwatch.alerts.v1`` (key = alert id). The consumer side is what the worker's detect agent
does: every priced event goes through :class:`streams.detect.DetectStream` and every alert it
returns is published. Broker facts this test depends on: Tansu refuses idempotent producers
(``enable_idempotence=False``), and a group join waits ``session_timeout_ms / 2``, so the
consumers here use manual partition assignment.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.alerts import Alert, alert_id_for
from streams import topics
from streams.broker import TansuBroker, create_topics
from streams.detect import DetectStream

pytestmark = pytest.mark.integration

MINUTES = 100
RUNAWAY = (60, 61, 62)  # minutes with 4x the calls
NORMAL_CALLS = 10
RUNAWAY_CALLS = 40


@pytest.fixture
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as b:
        yield b


def priced_events(t0: datetime) -> list[dict[str, object]]:
    """Priced events as the ingest agent publishes them: $0.10 / $0.12 calls to gpt-4o."""
    events: list[dict[str, object]] = []
    for minute in range(MINUTES):
        calls = RUNAWAY_CALLS if minute in RUNAWAY else NORMAL_CALLS
        for k in range(calls):
            ts = t0 + timedelta(minutes=minute, seconds=k * 55 / calls)
            events.append(
                {
                    "schema_version": 1,
                    "event_id": str(uuid.uuid4()),
                    "ts": ts.isoformat().replace("+00:00", "Z"),
                    "service": "research-agent",
                    "operation": "chat",
                    "status": "ok",
                    "provider": "openai",
                    "model": "gpt-4o",
                    "input_tokens": 2_000,
                    "output_tokens": 500,
                    "tags": {"agent": "looper" if minute in RUNAWAY and k >= 10 else "planner"},
                    "cost_nusd": 100_000_000 if k % 2 else 120_000_000,
                    "avoided_cost_nusd": 0,
                    "cost_source": "supplied",
                    "ingested_at": ts.isoformat(),
                }
            )
    return events


async def detect_from_topic(bootstrap: str, priced: str, alerts_topic: str, total: int) -> int:
    """The detect agent's loop: consume priced events, publish the alerts they cause."""
    stream = DetectStream()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await consumer.start()
    await producer.start()
    published = 0
    try:
        consumer.assign([TopicPartition(priced, 0)])
        await consumer.seek_to_beginning()
        seen = 0
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1_000, max_records=2_000)
            for records in batch.values():
                for record in records:
                    seen += 1
                    for alert in stream.add(orjson.loads(record.value)):
                        await producer.send_and_wait(
                            alerts_topic, alert.to_json(), key=alert.alert_id.encode()
                        )
                        published += 1
        # End of the data: close the open minutes (a backfill's flush; live, ticks do this).
        for alert in stream.flush():
            await producer.send_and_wait(alerts_topic, alert.to_json(), key=alert.alert_id.encode())
            published += 1
    finally:
        await consumer.stop()
        await producer.stop()
    return published


async def read_topic(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    out: list[tuple[bytes, bytes]] = []
    try:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.seek_to_beginning()
        for _ in range(10):  # a short wait for stragglers proves there are no more than expected
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out += [(r.key or b"", r.value or b"") for r in records]
            if len(out) > expected:
                break
    finally:
        await consumer.stop()
    return out


async def scenario(bootstrap: str) -> tuple[list[Alert], list[bytes], int, int]:
    suffix = uuid.uuid4().hex[:8]
    priced, alerts_topic = f"{topics.PRICED}.{suffix}", f"{topics.ALERTS}.{suffix}"
    await create_topics(bootstrap, [priced, alerts_topic], 1)
    t0 = (datetime.now(UTC) - timedelta(minutes=MINUTES + 1)).replace(second=0, microsecond=0)
    events = priced_events(t0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for ev in events:
            await producer.send(priced, orjson.dumps(ev), key=str(ev["service"]).encode())
        await producer.flush()
    finally:
        await producer.stop()
    published = await detect_from_topic(bootstrap, priced, alerts_topic, len(events))
    records = await read_topic(bootstrap, alerts_topic, published)
    # at-least-once: a replay of the same priced events yields the same alert ids
    replayed = await detect_from_topic(bootstrap, priced, alerts_topic, len(events))
    again = await read_topic(bootstrap, alerts_topic, published + replayed)
    alerts = [Alert.from_json(v) for _, v in records]
    keys = [k for k, _ in records]
    replay_ids = [Alert.from_json(v).alert_id for _, v in again[len(records) :]]
    assert replay_ids == [a.alert_id for a in alerts]
    return alerts, keys, published, int(t0.timestamp())


def test_runaway_gives_one_alert_then_one_resolved_notice(broker: TansuBroker) -> None:
    alerts, keys, published, t0_s = asyncio.run(scenario(broker.bootstrap_servers))
    t0 = datetime.fromtimestamp(t0_s, UTC)
    start = t0 + timedelta(minutes=RUNAWAY[0])
    assert published == 2
    assert [(a.kind, a.status) for a in alerts] == [("spike", "firing"), ("spike", "resolved")]
    fired, resolved = alerts
    expected_id = alert_id_for("spike", "research-agent", "spend", start.isoformat())
    assert fired.alert_id == resolved.alert_id == expected_id
    assert keys == [expected_id.encode()] * 2
    # fires when minute 61 closes, resolves after minutes 63-65 are back to normal
    assert fired.fired_at == t0 + timedelta(minutes=62)
    assert resolved.fired_at == t0 + timedelta(minutes=66)
    assert fired.labels["cause"] == "runaway_loop"
    # minutes 60-61: 40 calls alternating $0.12 / $0.10 -> $4.40 a minute
    assert fired.figures["observed"] == "4.400000000"
    # minute 61's window: minutes 1-59 at $1.10 and minute 60 (pending) at $4.40 -> $1.10
    assert fired.figures["baseline"] == "1.100000000"
    assert fired.figures["requests_per_min"] == "40.0"
    looper = next(c for c in fired.contributors if c.name == "looper")
    # 30 looper calls a minute (k = 10..39): 15 x $0.12 + 15 x $0.10 = $3.30, twice
    assert looper.dimension == "tag:agent" and looper.cost_nusd == 6_600_000_000
    assert looper.share == "0.75"
    assert resolved.figures["resolution"] == "returned_to_baseline"
