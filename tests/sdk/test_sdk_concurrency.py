"""Threads, asyncio tasks and forked children: every event arrives exactly once."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections import Counter

import pytest
import spendwatch

from streams.broker import TansuBroker, free_port

pytestmark = pytest.mark.integration


def test_threads_all_events_arrive_once(broker, topic, consume):
    spendwatch.configure(bootstrap_servers=broker.bootstrap_servers, service="threads", topic=topic)
    threads_n, per_thread = 8, 250
    start = threading.Barrier(threads_n)

    def work(n: int) -> None:
        start.wait()
        for i in range(per_thread):
            if i % 2:
                spendwatch.record("t", request_id=f"{n}-{i}")
            else:
                with spendwatch.track("t") as t:
                    t.request_id = f"{n}-{i}"

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert spendwatch.flush(20)
    events = consume(threads_n * per_thread)
    counts = Counter(e["request_id"] for e in events)
    assert len(counts) == threads_n * per_thread
    assert set(counts.values()) == {1}
    assert spendwatch.stats().sent == threads_n * per_thread


async def test_asyncio_tasks_all_events_arrive_once(broker, topic, consume):
    spendwatch.configure(bootstrap_servers=broker.bootstrap_servers, service="tasks", topic=topic)

    async def task(n: int) -> None:
        for i in range(20):
            async with spendwatch.track("a", unit="request", quantity=1) as t:
                t.request_id = f"{n}-{i}"
                await asyncio.sleep(0)

    await asyncio.gather(*(task(n) for n in range(50)))
    assert await spendwatch.aflush(20)
    events = await asyncio.to_thread(consume, 1000)
    counts = Counter(e["request_id"] for e in events)
    assert len(counts) == 1000 and set(counts.values()) == {1}


def test_fork_child_sends_its_own_and_parent_queue_is_not_duplicated(topic, consume):
    port = free_port()
    spendwatch.configure(
        bootstrap_servers=f"127.0.0.1:{port}",
        service="forking",
        topic=topic,
        request_timeout_ms=1000,
        retry_backoff_max_ms=100,
    )
    for i in range(20):
        spendwatch.record("parent", request_id=f"p{i}")
    assert spendwatch.stats().queued == 20  # broker not up yet: all still queued at fork
    pid = os.fork()
    if pid == 0:  # child: its own queue, its own sender started on its first event
        code = 1
        try:
            fresh = spendwatch.stats()
            if (fresh.queued, fresh.sent) == (0, 0):
                for i in range(7):
                    spendwatch.record("child", request_id=f"c{i}")
                code = 0 if spendwatch.flush(30) and spendwatch.stats().sent == 7 else 2
        finally:
            os._exit(code)
    with TansuBroker(port=port) as late:
        assert spendwatch.flush(30)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        events = consume(27, bootstrap=late.bootstrap_servers)
        assert spendwatch.stats().sent == 20
        spendwatch.shutdown(1)  # close the connection so the broker stops at once
    counts = Counter(e["request_id"] for e in events)
    assert counts == Counter([f"p{i}" for i in range(20)] + [f"c{i}" for i in range(7)])


def _mp_child(n: int) -> None:
    # No flush: the SDK flushes when the multiprocessing worker exits.
    for i in range(n):
        spendwatch.record("mp-child", request_id=f"m{i}")


def test_multiprocessing_fork_child_flushes_on_exit(broker, topic, consume):
    spendwatch.configure(bootstrap_servers=broker.bootstrap_servers, service="mp", topic=topic)
    spendwatch.record("mp-parent", request_id="parent")
    process = multiprocessing.get_context("fork").Process(target=_mp_child, args=(5,))
    process.start()
    process.join(30)
    assert process.exitcode == 0
    assert spendwatch.flush(10)
    events = consume(6)
    assert Counter(e["request_id"] for e in events) == Counter(
        ["parent", "m0", "m1", "m2", "m3", "m4"]
    )
