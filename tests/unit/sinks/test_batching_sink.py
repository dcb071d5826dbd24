"""BatchingSink contract through MemorySink: size and time triggers, dead letters, close."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from sinks.batching import DeadLetter
from sinks.errors import SinkClosedError
from sinks.memory import MemorySink


async def test_size_trigger_writes_full_batches() -> None:
    sink = MemorySink(batch_rows=3, flush_interval_s=60)
    await sink.add_many([(i,) for i in range(7)])
    assert [len(b) for b in sink.batches] == [3, 3]
    assert sink.pending_rows == 1
    await sink.flush()
    assert sink.rows == [(i,) for i in range(7)]
    assert sink.pending_rows == 0
    await sink.close()


async def test_time_trigger_flushes_without_a_call() -> None:
    sink = MemorySink(batch_rows=1000, flush_interval_s=0.02)
    await sink.add((1,))
    await sink.add((2,))
    for _ in range(100):
        if sink.rows:
            break
        await asyncio.sleep(0.01)
    assert sink.rows == [(1,), (2,)]
    await sink.close()


async def test_refused_rows_go_to_the_hook_others_are_written() -> None:
    seen: list[DeadLetter] = []

    async def hook(letters: Sequence[DeadLetter]) -> None:
        seen.extend(letters)

    sink = MemorySink(
        batch_rows=10, on_dead_letter=hook, refuse=lambda r: "odd" if r[0] % 2 else None
    )
    await sink.add_many([(i,) for i in range(5)])
    await sink.flush()
    assert sink.rows == [(0,), (2,), (4,)]
    assert [(d.row, d.reason) for d in seen] == [((1,), "odd"), ((3,), "odd")]
    assert sink.stats.rows_dead_lettered == 2
    await sink.close()


async def test_without_a_hook_refused_rows_are_kept_not_dropped() -> None:
    sink = MemorySink(refuse=lambda r: "no")
    await sink.add((1,))
    await sink.close()
    assert [d.row for d in sink.dead_letters] == [(1,)]


async def test_a_failing_hook_keeps_the_letters() -> None:
    async def hook(letters: Sequence[DeadLetter]) -> None:
        raise RuntimeError("dead-letter topic down")

    sink = MemorySink(on_dead_letter=hook, refuse=lambda r: "no")
    await sink.add((1,))
    with pytest.raises(RuntimeError):
        await sink.flush()
    assert [d.row for d in sink.dead_letters] == [(1,)]


async def test_close_flushes_and_is_idempotent() -> None:
    sink = MemorySink()
    await sink.add((1,))
    await sink.close()
    await sink.close()
    assert sink.rows == [(1,)]
    with pytest.raises(SinkClosedError):
        await sink.add((2,))


async def test_context_manager() -> None:
    async with MemorySink() as sink:
        await sink.add((1,))
    assert isinstance(sink, MemorySink) and sink.rows == [(1,)]


async def test_concurrent_adds_and_flushes_write_each_row_once() -> None:
    sink = MemorySink(batch_rows=7, flush_interval_s=0.001)

    async def producer(base: int) -> None:
        for i in range(200):
            await sink.add((base + i,))
            if i % 50 == 0:
                await sink.flush()

    await asyncio.gather(*(producer(k * 1000) for k in range(4)))
    await sink.flush()
    assert sorted(sink.rows) == sorted((k * 1000 + i,) for k in range(4) for i in range(200))
    assert all(len(b) <= 7 for b in sink.batches)
    await sink.close()
