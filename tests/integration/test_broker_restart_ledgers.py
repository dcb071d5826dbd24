"""The embedded broker restarts empty under a running worker: every ledger ends equal to
ClickHouse, without restarting the worker.

One worker (four partitions, as many as Tansu gives the topics stale clients make it
auto-create; two budgets: ``fleet`` covers every service, ``voice`` one of them) counts a first
run of events; then the broker stops while the SDK keeps sending, and comes back empty on the
same port. The worker recreates the topics and starts a new usage epoch by itself. What the
SDK sent around the restart is partly lost by Tansu (it acknowledges produce requests for
topics it no longer has) and partly stored at offsets Tansu hands out twice; whatever was
stored, each budget's last published ``spent_nusd`` must equal the ``FINAL`` sum of its scope
in ClickHouse to the nano-dollar. A client configured after the restart then sends 300 more
events: what is stored of them was acknowledged, once, at its cost (Tansu can still lose an
acknowledged send), and the ledgers still equal ClickHouse.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from decimal import Decimal
from pathlib import Path

import pytest
import spendwatch

from streams import topics
from streams.broker import TansuBroker, create_topics
from tests.support.topic import spent_by_budget
from tests.support.worker import WorkerProcess, running_worker, wait_for

pytestmark = pytest.mark.integration

SERVICES = ("voice", "chat", "search")
RATE_PER_S = 200
BEFORE = 600  # events counted before the restart
OUTAGE_S = 8.0  # the broker is down this long
DURING_S = 12.0  # seconds of sending (from the SDK started before the restart) once it is back
AFTER = 300  # events from a freshly configured SDK once the worker has recreated the topics


def config(bootstrap: str, directory: Path) -> str:
    return f"""
[kafka]
bootstrap_servers = "{bootstrap}"
partitions = 4
max_batch_records = 500

[worker]
http_port = {{http_port}}
state_dir = "{directory / "state"}"
status_interval_s = 0.5

[clickhouse]
dsn = "chdb://{directory / "chdb"}"

[detect]
enabled = false

[[budgets]]
name = "fleet"
period = "day"
limit_usd = "1000000"

