"""Reading a topic back from the real broker in tests: exactly what was produced."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from streams.topics import BUDGET_STATUS


async def read_topic(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 15.0, settle_s: float = 0.5
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read the topic from the start until ``expected`` records arrived, then keep reading for
    ``settle_s`` more so a duplicate or an extra record would be seen too."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
        settle_until = time.monotonic() + settle_s
        while time.monotonic() < settle_until:
            batch = await consumer.getmany(timeout_ms=100)
            for part in batch.values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records


async def read_until_idle(
    bootstrap: str, topic: str, idle_ms: int = 500
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic``, read from the start until ``idle_ms`` pass with nothing
    new (all partitions, in fetch order)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        while batch := await consumer.getmany(timeout_ms=idle_ms):
            for part in batch.values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records


async def latest_statuses(bootstrap: str, idle_ms: int = 500) -> dict[str, dict[str, Any]]:
    """The last budget status published for each budget (the compacted status topic read
    from the start until ``idle_ms`` pass with nothing new), by budget name."""
    return {
        r.key.decode(): orjson.loads(r.value)
        for r in await read_until_idle(bootstrap, BUDGET_STATUS, idle_ms)
    }


async def spent_by_budget(bootstrap: str, idle_ms: int = 500) -> dict[str, int]:
    """Each budget's last published ``spent_nusd``."""
    statuses = await latest_statuses(bootstrap, idle_ms)
    return {name: status["spent_nusd"] for name, status in statuses.items()}
