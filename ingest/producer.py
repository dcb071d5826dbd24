"""Producing to ``spendwatch.usage.v1`` with an acknowledgement, or ``BrokerUnavailable``.

A request is answered 200 only after the broker acknowledged every one of its events
(``acks`` from the settings). If the broker cannot be reached, refuses, or does not answer
within ``produce_timeout_s``, the request gets 503 and the client sends it again later; events
of that request that did reach the broker are sent twice then, and the pipeline drops the
duplicates by ``event_id``. Never accept and drop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams import topics

from .otlp import Produced

log = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    """The events were not acknowledged by the broker (the request may be retried)."""


class UsageProducer:
    """One aiokafka producer, started on first use and again after it failed to start."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        acks: int | str = "all",
        timeout_s: float = 10.0,
        topic: str = topics.USAGE,
        partitions: int = 1,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.acks = acks
        self.timeout_s = timeout_s
        self.topic = topic
        self.partitions = partitions
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._producer is not None

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is not None:
                return self._producer
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                acks=self.acks,
                linger_ms=5,
                request_timeout_ms=max(int(self.timeout_s * 1000), 1000),
                enable_idempotence=False,  # Tansu refuses idempotent producers (DESIGN.md)
            )
            try:
                await producer.start()
                await self._ensure_topic()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
            return producer

    async def _ensure_topic(self) -> None:
        # Auto-created topics take the broker's default partition count; create it as the
        # worker would (idempotent) so that the worker finds the layout it expects.
        from streams.broker import create_topics

        try:
            await create_topics(self.bootstrap_servers, [self.topic], self.partitions)
        except KafkaError as exc:
            log.warning("could not check or create topic %s: %r", self.topic, exc)

    async def produce(self, events: Sequence[Produced]) -> None:
        """Send ``events`` and wait for every acknowledgement; ``BrokerUnavailable`` if that
        did not happen within ``timeout_s``."""
        if not events:
            return
        try:
            await asyncio.wait_for(self._produce(events), self.timeout_s)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}"[:300]) from exc

    async def _produce(self, events: Sequence[Produced]) -> None:
        producer = await self._started()
        futures = [
            await producer.send(self.topic, value=event.value, key=event.key) for event in events
        ]
        await asyncio.gather(*futures)

    async def stop(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
