"""``UsageLoop``: the hot path, an aiokafka consumer-group loop over whole batches.

Each usage event crosses Kafka once inside the worker. Per batch (``getmany``): decode and
validate, dedupe, price, build rows, feed the detector, check per-request limits
(:class:`streams.hot.batch.BatchBuilder`); then write ClickHouse, send one budget delta per
(budget, batch) and the batch's alerts, and only then commit the batch's offsets. Building
batch *n+1* overlaps writing batch *n* (chDB inserts release the GIL); writes, sends and
commits stay in batch order.

Rebalances: a revoked partition's in-flight batch is finished and committed before the
partition goes (the listener waits for it); an assigned partition's dedupe window and the rows
a crash left past its committed offset are read from ClickHouse before its first record is
processed. A batch fetched across a rebalance is dropped and fetched again.

A restarted embedded broker is empty: its topics are gone and its offsets start at 0 again.
The loop notices it on the next assignment or on the first record whose offset goes back
(whichever comes first) and, before processing anything from the new broker, calls
``refresh_epoch`` (the worker recreates its topics there and reads or writes the new usage
epoch, ``streams.epoch``): rows and budget deltas from then on carry the new epoch, so their
positions cannot be taken for the old broker's (docs/exactly-once.md). Where the same broker
serves a partition's offsets again (Tansu after such a restart), the records from there on
are counted in a fork: a fresh epoch id of this worker's, so a position names one record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from tenacity import AsyncRetrying, retry_if_exception_type, stop_never, wait_exponential

from streams import faults, topics
from streams.budgets.delta import encode_delta
from streams.hot.batch import Batch, BatchBuilder
from streams.hot.writer import UsageWriter
from streams.ingest import dead_letter_message

log = logging.getLogger("spendwatch.hot")
_T = TypeVar("_T")

_EPOCH_US = datetime(1970, 1, 1, tzinfo=UTC)
# aiokafka retries a commit for as long as the error is retriable. A restarted embedded broker
# answers UnknownTopicOrPartition (retriable) for the old topics until they are recreated,
# which the loop does only after the batch in flight is finished: without a bound the loop
# would wait for itself. A commit that gives up is a commit that failed (the next owner
# replays the batch and finds it stored), so bounding it changes no count.
COMMIT_TIMEOUT_S = 10.0
# One attempt to send a batch's deltas and alerts; past it the attempt fails and the next one
# goes through a new producer (see ``UsageLoop._replace_producer``).
SEND_TIMEOUT_S = 30.0


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(slots=True)
class LoopStats:
    """Counters for /health and the benchmarks (read, don't write)."""

    batches: int = 0
    records: int = 0
    rows: int = 0
    letters: int = 0
    repeats: int = 0
    replayed: int = 0
    deltas: int = 0
    alerts: int = 0
    commit_failures: int = 0
    epochs: int = 1  # usage epochs seen (a restarted embedded broker starts a new one)
    forks: int = 0  # of which started here because the broker served an offset again
    producers: int = 0  # producers replaced after a failed send or a new broker epoch
    last_batch_at: float | None = None
    lag: dict[int, int] = field(default_factory=dict)
    assigned: list[int] = field(default_factory=list)
    # Seconds spent per stage: CPU of the loop's thread for the stages it runs (decode,
    # build), wall time for those that wait on ClickHouse or the broker (write, send, commit),
    # for fetching a batch (fetch) and for the loop waiting on the batch in flight (wait).
    seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(
            ("fetch", "decode", "build", "wait", "write", "send", "commit"), 0.0
        )
    )


