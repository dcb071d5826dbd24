"""Reading a topic back from the real broker in tests: exactly what was produced."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord


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
