"""A worker dropped from the group and back: its ledgers count what the group counted meanwhile.

Two workers share one ClickHouse (``tests.support.chdb_http``, as two workers on a ClickHouse
server do) and one budget, ``fleet``, over every service. The owner of ``fleet`` stalls
(SIGSTOP, as a long GC pause, a swapping host or a frozen VM does) for longer than the session
timeout, so the group drops it and the other worker takes ``fleet`` over: it seeds the ledger
from ClickHouse and counts the deltas of the spend that comes meanwhile, committing their
offsets. Then the stalled worker resumes (SIGCONT) and rejoins. Whichever worker owns
``fleet`` after that must publish the exact spend: a worker that got the budget back and kept
the ledger it had before the stall would lack the spend counted while it was away, since the
deltas that carried it are committed and never read again.

The stall is repeated until the stalled worker gets ``fleet`` back (the assignor decides), at
most three times, so the case that matters is the one checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from decimal import Decimal
from pathlib import Path

import pytest
import spendwatch
from aiokafka.partitioner import DefaultPartitioner

from streams import topics
from streams.broker import TansuBroker, create_topics
from tests.integration.test_two_workers import group_members
from tests.support.chdb_server import ChdbHttp
from tests.support.topic import spent_by_budget
from tests.support.worker import WorkerProcess, running_worker, wait_for

pytestmark = pytest.mark.integration

SERVICES = ("north", "south")  # usage partitions 0 and 1 (checked below)
SESSION_TIMEOUT_S = 3.0


def config(bootstrap: str, dsn: str, directory: Path) -> str:
    return f"""
[kafka]
bootstrap_servers = "{bootstrap}"
partitions = 2
session_timeout_ms = {int(SESSION_TIMEOUT_S * 1000)}

[worker]
http_port = {{http_port}}
state_dir = "{directory / "state"}"
status_interval_s = 0.5

[clickhouse]
dsn = "{dsn}"

[detect]
enabled = false

[[budgets]]
name = "fleet"
period = "day"
timezone = "UTC"
limit_usd = "1000000"
"""


def spend(bootstrap: str, wave: int) -> int:
    """Ten calls per service; their cost in nano-USD (distinct in every wave)."""
    total = Decimal(0)
    spendwatch.configure(bootstrap_servers=bootstrap, service="north")
    try:
        for service in SERVICES:
            for i in range(10):
                cost = Decimal(1000 * wave + 10 * i + len(service)) / 1_000_000
                spendwatch.record("call", service=service, unit="request", quantity=1,
                                  cost_usd=cost)  # fmt: skip
                total += cost
        assert spendwatch.flush(30.0)
    finally:
        spendwatch.shutdown(5.0)
    return int(total * 10**9)


def owner(workers: list[WorkerProcess]) -> int | None:
    """The index of the worker that owns ``fleet`` and has seeded it, if exactly one does."""
    ledgers = [w.health()[1]["ledgers"] for w in workers]
    found = [i for i, b in enumerate(ledgers) if "fleet" in b["seeded"] and "fleet" in b["owned"]]
    return found[0] if len(found) == 1 else None


def counted(bootstrap: str, expected: int) -> bool | str:
    """Whether ``fleet``'s last published spend is ``expected``; else what it is."""
    got = asyncio.run(spent_by_budget(bootstrap)).get("fleet")
    return got == expected or f"fleet {got} != {expected}"


def test_a_worker_back_from_a_stall_counts_what_was_counted_without_it(tmp_path: Path) -> None:
    partitioner = DefaultPartitioner()
    assert [partitioner(s.encode(), [0, 1], [0, 1]) for s in SERVICES] == [0, 1]
    with (
        TansuBroker() as broker,
        ChdbHttp(tmp_path / "chdb", tmp_path / "chdb_http.log") as store,
        contextlib.ExitStack() as stack,
    ):
        bootstrap = broker.bootstrap_servers
        asyncio.run(create_topics(bootstrap, topics.ALL, 2))
        workers = []
        for name in ("a", "b"):
            directory = tmp_path / name
            directory.mkdir()
            workers.append(
                stack.enter_context(
                    running_worker(config(bootstrap, store.dsn, directory), directory)
                )
            )
        wait_for(lambda: asyncio.run(group_members(bootstrap)) == 2, 60, "a two-worker group")
        wait_for(lambda: owner(workers) is not None, 60, "fleet owned once")
        expected = spend(bootstrap, 0)
        wait_for(lambda: counted(bootstrap, expected), 60, "fleet's first spend")
        returned = False
        for wave in (1, 2, 3):
            stalled = owner(workers)
            assert stalled is not None
            other = workers[1 - stalled]
            os.kill(workers[stalled].process.pid, signal.SIGSTOP)
            try:
                wait_for(lambda o=other: owner([o]) == 0, 60, "the other worker takes fleet")
                expected += spend(bootstrap, wave)
                wait_for(lambda e=expected: counted(bootstrap, e), 60, f"wave {wave} counted")
            finally:
                os.kill(workers[stalled].process.pid, signal.SIGCONT)
            wait_for(lambda: asyncio.run(group_members(bootstrap)) == 2, 60, "the group again")
            wait_for(lambda: owner(workers) is not None, 60, "fleet owned once again")
            if owner(workers) == stalled:
                returned = True
                break
        assert returned, "the stalled worker never got fleet back"
        expected += spend(bootstrap, 9)
        wait_for(lambda: counted(bootstrap, expected), 60, "the last wave counted")
        assert owner(workers) == stalled  # the published spend is the returned worker's
        [[stored]] = workers[0].query("SELECT toInt64(sum(cost_nusd)) FROM usage_events FINAL")
        assert stored == expected
