"""The usage epoch: which incarnation of the broker's topics a Kafka offset belongs to.

Every stored usage row carries its source position ``(kafka_epoch, kafka_partition,
kafka_offset)``, and budget ledgers count spend by those positions (see docs/exactly-once.md).
Offsets alone are not enough: the embedded broker keeps nothing across restarts, so offset 0
comes back while ClickHouse still holds the rows of earlier runs. The epoch tells them apart.

It is the first record of the single-partition ``spendwatch.meta.v1`` topic: a worker that
finds the topic empty writes a fresh id, and every worker adopts the record at offset 0, so
workers starting together agree. Keys are distinct per writer, so compaction (Kafka) keeps the
first record for ever.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.topics import META

log = logging.getLogger("spendwatch.epoch")


async def _first_record(
    consumer: AIOKafkaConsumer, tp: TopicPartition, wait_s: float
) -> str | None:
    consumer.seek(tp, 0)
    deadline = asyncio.get_running_loop().time() + wait_s
    while asyncio.get_running_loop().time() < deadline:
        batch = await consumer.getmany(tp, timeout_ms=200, max_records=1)
        for record in batch.get(tp, []):
            epoch: str = orjson.loads(record.value)["epoch"]
            return epoch
    return None


async def usage_epoch(bootstrap_servers: str, *, wait_s: float = 2.0) -> str:
    """The current usage epoch, created when the meta topic is empty (topic must exist)."""
    tp = TopicPartition(META, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        epoch = await _first_record(consumer, tp, wait_s)
        if epoch is None:
            mine = uuid.uuid4().hex[:16]
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
            await producer.start()
            try:
                value = {"epoch": mine, "created_at": datetime.now(UTC).isoformat()}
                await producer.send_and_wait(
                    META, orjson.dumps(value), key=f"epoch:{mine}".encode(), partition=0
                )
            finally:
                await producer.stop()
            epoch = await _first_record(consumer, tp, 10.0)
            if epoch is None:
                raise RuntimeError(f"cannot read back the usage epoch from {META}")
            if epoch == mine:
                log.info("new usage epoch %s (fresh broker topics)", epoch)
        return epoch
    finally:
        await consumer.stop()
