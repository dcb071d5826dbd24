"""The shared delivery log: the part of the delivery log every worker of a group can read.

A worker's own log (``FileDeliveryLog``) lives on its disk, so what it says ends with that
disk and stays with that worker at a rebalance. The shared log holds the same entries,
partitioned like the alerts topic (an alert's entries go to the partition of its
``routing_key``), so the worker that gains alert partition *p* reads partition *p* of the
shared log and knows what was accepted, sent and dead-lettered there, whoever did it.

``SharedLog`` is the contract; ``TopicDeliveryLog`` (``alerting.deliverylog.topic``) keeps it
in a compacted Kafka topic, ``MemorySharedLog`` in lists (tests: several dispatchers sharing
one instance behave like several workers sharing the topic).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import orjson
from aiokafka.partitioner import DefaultPartitioner

from alerting.deliverylog.base import LogEntry

_PARTITIONER = DefaultPartitioner()  # the producers' key -> partition (murmur2)


def partition_for(key: bytes, partitions: int) -> int:
    """The partition a Kafka producer picks for ``key`` among ``partitions``."""
    everything = list(range(partitions))
    return int(_PARTITIONER(key, everything, everything))


class SharedLog(Protocol):
    """Append-only entries in ``partitions`` partitions, readable by every worker."""

    partitions: int

    async def append(self, partition: int, key: bytes, entry: LogEntry) -> None:
        """Store one entry in ``partition``; durable (acknowledged by the store) when it
        returns. ``key`` names the fact (entries with one key say the same thing)."""
        ...

    async def read(self, partitions: Iterable[int]) -> list[LogEntry]:
        """Every entry of those partitions, oldest first within each partition."""
        ...

    async def close(self) -> None: ...


class MemorySharedLog:
    """In-process shared log: one instance shared by several dispatchers."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.records: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(partitions)}

    async def append(self, partition: int, key: bytes, entry: LogEntry) -> None:
        self.records[partition].append((key, orjson.dumps(entry)))

    async def read(self, partitions: Iterable[int]) -> list[LogEntry]:
        return [orjson.loads(v) for p in sorted(set(partitions)) for _, v in self.records[p]]

    async def close(self) -> None:
        pass
