"""The shared delivery log in a Kafka topic (``spendwatch.alert-deliveries.v1``).

Why a topic and not a ClickHouse table: the topic is co-partitioned with the alerts topic, so
"the entries of the alerts I now own" is exactly "the partitions of the log I was just
assigned", read in order from the start; and every worker of a group shares the broker,
while ClickHouse is per worker with the embedded default (one chDB path per process). The
topic is compacted with a retention (``streams.topics``): each record's key names one fact
(``accepted:<alert_id>:<status>``, ``sent:<receiver>:<notification_id>``,
``dead:<notification_id>``), so compaction keeps every fact once.

Appends go one at a time (``send_and_wait`` under a lock, ``acks="all"``): alerts are rare,
each append is durable when it returns, and one-record batches keep ``end_offsets`` exact on
the embedded Tansu broker, which reports too low an end for multi-record batches (a reader
also reads on until a fetch comes back empty). Tansu keeps topics in memory: a restarted
embedded broker has lost this log together with the alerts topic; the worker's local log
(state dir) still covers a restart of the same worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from alerting.deliverylog.base import LogEntry

log = logging.getLogger(__name__)


class TopicDeliveryLog:
    """``SharedLog`` over ``topic`` (``partitions`` partitions) at ``bootstrap_servers``."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        partitions: int,
        *,
        client_kwargs: dict[str, Any] | None = None,
        read_timeout_s: float = 30.0,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.partitions = partitions
        self.read_timeout_s = read_timeout_s
        self._kwargs = dict(client_kwargs or {})
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers, acks="all", linger_ms=0, **self._kwargs
            )
            await producer.start()
            self._producer = producer
        return self._producer

    async def append(self, partition: int, key: bytes, entry: LogEntry) -> None:
        async with self._lock:
            producer = await self._started()
            await producer.send_and_wait(
                self.topic, orjson.dumps(entry), key=key, partition=partition
            )

    async def read(self, partitions: Iterable[int]) -> list[LogEntry]:
        wanted = sorted(set(partitions))
        if not wanted:
            return []
        tps = [TopicPartition(self.topic, p) for p in wanted]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self._kwargs,
        )
        await consumer.start()
        by_partition: dict[int, list[LogEntry]] = {p: [] for p in wanted}
        try:
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            deadline = asyncio.get_running_loop().time() + self.read_timeout_s
            while True:
                batches = await consumer.getmany(*tps, timeout_ms=200)
                for tp, records in batches.items():
                    for record in records:
                        if record.value is None:
                            continue  # a tombstone
                        try:
                            entry = orjson.loads(record.value)
                        except orjson.JSONDecodeError:
                            log.warning("%s: unreadable record at %s", tp, record.offset)
                            continue
                        if isinstance(entry, dict):
                            by_partition[tp.partition].append(entry)
                reached = all([await consumer.position(tp) >= ends[tp] for tp in tps])
                if reached and not batches:
                    break
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(
                        f"reading {self.topic} partitions {wanted} took over "
                        f"{self.read_timeout_s:g} s"
                    )
        finally:
            await consumer.stop()
        return [e for p in wanted for e in by_partition[p]]

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()
