"""ClickHouseSink failure handling, driven by a client that injects ClickHouse's own errors.

These are unit tests of the retry / split / backpressure logic; the real engine is exercised
in tests/integration/test_clickhouse_sink.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.binding import finalize_query
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

from sinks.batching import DeadLetter
from sinks.clickhouse import EXPIRED, INSERT_REFUSED, ClickHouseSink
from sinks.errors import SinkFatalError, SinkUnavailableError


class _Ctx:
    def __init__(self) -> None:
        self.req_block_size: int | None = None
        self.data: Any = None


class _Result:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.result_rows = rows


class FaultyClient:
    """Stores inserted rows; ``fail(rows)`` returns an exception to raise for an insert."""

    def __init__(self, fail: Callable[[list[tuple[Any, ...]]], Exception | None] | None = None):
        self.fail = fail
        self.rows: list[tuple[Any, ...]] = []
        self.insert_calls = 0
        self.queries: list[str] = []
        self.existing: set[Any] = set()

    def create_insert_context(self, table: str, columns: list[str], **_: Any) -> _Ctx:
        return _Ctx()

    def insert(self, context: _Ctx) -> None:
        self.insert_calls += 1
        rows = list(zip(*context.data, strict=True))
        assert context.req_block_size == len(rows)  # one Native block per batch
        exc = self.fail(rows) if self.fail else None
        if exc is not None:
            raise exc
        self.rows.extend(rows)

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> _Result:
        sql = finalize_query(sql, parameters)  # the text clickhouse-connect would send
        self.queries.append(sql)
        return _Result([(k,) for k in self.existing if f"'{k}'" in sql])


def sink_for(client: FaultyClient, **kw: Any) -> ClickHouseSink:
    kw.setdefault("retry_initial_s", 0.001)
    kw.setdefault("retry_max_s", 0.004)
    kw.setdefault("flush_interval_s", 60)
    return ClickHouseSink(client, "t", ("k", "v"), **kw)  # type: ignore[arg-type]


async def test_transient_errors_retry_with_capped_exponential_backoff() -> None:
    failures = iter([OperationalError("conn refused"), DatabaseError("x", code=252), None])
    client = FaultyClient(lambda rows: next(failures))
    delays: list[float] = []

    async def sleep(s: float) -> None:
        delays.append(s)

    sink = sink_for(client, retry_initial_s=0.5, retry_max_s=0.8, sleep=sleep)
    await sink.add_many([(1, "a"), (2, "b")])
    await sink.flush()
    assert client.rows == [(1, "a"), (2, "b")]
    assert delays == [0.5, 0.8]
    assert sink.stats.retries == 2 and sink.stats.rows_written == 2


async def test_backpressure_while_down_then_every_row_once() -> None:
    down = True
    client = FaultyClient(lambda rows: OperationalError("down") if down else None)
    sink = sink_for(client, batch_rows=2)
    await sink.add((1, "a"))
    blocked = asyncio.create_task(sink.add((2, "b")))  # fills the batch -> flush -> waits
    await asyncio.sleep(0.05)
    assert not blocked.done()
    assert sink.stats.retries > 3 and client.rows == []
    down = False
    await asyncio.wait_for(blocked, 2)
    await sink.add((3, "c"))
    await sink.close()
    assert client.rows == [(1, "a"), (2, "b"), (3, "c")]


async def test_deadline_raises_unavailable_and_keeps_rows() -> None:
    down = True
    client = FaultyClient(lambda rows: OperationalError("down") if down else None)
    sink = sink_for(client, retry_deadline_s=0.02)
    await sink.add_many([(1, "a"), (2, "b")])
    with pytest.raises(SinkUnavailableError) as info:
        await sink.flush()
    assert isinstance(info.value.__cause__, OperationalError)
    assert sink.pending_rows == 2 and sink.stats.consecutive_failures == 1
    down = False
    await sink.flush()
    assert client.rows == [(1, "a"), (2, "b")] and sink.pending_rows == 0


async def test_data_errors_split_the_batch_and_dead_letter_only_bad_rows() -> None:
    bad = {3, 6}

    def fail(rows: list[tuple[Any, ...]]) -> Exception | None:
        if any(r[0] in bad for r in rows):
            return DatabaseError(
                "Code: 469. Constraint violated (VIOLATED_CONSTRAINT)",
                code=469,
                name="VIOLATED_CONSTRAINT",
            )
        return None

    letters: list[DeadLetter] = []

    async def hook(items: Any) -> None:
        letters.extend(items)

    client = FaultyClient(fail)
    sink = sink_for(client, batch_rows=100, on_dead_letter=hook)
    await sink.add_many([(i, str(i)) for i in range(8)])
    await sink.flush()
    assert sorted(client.rows) == [(i, str(i)) for i in range(8) if i not in bad]
    assert sorted(d.row[0] for d in letters) == [3, 6]
    assert all(
        d.reason_code == INSERT_REFUSED and "VIOLATED_CONSTRAINT" in d.reason for d in letters
    )
    assert client.insert_calls <= 1 + 2 * 2 * 3  # bisection, not row by row


async def test_client_side_serialisation_errors_are_data_errors() -> None:
    client = FaultyClient(
        lambda rows: DataError("Invalid None value") if any(r[1] is None for r in rows) else None
    )
    sink = sink_for(client)
    await sink.add_many([(1, "a"), (2, None), (3, "c")])
    await sink.flush()
    assert client.rows == [(1, "a"), (3, "c")]
    assert [d.row for d in sink.dead_letters] == [(2, None)]


async def test_fatal_error_raises_and_keeps_rows() -> None:
    client = FaultyClient(lambda rows: DatabaseError("Code: 60. Unknown table", code=60))
    sink = sink_for(client)
    await sink.add((1, "a"))
    with pytest.raises(SinkFatalError):
        await sink.flush()
    assert sink.pending_rows == 1


async def test_transient_error_after_a_split_retries_only_the_rest() -> None:
    calls: list[list[int]] = []
    transient_once = iter([True])

    def fail(rows: list[tuple[Any, ...]]) -> Exception | None:
        calls.append([r[0] for r in rows])
        if any(r[0] == 0 for r in rows):
            return DataError("bad")
        if rows[0][0] == 2 and next(transient_once, False):
            return OperationalError("blip")
        return None

    client = FaultyClient(fail)
    sink = sink_for(client)
    await sink.add_many([(i, "x") for i in range(4)])
    await sink.flush()
    assert sorted(r[0] for r in client.rows) == [1, 2, 3]
    assert len(client.rows) == 3  # nothing written twice


async def test_dedupe_within_batches_across_batches_and_against_the_table() -> None:
    k = [str(uuid.UUID(int=i)) for i in range(6)]
    client = FaultyClient()
    client.existing = {k[5]}
    sink = sink_for(client, dedupe_column="k", batch_rows=3)
    await sink.add_many([(k[0], "a"), (k[0], "a"), (k[1], "b")])  # repeat inside a batch
    await sink.add_many([(k[1], "b"), (k[2], "c"), (k[5], "z")])  # k1 repeat, k5 in table
    await sink.flush()
    assert [r[0] for r in client.rows] == [k[0], k[1], k[2]]
    assert sink.stats.rows_skipped_duplicate == 3


async def test_rows_older_than_the_ttl_are_dead_lettered_not_lost() -> None:
    now = datetime(2026, 1, 10, tzinfo=UTC)
    client = FaultyClient()
    sink = ClickHouseSink(
        client,  # type: ignore[arg-type]
        "t",
        ("k", "ts"),
        ttl_column="ts",
        ttl_days=5,
        clock=lambda: now,
    )
    await sink.add_many([(1, now - timedelta(days=6)), (2, now - timedelta(days=4))])
    await sink.close()
    assert [r[0] for r in client.rows] == [2]
    assert [(d.row[0], d.reason_code) for d in sink.dead_letters] == [(1, EXPIRED)]
