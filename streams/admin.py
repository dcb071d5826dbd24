"""The worker owns its topics: create what is missing, check what exists, before any use.

Auto-created topics take the broker's default partition count (Tansu: 4; Kafka:
``num.partitions``), so the worker never relies on them: at start-up it creates every topic of
``streams.topics.SPECS`` that does not exist, with the configured partitions and settings, and
checks the others. A layout the design cannot use stops the start-up with a
:class:`TopicLayoutError` that names the topic, both counts and the fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from streams.topics import TopicSpec

log = logging.getLogger("spendwatch.admin")

_PROPAGATION_WAIT_S = 10.0


class TopicLayoutError(RuntimeError):
    """Existing topics the worker cannot use as they are; the message says how to fix it."""


async def topic_partitions(admin: AIOKafkaAdminClient, names: Iterable[str]) -> dict[str, int]:
    """Partition count of each topic in ``names`` that exists."""
    wanted = list(names)
    existing = set(await admin.list_topics())
    present = [n for n in wanted if n in existing]
    if not present:
        return {}
    counts: dict[str, int] = {}
    for item in await admin.describe_topics(present):
        if isinstance(item, dict) and not item.get("error_code"):
            counts[item["topic"]] = len(item.get("partitions") or ())
    return counts


def plan(specs: Iterable[TopicSpec], partitions: int, existing: dict[str, int]) -> list[NewTopic]:
    """Check the topics that exist against ``specs`` and return those to create.

    Raises :class:`TopicLayoutError` when topics of one co-partitioned group have different
    counts (existing ones among themselves, or with the configured count for those to create).
    """
    specs = list(specs)
    expected: dict[str, int] = {}
    groups: dict[str, list[TopicSpec]] = {}
    for spec in specs:
        expected[spec.name] = spec.partitions or partitions
        if spec.group:
            groups.setdefault(spec.group, []).append(spec)
    for members in groups.values():
        present = {s.name: existing[s.name] for s in members if s.name in existing}
        counts = set(present.values())
        if len(counts) > 1:
            listing = ", ".join(f"{name} has {n}" for name, n in sorted(present.items()))
            raise TopicLayoutError(
                f"topics {listing} partitions; they must have the same count, because the "
                "worker that holds a budget's ledger must also receive its overrides and "
                "alerts. Recreate them with one count (deleting them loses only in-flight "
                "budget deltas and alerts; ledgers are rebuilt from ClickHouse)."
            )
        if counts:
            (count,) = counts
            for spec in members:
                expected[spec.name] = count  # new members follow the existing ones
                if spec.name not in existing and count != partitions:
                    log.warning(
                        "creating %s with %d partitions like %s (not [kafka] partitions = %d)",
                        spec.name,
                        count,
                        ", ".join(sorted(present)),
                        partitions,
                    )
    for spec in specs:
        found = existing.get(spec.name)
        if found is not None and found != expected[spec.name]:
            log.info(
                "topic %s exists with %d partitions ([kafka] partitions = %d): using it as it is",
                spec.name,
                found,
                expected[spec.name],
            )
    return [
        NewTopic(
            name=spec.name,
            num_partitions=expected[spec.name],
            replication_factor=1,
            topic_configs=dict(spec.configs),
        )
        for spec in specs
        if spec.name not in existing
    ]


async def ensure_topics(
    bootstrap_servers: str,
    specs: Iterable[TopicSpec],
    partitions: int,
    *,
    replication_factor: int = 1,
    client_kwargs: dict[str, Any] | None = None,
) -> dict[str, int]:
    """Create the missing topics of ``specs`` and check the existing ones (see :func:`plan`).

    Returns every topic's partition count once the broker reports all of them. Idempotent and
    safe when several workers start at once.
    """
    specs = list(specs)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **(client_kwargs or {}))
    await admin.start()
    try:
        names = [s.name for s in specs]
        existing = await topic_partitions(admin, names)
        new = plan(specs, partitions, existing)
        for topic in new:
            topic.replication_factor = replication_factor
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was quicker
                await admin.create_topics(new)
            log.info(
                "created topics %s",
                ", ".join(f"{t.name} ({t.num_partitions})" for t in new),
            )
        deadline = asyncio.get_running_loop().time() + _PROPAGATION_WAIT_S
        while True:
            counts = await topic_partitions(admin, names)
            if len(counts) == len(names) and all(counts.values()):
                break
            if asyncio.get_running_loop().time() > deadline:
                missing = sorted(set(names) - set(counts))
                raise KafkaError(f"topics not visible after creation: {missing}")
            await asyncio.sleep(0.2)
        plan(specs, partitions, counts)  # a concurrent creator with another count
        return counts
    finally:
        await admin.close()