class UsageLoop:
    """Runs the hot path until :meth:`stop`; :meth:`run` raises if it cannot go on."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        group_id: str,
        builder: BatchBuilder,
        writer: UsageWriter,
        producer: AIOKafkaProducer,
        max_records: int,
        fetch_max_wait_ms: int,
        session_timeout_ms: int = 10_000,
        max_poll_interval_ms: int = 3_600_000,
        clock_us: Callable[[], int] = now_us,
        refresh_epoch: Callable[[], Awaitable[str]] | None = None,
        on_epoch: Callable[[str], Awaitable[None]] | None = None,
        new_producer: Callable[[], Awaitable[AIOKafkaProducer]] | None = None,
    ) -> None:
        self.builder = builder
        self.refresh_epoch = refresh_epoch
        self.on_epoch = on_epoch
        self._next: dict[int, int] = {}  # next offset expected per partition
        # the epoch read from the broker, when the positions are counted in a fork of it
        self._broker_epoch: str | None = None
        self.writer = writer
        self.producer = producer  # replaced by ``new_producer()`` after a failed send
        self.new_producer = new_producer
        self._renew_producer = False
        self._closing: set[asyncio.Future[Any]] = set()  # left to finish off the hot path
        self.max_records = max_records
        self.clock_us = clock_us
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=fetch_max_wait_ms,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(500, session_timeout_ms // 5),
            max_poll_interval_ms=max_poll_interval_ms,
        )
        self.stats = LoopStats()
        self._lock = asyncio.Lock()
        self._inflight: asyncio.Task[None] | None = None
        self._generation = 0
        self._stopping = False
        self.ready = asyncio.Event()  # set once partitions are assigned and prepared
        self.stopped = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Consume until :meth:`stop`. Errors nothing can recover from propagate (the worker
        then stops with the reason, rather than run half-dead)."""
        await self.consumer.start()
        self.consumer.subscribe([topics.USAGE], listener=_Listener(self))
        try:
            while not self._stopping:
                generation = self._generation
                fetch_started = time.perf_counter()
                fetched = await self.consumer.getmany(timeout_ms=100, max_records=self.max_records)
                if not fetched:
                    await self._settle()
                    continue
                async with self._lock:
                    if self._stopping:
                        break
                    if generation != self._generation:
                        # A rebalance happened while fetching: fetch these records again
                        # with the state of the new assignment (or not at all if revoked).
                        assigned = self.consumer.assignment()
                        for tp, records in fetched.items():
                            if tp in assigned and records:
                                self.consumer.seek(tp, records[0].offset)
                        continue
                    if self._went_back(fetched):
                        # offsets went back: the broker lost its topics (an embedded broker
                        # restarted): fetch again once the new epoch is known. Or the same
                        # broker serves offsets it already served: count these records in a
                        # fresh epoch (what was counted already is found stored by event id).
                        await self._settle()
                        if await self._new_epoch():
                            for tp, records in fetched.items():
                                if records:
                                    self.consumer.seek(tp, records[0].offset)
                            continue
                        self._fork_epoch("offsets went back on the same broker")
                    self.stats.seconds["fetch"] += time.perf_counter() - fetch_started
                    for i, run in enumerate(_increasing_runs(fetched)):
                        if i:
                            await self._settle()
                            self._fork_epoch("a fetch repeated offsets")
                        for tp, records in run.items():
                            self._next[tp.partition] = records[-1].offset + 1
                        await self._process([r for rs in run.values() for r in rs])
            await self._settle()
        finally:
            await self.consumer.stop()
            self.stopped.set()

    async def stop(self) -> None:
        self._stopping = True

    def _went_back(self, fetched: dict[TopicPartition, list[Any]]) -> bool:
        return any(
            records and records[0].offset < self._next.get(tp.partition, 0)
            for tp, records in fetched.items()
        )

    async def _new_epoch(self) -> bool:
        """Adopt the broker's current usage epoch (recreating the topics of a fresh broker)
        before anything more is processed; retried until the broker answers. Whether it
        changed."""
        self._next.clear()
        if self.refresh_epoch is None:
            return False
        async for attempt in _until_done("read the usage epoch", 0.5, 5.0):
            with attempt:
                epoch = await self.refresh_epoch()
        if epoch == (self._broker_epoch or self.builder.epoch):
            return False
        log.warning(
            "the broker's usage epoch changed (%s -> %s): the broker restarted empty; "
            "positions from now on are in the new epoch",
            self._broker_epoch or self.builder.epoch,
            epoch,
        )
        self._broker_epoch = epoch
        self.builder.epoch = epoch
        self.builder.replay.clear()  # positions of the old epoch: nothing to replay here
        self.stats.epochs += 1
        self._renew_producer = True  # its metadata is the old broker's
        if self.on_epoch is not None:
            await self.on_epoch(epoch)  # the batch before it is settled: see its docstring
        return True

    def _fork_epoch(self, why: str) -> None:
        """Count positions from now on in a fresh epoch of this worker's own: the broker
        served an offset of a partition again (Tansu, restarted empty, gives records the
        offsets of others while clients from before the restart still send). A position
        ``(epoch, partition, offset)`` must name one record, or a ledger would skip the second
        record as counted (docs/exactly-once.md)."""
        if self._broker_epoch is None:
            self._broker_epoch = self.builder.epoch
        fork = uuid.uuid4().hex[:16]
        log.warning(
            "%s: positions from now on are in the usage epoch %s (was %s)",
            why,
            fork,
            self.builder.epoch,
        )
        self.builder.epoch = fork
        self.builder.replay.clear()  # positions of the old epoch: nothing to replay here
        self.stats.epochs += 1
        self.stats.forks += 1

    async def _settle(self) -> None:
        """Wait for the batch in flight (written, sent, committed)."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    # -- one batch -------------------------------------------------------------------------
    async def _process(self, records: list[Any]) -> None:
        builder = self.builder
        seconds = self.stats.seconds
        started = time.thread_time()
        decoded = builder.decode(records)
        decoded_at = time.thread_time()
        seconds["decode"] += decoded_at - started
        unsure = builder.unsure(decoded)
        existing = await self.writer.lookup(unsure) if unsure else None
        resumed = time.thread_time()
        batch = builder.build(decoded, self.clock_us(), existing)
        seconds["build"] += time.thread_time() - resumed
        waited = time.perf_counter()
        await self._settle()  # batch n-1 is written, sent and committed before n starts
        seconds["wait"] += time.perf_counter() - waited
        self._inflight = asyncio.create_task(self._finish(batch), name="usage-batch")

    async def _finish(self, batch: Batch) -> None:
        seconds = self.stats.seconds
        started = time.perf_counter()
        refused = await self.writer.write(batch)
        written = time.perf_counter()
        seconds["write"] += written - started
        seconds.update({f"write.{k}": v for k, v in self.writer.seconds.items()})
        faults.point("hot.after_write")
        if refused:
            rows = batch.rows
            for partition, offset, key in zip(
                rows.partitions, rows.offsets, rows.keys, strict=True
            ):
                if (partition, offset) in refused:
                    window = self.builder.stored.partitions.get(partition)
                    if window is not None:
                        window.ids.discard(key)
        deltas = [d for b in batch.deltas.values() for d in b.build(batch.epoch, refused)]
        await self._send(batch, deltas)
        sent = time.perf_counter()
        seconds["send"] += sent - written
        faults.point("hot.after_send")
        await self._commit(batch)
        seconds["commit"] += time.perf_counter() - sent
        stats = self.stats
        stats.batches += 1
        stats.records += batch.records
        stats.rows += len(batch.rows) - len(refused)
        stats.letters += len(batch.letters) + len(refused)
        stats.repeats += batch.repeats
        stats.replayed += batch.replayed
        stats.deltas += len(deltas)
        stats.alerts += len(batch.alerts)
        stats.last_batch_at = time.monotonic()

    async def _send(self, batch: Batch, deltas: list[Any]) -> None:
        """Deltas, alerts, dead letters (and the optional priced export), acknowledged by the
        broker; resent whole on failure (the ledger counts a position once, alert ids are
        deterministic, so a resend changes nothing)."""
        now = datetime.now(UTC)
        messages: list[tuple[str, bytes | None, bytes]] = [
            (topics.BUDGET_DELTAS, d.budget.encode(), encode_delta(d)) for d in deltas
        ]
        messages += [(topics.ALERTS, a.routing_key, a.to_json()) for a in batch.alerts]
        messages += [
            (topics.DEADLETTER, None, dead_letter_message(letter, now)) for letter in batch.letters
        ]
        messages += [(topics.PRICED, key, value) for key, value in batch.priced]
        if not messages:
            return
        retrying = _until_done(
            "send a batch's deltas and alerts",
            0.2,
            10.0,
            retry_if_exception_type((KafkaError, TimeoutError)),
        )
        async for attempt in retrying:
            with attempt:
                if self._renew_producer and self.new_producer is not None:
                    await self._replace_producer()
                try:
                    await self._within(self._send_once(messages), "a send")
                except (KafkaError, TimeoutError):
                    self._renew_producer = True
                    raise

    async def _send_once(self, messages: list[tuple[str, bytes | None, bytes]]) -> None:
        futures = []
        for topic, key, value in messages:
            futures.append(await self.producer.send(topic, value, key=key))
            if len(futures) == 1:
                faults.point("hot.mid_send")
        await asyncio.gather(*futures)

    async def _replace_producer(self) -> None:
        """A new producer for the next attempt. After a failed send, or a new broker epoch,
        the old one may hold metadata of topics the broker no longer has, or a sender that
        stopped answering (seen on a restarted Tansu: a send that never completes)."""
        assert self.new_producer is not None
        # raises while the broker is unreachable, or does not answer: retried
        fresh = await self._within(self.new_producer(), "starting a producer")
        old, self.producer = self.producer, fresh
        self._renew_producer = False
        self.stats.producers += 1
        log.info("the hot path sends through a new producer from now on")
        # stopping waits for what the old one still holds: not on the hot path
        self._abandon(asyncio.create_task(_stop_quietly(old), name="stop-old-producer"))

    async def _within(self, work: Awaitable[_T], what: str) -> _T:
        """``work``'s result, or ``TimeoutError`` after ``SEND_TIMEOUT_S``. Unlike
        ``asyncio.wait_for`` it does not wait for a timed-out ``work`` to finish cancelling:
        a client stuck on a broken broker may never do so."""
        task = asyncio.ensure_future(work)
        done, _ = await asyncio.wait({task}, timeout=SEND_TIMEOUT_S)
        if not done:
            task.cancel()
            self._abandon(task)
            raise TimeoutError(f"{what} took more than {SEND_TIMEOUT_S:.0f} s")
        return task.result()

    def _abandon(self, task: asyncio.Future[Any]) -> None:
        """Let ``task`` finish (or not) off the hot path, its outcome dropped."""
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _commit(self, batch: Batch) -> None:
        offsets = {
            TopicPartition(topics.USAGE, p): OffsetAndMetadata(offset, "")
            for p, offset in batch.commit.items()
        }
        try:
            await asyncio.wait_for(self.consumer.commit(offsets), COMMIT_TIMEOUT_S)
        except (CommitFailedError, IllegalStateError, KafkaError, TimeoutError) as exc:
            # The partitions moved on: their next owner re-reads these records and finds
            # them stored (and their deltas counted). Nothing is lost or doubled.
            self.stats.commit_failures += 1
            log.warning("offsets not committed (%s); the next owner replays them", exc)

    # -- rebalances --------------------------------------------------------------------------
    async def revoked(self, partitions: set[TopicPartition]) -> None:
        async with self._lock:
            self._generation += 1
            await self._settle()
            for tp in partitions:
                self.builder.stored.drop(tp.partition)
                if self.builder.detect is not None:
                    self.builder.detect.forget_partition(tp.partition)
            self.builder.replay = {
                k: v
                for k, v in self.builder.replay.items()
                if k[0] not in {tp.partition for tp in partitions}
            }
            self.stats.assigned = sorted(tp.partition for tp in self.consumer.assignment())

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        async with self._lock:
            self._generation += 1
            parts = sorted(tp.partition for tp in partitions)
            self.stats.assigned = sorted(tp.partition for tp in self.consumer.assignment())
            if not parts:
                self.ready.set()
                return
            # a rebalance may be the first sign of a fresh broker
            fresh = await self._new_epoch()
            count = len(self.consumer.partitions_for_topic(topics.USAGE) or ()) or len(parts)
            committed: dict[int, int] = {}
            for tp in partitions:
                offset = await self.consumer.committed(tp)
                committed[tp.partition] = offset if offset is not None else 0
                if fresh:
                    # the group may have been assigned before the topic was recreated: the
                    # consumer has no valid position there, so set it
                    self.consumer.seek(tp, committed[tp.partition])
            for tp in self.consumer.assignment():
                offset = committed.get(tp.partition)
                if offset is None:
                    offset = await self.consumer.committed(tp)
                self._next[tp.partition] = offset or 0
            stored = self.builder.stored
            horizon_us = self.clock_us() - stored.window_us
            started = time.monotonic()
            window = await self.writer.window(parts, count, horizon_us)
            replay = await self.writer.replay(self.builder.epoch, committed)
            for partition in parts:
                stored.reset(partition, horizon_us, window.get(partition, []))
            self.builder.replay.update(replay)
            log.info(
                "usage partitions %s assigned: %d stored ids in the dedupe window, %d rows "
                "past the committed offsets, read in %.2f s",
                parts,
                sum(len(v) for v in window.values()),
                len(replay),
                time.monotonic() - started,
            )
            self.ready.set()

    async def lag(self) -> dict[int, int]:
        """Records behind the end of each assigned partition (as of the last fetch)."""
        lag: dict[int, int] = {}
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = await self.consumer.position(tp)
            except (IllegalStateError, KafkaError):
                continue
            lag[tp.partition] = max(0, high - position)
        return lag


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.stop(), 30.0)


def _increasing_runs(
    fetched: dict[TopicPartition, list[Any]],
) -> list[dict[TopicPartition, list[Any]]]:
    """The fetch cut where a partition's offsets stop increasing: run *k* holds the *k*-th
    strictly increasing stretch of each partition (one run for a sane broker)."""
    if all(_increasing(records) for records in fetched.values()):  # the usual case
        run = {tp: records for tp, records in fetched.items() if records}
        return [run] if run else []
    runs: list[dict[TopicPartition, list[Any]]] = []
    for tp, records in fetched.items():
        k, last = 0, -1
        for record in records:
            if record.offset <= last:
                k += 1
            last = record.offset
            while len(runs) <= k:
                runs.append({})
            runs[k].setdefault(tp, []).append(record)
    return runs


def _increasing(records: list[Any]) -> bool:
    offsets = [r.offset for r in records]
    return all(map(operator.lt, offsets, offsets[1:]))


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: UsageLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.loop.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.loop.assigned(assigned)


def _until_done(what: str, initial_s: float, max_s: float, retry: Any = None) -> AsyncRetrying:
    """Retry forever with exponential backoff, a warning per failed attempt (``cannot
    {what} (attempt N, retrying): error``); ``retry`` narrows what is retried."""
    return AsyncRetrying(
        retry=retry or retry_if_exception_type(Exception),
        wait=wait_exponential(multiplier=initial_s, max=max_s),
        stop=stop_never,
        before_sleep=lambda s: log.warning(
            "cannot %s (attempt %d, retrying): %s",
            what,
            s.attempt_number,
            s.outcome.exception() if s.outcome else "?",
        ),
        reraise=True,
    )
