"""``UsageWriter``: the hot path's ClickHouse writes and reads, one batch at a time.

Rows go in as Arrow blocks (:mod:`streams.hot.arrow`): columns built from the decoded events
(the values they were validated and priced with, whatever the raw bytes spelled) plus the
priced fields and source positions, in the writer's thread; ClickHouse takes a columnar block
for about half the CPU per row of the same rows as ``JSONEachRow``
(bench/bench_insert_formats.py), and the insert runs outside the GIL.

Guarantees the hot path relies on (docs/exactly-once.md):

* Rows of one partition are stored in offset order and each insert is one part: a batch is
  split into runs of one month (the table's partition key), inserted in order.
* Transient failures (connection, 5xx, overload) are retried with capped backoff for as long
  as they last - the caller does not consume meanwhile (backpressure). A retry sends the same
  block with the same deduplication token (derived from its source positions; the tables keep
  the tokens of their last blocks, migration 006), so a lost reply is not written twice and a
  rollup view that failed after ``usage_events`` took the block gets it on the retry.
* A block ClickHouse refuses as data is split in halves until each refused row stands alone;
  those rows are dead-lettered with ClickHouse's reason and reported to the caller, which
  leaves them out of the budget deltas. Any other failure raises.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final, NamedTuple

from clickhouse_connect.driver import Client
from tenacity import AsyncRetrying, retry_if_exception, stop_never, wait_exponential

from sinks import rows as row_specs
from sinks.errors import DATA, TRANSIENT, SinkFatalError, classify
from streams.hot import arrow
from streams.hot.arrow import usage_block
from streams.hot.batch import Batch, Letter, Rows, Stored
from streams.hot.dedupe import id_key

log = logging.getLogger("spendwatch.sink.usage")

INSERT_SETTINGS: Final = {
    "date_time_input_format": "best_effort",
    "input_format_skip_unknown_fields": 0,
    "insert_deduplicate": 1,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
    # A block never holds an event twice (the hot path drops repeats before it), so the
    # insert-time collapse of ReplacingMergeTree has nothing to do: skip it. And one block is
    # parsed by one thread: the loop's own thread is busy building the next batch.
    # (bench/bench_insert_formats.py: about a fifth less ClickHouse CPU per row.)
    "optimize_on_insert": 0,
    "input_format_parallel_parsing": 0,
}
LOOKUP_CHUNK: Final = 2000
INSERT_REFUSED: Final = "insert_refused"

Fault = Callable[[str], None]  # called before each write with the table; may raise


_MONTHS: dict[int, int] = {}  # day index -> YYYYMM


def _month_of(ts_us: int) -> int:
    """YYYYMM of a UTC time in µs (the table's partition key)."""
    day = ts_us // 86_400_000_000
    month = _MONTHS.get(day)
    if month is None:
        when = datetime.fromtimestamp(day * 86_400, UTC)
        month = _MONTHS[day] = when.year * 100 + when.month
    return month


class Block(NamedTuple):
    """An insert as sent: what a fault hook may replay (as a server would have applied it)."""

    table: str
    columns: Sequence[str] | None
    body: bytes
    token: str
    fmt: str


def _transient(exc: BaseException) -> bool:
    return classify(exc) == TRANSIENT


class UsageWriter:
    """Writes and reads ``usage_events`` (and ``deadletter``) for the hot path.

    Blocking client calls run in a worker thread; the writer is used by one task at a time.
    """

    def __init__(
        self,
        client: Client,
        *,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 30.0,
        fault: Fault | None = None,
        on_retry: Callable[[BaseException], Awaitable[None] | None] | None = None,
    ) -> None:
        self.client = client
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.fault = fault
        self.on_retry = on_retry
        self.rows_written = 0
        self.rows_refused = 0
        self.retries = 0
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self.last_block: Block | None = None
        # wall seconds in the writer's thread: building Arrow blocks, ClickHouse inserts
        self.seconds = {"arrow": 0.0, "insert": 0.0}

    # -- writes -------------------------------------------------------------------------------
    async def write(self, batch: Batch) -> set[tuple[int, int]]:
        """Store the batch's rows and dead letters; the positions ClickHouse refused."""
        rows = batch.rows
        refused: list[tuple[int, str]] = []
        start, month = 0, None
        for i, ts_us in enumerate(rows.ts_us):
            m = _month_of(ts_us)
            if m != month:
                if i > start:
                    refused += await self._write_run(batch.epoch, rows, range(start, i))
                start, month = i, m
        if len(rows) > start:
            refused += await self._write_run(batch.epoch, rows, range(start, len(rows)))
        letters = list(batch.letters)
        for i, reason in refused:
            letters.append(
                Letter(
                    f"clickhouse:{row_specs.USAGE_EVENTS.table}",
                    rows.partitions[i],
                    rows.offsets[i],
                    None,
                    INSERT_REFUSED,
                    reason,
                    rows.body(i),
                )
            )
        if letters:
            await self.write_letters(letters)
        self.rows_refused += len(refused)
        return {(rows.partitions[i], rows.offsets[i]) for i, _ in refused}

    async def _write_run(self, epoch: str, rows: Rows, run: Sequence[int]) -> list[tuple[int, str]]:
        refused: list[tuple[int, str]] = []
        stack: list[Sequence[int]] = [run]
        while stack:
            piece = stack.pop()
            try:
                await self._retrying(partial(self._insert_rows, epoch, rows, piece))
            except Exception as exc:
                if classify(exc) != DATA:
                    raise SinkFatalError(f"usage_events: {type(exc).__name__}: {exc}") from exc
                if len(piece) == 1:
                    reason = f"{type(exc).__name__}: {exc}"[:2000]
                    log.warning("usage row refused by ClickHouse: %s", reason)
                    refused.append((piece[0], reason))
                else:
                    mid = len(piece) // 2
                    stack.append(piece[mid:])  # the first half goes first: offset order
                    stack.append(piece[:mid])
        return refused

    async def _retrying(self, call: Callable[[], Awaitable[None]]) -> None:
        retrying = AsyncRetrying(
            retry=retry_if_exception(_transient),
            wait=wait_exponential(multiplier=self.retry_initial_s, max=self.retry_max_s),
            stop=stop_never,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await call()
        self.consecutive_failures = 0

    async def _before_sleep(self, state: Any) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self.retries += 1
        self.consecutive_failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:500]
        log.warning(
            "ClickHouse write failed (attempt %d, retrying): %s",
            state.attempt_number,
            self.last_error,
        )
        if self.on_retry is not None and exc is not None:
            result = self.on_retry(exc)
            if result is not None:
                await result

    async def _insert_rows(self, epoch: str, rows: Rows, piece: Sequence[int]) -> None:
        """Insert one block; a retry sends the same rows with the same token, so ClickHouse
        keeps each table's part once: a lost reply is not written twice, and a rollup view
        that failed after the table took the block gets it on the retry."""
        first, last = piece[0], piece[-1]
        token = (
            f"{epoch}:{rows.partitions[first]}:{rows.offsets[first]}:"
            f"{rows.partitions[last]}:{rows.offsets[last]}:{len(piece)}"
        )
        # The block is built here, on the loop's thread: built in the writer's thread, each
        # call where Arrow lets the GIL go would wait for the loop's thread to give it back
        # (up to the interpreter's switch interval), which made building it ten times slower.
        started = time.perf_counter()
        columns, body = usage_block(rows, piece)
        built = time.perf_counter()
        await asyncio.to_thread(
            self.insert_block, "usage_events", body, token, columns, arrow.FORMAT
        )
        self.seconds["arrow"] += built - started
        self.seconds["insert"] += time.perf_counter() - built
        self.rows_written += len(piece)

    def insert_block(
        self,
        table: str,
        body: bytes,
        token: str,
        columns: Sequence[str] | None = None,
        fmt: str = "JSONEachRow",
    ) -> None:
        """One block, deduplicated by ``token`` (blocking)."""
        self.last_block = Block(table, columns, body, token, fmt)  # what a fault may replay
        if self.fault is not None:
            self.fault(table)
        self.client.raw_insert(
            table,
            columns,
            insert_block=body,
            fmt=fmt,
            settings={**INSERT_SETTINGS, "insert_deduplication_token": token},
        )

    async def write_letters(self, letters: Sequence[Letter]) -> None:
        """Dead letters, with the original bytes unchanged (replay-safe: the table collapses a
        letter written twice)."""
        now = datetime.now(UTC)
        data = [
            row_specs.deadletter_row(
                received_at=now,
                topic=letter.topic,
                partition=letter.partition,
                offset=letter.offset,
                reason_code=letter.reason_code,
                reason=letter.reason,
                original=letter.original,
                key=letter.key.decode("utf-8", "replace") if letter.key is not None else None,
            )
            for letter in letters
        ]

        async def insert() -> None:
            await asyncio.to_thread(self._insert_letters, data)

        await self._retrying(insert)

    def _insert_letters(self, data: list[tuple[Any, ...]]) -> None:
        if self.fault is not None:
            self.fault("deadletter")
        self.client.insert(
            row_specs.DEADLETTER.table, data, column_names=list(row_specs.DEADLETTER.columns)
        )

    # -- reads --------------------------------------------------------------------------------
    async def lookup(self, event_ids: Sequence[str]) -> dict[str, Stored]:
        """Where each of ``event_ids`` was stored, for those ClickHouse holds."""
        return await asyncio.to_thread(self._lookup, list(event_ids))

    def _lookup(self, event_ids: list[str]) -> dict[str, Stored]:
        found: dict[str, Stored] = {}
        for start in range(0, len(event_ids), LOOKUP_CHUNK):
            chunk = event_ids[start : start + LOOKUP_CHUNK]
            result = self.client.query(
                "SELECT toString(event_id), kafka_epoch, kafka_partition, kafka_offset, "
                "toUnixTimestamp64Micro(ts), cost_nusd FROM usage_events FINAL "
                "WHERE event_id IN {ids:Array(UUID)}",
                parameters={"ids": chunk},
            )
            for eid, epoch, partition, offset, ts_us, cost in result.result_rows:
                found[str(eid)] = Stored(
                    str(epoch), int(partition), int(offset), int(ts_us), int(cost)
                )
        return found

    async def window(
        self, partitions: Sequence[int], count: int, horizon_us: int
    ) -> dict[int, list[tuple[int, int]]]:
        """``(ts_us, id key)`` of rows stored since ``horizon_us`` whose service maps to one
        of ``partitions`` (of ``count``) with Kafka's default partitioner."""
        return await asyncio.to_thread(self._window, list(partitions), count, horizon_us)

    def _window(
        self, partitions: list[int], count: int, horizon_us: int
    ) -> dict[int, list[tuple[int, int]]]:
        result = self.client.query(
            "SELECT kafkaMurmurHash(service) % {n:UInt32} AS p, toUnixTimestamp64Micro(ts), "
            "toString(event_id) FROM usage_events WHERE ts >= fromUnixTimestamp64Micro("
            "{h:Int64}, 'UTC') AND p IN {parts:Array(UInt32)}",
            parameters={"n": count, "h": horizon_us, "parts": partitions},
        )
        rows: dict[int, list[tuple[int, int]]] = {p: [] for p in partitions}
        for partition, ts_us, eid in result.result_rows:
            rows[int(partition)].append((int(ts_us), id_key(str(eid))))
        return rows

    async def replay(
        self, epoch: str, committed: dict[int, int]
    ) -> dict[tuple[int, int], tuple[int, Stored]]:
        """Rows of ``epoch`` stored at or past each partition's committed offset: what a crash
        between a write and its commit left; the replayed records find themselves here."""
        return await asyncio.to_thread(self._replay, epoch, dict(committed))

    def _replay(
        self, epoch: str, committed: dict[int, int]
    ) -> dict[tuple[int, int], tuple[int, Stored]]:
        found: dict[tuple[int, int], tuple[int, Stored]] = {}
        for partition, offset in committed.items():
            result = self.client.query(
                "SELECT kafka_offset, toString(event_id), toUnixTimestamp64Micro(ts), cost_nusd "
                "FROM usage_events FINAL WHERE kafka_epoch = {e:String} AND "
                "kafka_partition = {p:Int32} AND kafka_offset >= {o:Int64}",
                parameters={"e": epoch, "p": partition, "o": offset},
            )
            for off, eid, ts_us, cost in result.result_rows:
                stored = Stored(epoch, partition, int(off), int(ts_us), int(cost))
                found[(partition, int(off))] = (id_key(str(eid)), stored)
        return found
