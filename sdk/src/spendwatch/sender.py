"""The background sender: a daemon thread running its own asyncio loop and aiokafka producer.

It takes batches from the :class:`~spendwatch.queue.EventQueue`, encodes them, sends them and
settles each batch: delivered events count as sent, events a retry can help (broker away,
timeout, leader change) go back to the front of the queue, events the broker refuses for good
count as failed. When the broker is unreachable at start or later, the producer is rebuilt
with capped exponential backoff; meanwhile events wait in the queue within its bound. The
callers never wait for any of this.

Delivery is at-least-once: an event whose acknowledgement is lost is sent again with the same
``event_id``, which the pipeline's sinks use as the idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from .backoff import Backoff
from .config import Settings
from .event import encode
from .queue import EventQueue, Item

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

log = logging.getLogger("spendwatch")

_SENDER_THREAD = "spendwatch-sender"
_IDLE_WAIT_S = 0.5  # re-check the queue at least this often even without a wake-up
_FIRST_BACKOFF_S = 0.05


class _QuietOutage(logging.Filter):
    """Keeps aiokafka's per-attempt connection errors from the sender thread out of the host's
    logs (one line per retry at ERROR while a broker is down); the SDK logs one warning per
    outage instead. Set the ``spendwatch`` logger to DEBUG to see them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not threading.current_thread().name.startswith(_SENDER_THREAD):
            return True
        return record.levelno >= logging.CRITICAL or log.isEnabledFor(logging.DEBUG)


_AIOKAFKA_LOGGERS = (
    "aiokafka",
    "aiokafka.conn",
    "aiokafka.cluster",
    "aiokafka.producer.producer",
    "aiokafka.producer.sender",
)
_quiet = _QuietOutage()
for _name in _AIOKAFKA_LOGGERS:
    logging.getLogger(_name).addFilter(_quiet)


def _retriable(exc: BaseException) -> bool:
    """True when sending again can succeed; KafkaTimeoutError is not flagged retriable by
    aiokafka but a timeout against an absent broker is exactly the case to retry."""
    # aiokafka is imported in the sender thread only, keeping ``import spendwatch`` light.
    from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

    if isinstance(exc, KafkaTimeoutError | KafkaConnectionError):
        return True
    if isinstance(exc, KafkaError):
        return bool(exc.retriable)
    return True