[[budgets]]
name = "voice"
period = "day"
limit_usd = "1000000"
match = {{ service = "voice" }}
"""


def cost(seq: int) -> Decimal:
    return Decimal(f"0.{(seq * 7_919) % 9_999_991 + 1:07d}03")


def nusd(seqs: range, service: str | None = None) -> int:
    return sum(
        int(cost(s).scaleb(9)) for s in seqs if service is None or SERVICES[s % 3] == service
    )


def record(seq: int, run: str) -> None:
    spendwatch.record(
        "call",
        service=SERVICES[seq % len(SERVICES)],
        provider="acme",
        unit="call",
        quantity=1,
        cost_usd=cost(seq),
        tags={"run": run, "seq": str(seq)},
    )


def send_for(start: int, seconds: float) -> int:
    """Record events at RATE_PER_S for ``seconds`` from sequence number ``start``; the next."""
    t0 = time.monotonic()
    seq = start
    while (elapsed := time.monotonic() - t0) < seconds:
        while seq < start + int(elapsed * RATE_PER_S) + 1:
            record(seq, "outage")
            seq += 1
        time.sleep(0.01)
    return seq


def stored_scopes(worker: WorkerProcess) -> dict[str, int]:
    [[fleet, voice]] = worker.query(
        "SELECT sum(cost_nusd), sumIf(cost_nusd, service = 'voice') FROM usage_events FINAL"
    )
    return {"fleet": int(fleet), "voice": int(voice)}


def stored_run(worker: WorkerProcess, run: str) -> list[int]:
    [[count, cost_nusd]] = worker.query(
        f"SELECT count(), sum(cost_nusd) FROM usage_events FINAL WHERE tags['run'] = '{run}'"
    )
    return [int(count), int(cost_nusd)]


def test_ledgers_equal_clickhouse_after_an_empty_broker_restart(tmp_path: Path) -> None:
    first = {"fleet": nusd(range(BEFORE)), "voice": nusd(range(BEFORE), "voice")}
    broker = TansuBroker().start()
    try:
        bootstrap = broker.bootstrap_servers
        asyncio.run(create_topics(bootstrap, topics.ALL, 4))
        with running_worker(
            config(bootstrap, tmp_path), tmp_path, stderr=tmp_path / "worker.log"
        ) as worker:
            pid = worker.process.pid
            spendwatch.configure(bootstrap_servers=bootstrap, service="restart", queue_size=50_000)
            for seq in range(BEFORE):
                record(seq, "first")
            assert spendwatch.flush(30.0)
            wait_for(lambda: stored_scopes(worker) == first, 60, "the first run stored")
            wait_for(
                lambda: asyncio.run(spent_by_budget(bootstrap)) == first,
                30,
                "the first run's ledgers",
            )

            # the broker goes away while events keep coming, and comes back empty; the SDK
            # and the worker keep their clients (metadata from before the restart)
            seq = send_for(BEFORE, 2.0)
            broker.stop()
            seq = send_for(seq, OUTAGE_S)
            broker.start()
            seq = send_for(seq, DURING_S)
            spendwatch.flush(60.0)
            spendwatch.shutdown(5.0)
            wait_for(
                lambda: worker.health()[1].get("hot_path", {}).get("epochs", 0) >= 2,
                60,
                "the worker to adopt the new usage epoch",
            )

            # a client configured after the restart: what the broker acknowledges is normally stored
            # (Tansu still answers some sends with UnknownError: counted in stats().failed)
            spendwatch.configure(bootstrap_servers=bootstrap, service="restart")
            after = range(seq, seq + AFTER)
            for s in after:
                record(s, "after")
            assert spendwatch.flush(30.0)
            acked = spendwatch.stats()
            assert (acked.sent + acked.failed, acked.dropped) == (AFTER, 0), acked
            # Normally every one of them is stored. But a restarted Tansu can still acknowledge
            # a send and lose it (seen in a full `make test` run: a few of the 300 never
            # stored), which spendwatch cannot see or repair (docs/exactly-once.md, "A
            # restarted broker"); so what is asserted is what spendwatch controls: what is
            # stored was acknowledged, once, at its exact cost, and the ledgers count exactly
            # what is stored.
            with contextlib.suppress(AssertionError):
                wait_for(
                    lambda: stored_run(worker, "after")[0] == acked.sent,
                    30,
                    "the events acknowledged after the restart stored",
                )
            [[seqs, after_nusd]] = worker.query(
                "SELECT groupArray(toUInt64(tags['seq'])), sum(cost_nusd) FROM usage_events "
                "FINAL WHERE tags['run'] = 'after'"
            )
            assert set(seqs) <= set(after) and len(seqs) == len(set(seqs)) <= acked.sent
            assert int(after_nusd) == sum(int(cost(s).scaleb(9)) for s in seqs)
            wait_for(
                lambda: (
                    (ledgers := asyncio.run(spent_by_budget(bootstrap)))
                    == (stored := stored_scopes(worker))
                    or (ledgers, stored)
                ),
                60,
                "the ledgers to equal ClickHouse after the restart",
            )
            # the same worker process did it all
            assert worker.process.pid == pid and worker.process.poll() is None
            assert stored_run(worker, "first") == [BEFORE, first["fleet"]]
            stored = stored_scopes(worker)
            assert asyncio.run(spent_by_budget(bootstrap)) == stored
            # the ledgers count every stored event of the day (all of them are today's)
            [[rows, distinct]] = worker.query(
                "SELECT count(), uniqExact(event_id) FROM usage_events FINAL"
            )
            assert rows == distinct
    finally:
        spendwatch.shutdown(5.0)
        broker.stop()