class Sender:
    """Owns the sender thread. ``start`` once; ``stop`` asks it to finish and joins it."""

    def __init__(self, settings: Settings, queue: EventQueue) -> None:
        self._settings = settings
        self._queue = queue
        self._key = settings.service.encode()
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_event: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name=_SENDER_THREAD, daemon=True)
        self.connected = False
        self._outage_reported = False

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Ask the thread to close the producer and exit; wait up to ``timeout_s``."""
        self._stopping.set()
        self._wake()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(max(timeout_s, 0.0))

    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- sender thread -------------------------------------------------------------------

    def _wake(self) -> None:
        loop, event = self._loop, self._wake_event
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed in between
                loop.call_soon_threadsafe(event.set)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except Exception:  # never let the thread die silently
            log.exception("spendwatch sender stopped unexpectedly")
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self) -> None:
        self._wake_event = asyncio.Event()
        self._queue.wake = self._wake
        backoff = Backoff(_FIRST_BACKOFF_S, self._settings.retry_backoff_max_ms / 1000)
        while not self._stopping.is_set():
            producer = await self._connect()
            if producer is None:
                await self._sleep(backoff.next_s())
                continue
            backoff.reset()
            self.connected = True
            if self._outage_reported:
                self._outage_reported = False
                log.warning(
                    "spendwatch: broker %s reachable again", self._settings.bootstrap_servers
                )
            try:
                await self._pump(producer)
            finally:
                self.connected = False
                await self._close(producer)

    def _producer(self) -> AIOKafkaProducer:
        from aiokafka import AIOKafkaProducer

        s = self._settings
        options: dict[str, Any] = {
            "bootstrap_servers": s.bootstrap_servers,
            "client_id": f"spendwatch-sdk-{s.service}",
            "acks": s.acks,
            "linger_ms": s.linger_ms,
            "compression_type": s.compression_type,
            "request_timeout_ms": s.request_timeout_ms,
            # One record batch carries up to this many bytes (about 600 LLM events): fewer,
            # larger produce requests keep up with bursts at a small CPU (and GIL) cost.
            "max_batch_size": 256 * 1024,
            # Tansu and many managed brokers refuse idempotent producers; the event_id makes
            # redelivery harmless instead.
            "enable_idempotence": False,
        }
        options.update(s.producer_options)
        return AIOKafkaProducer(**options)

    async def _connect(self) -> AIOKafkaProducer | None:
        try:
            producer = self._producer()
        except Exception:
            log.exception("spendwatch: cannot build the Kafka producer")
            return None
        try:
            await producer.start()
        except Exception as exc:
            self._report_outage(exc)
            await self._close(producer)
            return None
        return producer

    def _report_outage(self, exc: BaseException) -> None:
        if not self._outage_reported:
            self._outage_reported = True
            log.warning(
                "spendwatch: broker %s unreachable (%r); events wait in the queue (%d max)",
                self._settings.bootstrap_servers,
                exc,
                self._settings.queue_size,
            )

    async def _close(self, producer: AIOKafkaProducer) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), timeout=2.0)

    async def _sleep(self, delay_s: float) -> None:
        event = self._wake_event
        assert event is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping_wait(event), timeout=delay_s)

    async def _stopping_wait(self, event: asyncio.Event) -> None:
        # The wake event fires for new events too; only a stop should cut a backoff short.
        while not self._stopping.is_set():
            event.clear()
            await event.wait()

    async def _pump(self, producer: AIOKafkaProducer) -> None:
        """Send batches until stopped (queue drained) or the broker stops answering."""
        queue = self._queue
        event = self._wake_event
        assert event is not None
        while True:
            batch = queue.take(self._settings.batch_events)
            if not batch:
                if self._stopping.is_set():
                    return
                queue.sleeping = True
                if queue.empty():
                    event.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(event.wait(), timeout=_IDLE_WAIT_S)
                queue.sleeping = False
                continue
            if not await self._send_batch(producer, batch):
                return  # rebuild the producer

    async def _partition(self, producer: AIOKafkaProducer, key: bytes) -> int:
        """The partition of a service's key, as the producer's partitioner would pick it
        (one hash per service per batch instead of one per event)."""
        from aiokafka.partitioner import DefaultPartitioner

        partitions = sorted(await producer.partitions_for(self._settings.topic))
        partitioner = self._settings.producer_options.get("partitioner") or DefaultPartitioner()
        partition: int = partitioner(key, partitions, partitions)
        return partition

    def _encode_by_key(self, batch: list[Item]) -> tuple[dict[bytes, list[Item]], int]:
        """Encode fresh events (a retried one keeps its bytes and event_id) and group the
        batch by message key: the event's service (``record(service=...)`` may override the
        configured one), so every service's events stay in one partition, in order.

        Returns the groups and the number of events that could not be encoded (a forwarded
        dict holding something JSON cannot carry): those count as failed, and the sender
        goes on with the rest.
        """
        random = os.urandom(16 * len(batch))  # event ids for the whole batch in one syscall
        groups: dict[bytes, list[Item]] = {}
        failed = 0
        for position, item in enumerate(batch):
            if isinstance(item[1], dict):
                service = item[1].get("service")
                offset = 16 * position
                try:
                    encoded = encode(item[1], random[offset : offset + 16])
                except (TypeError, ValueError, KeyError) as exc:
                    log.warning("spendwatch: event refused, cannot encode it: %r", exc)
                    failed += 1
                    continue
                item.append(service.encode() if isinstance(service, str) else self._key)
                item[1] = encoded
            key = item[2] if len(item) > 2 else self._key
            groups.setdefault(key, []).append(item)
        return groups, failed

    async def _send_batch(self, producer: AIOKafkaProducer, batch: list[Item]) -> bool:
        """Send one batch of events and settle it; False when the producer should be rebuilt.

        Events go out as Kafka record batches (``create_batch`` / ``send_batch``, each at most
        ``max_batch_size`` bytes): per event that is one append, not one ``send()`` with its
        metadata check and key hash, which keeps the sender's share of the GIL small.
        """
        topic = self._settings.topic
        groups, failed = self._encode_by_key(batch)
        try:
            partitions = {key: await self._partition(producer, key) for key in groups}
        except Exception as exc:  # metadata unavailable: the broker is away
            self._report_outage(exc)
            self._queue.settle(0, [item for items in groups.values() for item in items], failed)
            return False
        pending: list[tuple[list[Item], asyncio.Future[Any]]] = []
        retry_rest: list[Item] = []
        healthy = True
        remaining = [(key, items) for key, items in groups.items()]
        while remaining and healthy:
            key, items = remaining.pop(0)
            builder = producer.create_batch()
            members: list[Item] = []
            position = 0
            while position < len(items):
                if builder.append(key=key, value=items[position][1], timestamp=None) is not None:
                    members.append(items[position])
                    position += 1
                    if position < len(items):
                        continue
                # The builder is full (this item goes into the next one) or the group is done.
                try:
                    future = await producer.send_batch(builder, topic, partition=partitions[key])
                    pending.append((members, future))
                except Exception as exc:
                    if not _retriable(exc):
                        log.warning("spendwatch: %d events refused: %r", len(members), exc)
                        failed += len(members)
                    else:
                        self._report_outage(exc)
                        retry_rest = members + items[position:]
                        for _, rest in remaining:
                            retry_rest += rest
                        healthy = False
                        break
                builder = producer.create_batch()
                members = []
        results = await asyncio.gather(*(future for _, future in pending), return_exceptions=True)
        sent = 0
        retry: list[Item] = []
        for (members, _), result in zip(pending, results, strict=True):
            if not isinstance(result, BaseException):
                sent += len(members)
            elif _retriable(result):
                retry.extend(members)
                healthy = False
                self._report_outage(result)
            else:
                log.warning("spendwatch: %d events refused: %r", len(members), result)
                failed += len(members)
        self._queue.settle(sent, retry + retry_rest, failed)
        return healthy
