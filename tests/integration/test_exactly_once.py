"""Exactly once, through the real worker: events sent twice, and a worker killed mid-batch.

Every expected figure is computed here from the events sent (costs are supplied, so exact
decimal sums): ClickHouse rows, rollups, each budget's published status to the nano-dollar,
and each threshold alert delivered to the loopback Slack API exactly once.

1. 5,000 events, 300 of them sent twice: 150 right behind their first copy (same batch) and
   150 once the first 5,000 are stored (a later batch, as a retrying client would).
2. 3,000 events on a broker, and three worker runs each killed with SIGKILL at one point of a
   batch (``SPENDWATCH_FAULTS``): after the ClickHouse write, while the budget deltas are in
   flight, after the deltas and before the offset commit. A fourth run finishes. Rows,
   rollups, ledgers and alerts are exact.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams import topics
from streams.broker import TansuBroker, create_topics
from tests.support.slack_server import SlackServer
from tests.support.topic import spent_by_budget
from tests.support.worker import WorkerProcess, running_worker, wait_for

pytestmark = pytest.mark.integration

SERVICES = ("chat", "voice", "search", "lead-enricher")


def config(broker: TansuBroker, slack: SlackServer, tmp: Path, limits: dict[str, str]) -> str:
    return f"""
[kafka]
bootstrap_servers = "{broker.bootstrap_servers}"
partitions = 2
max_batch_records = 500

[worker]
http_port = {{http_port}}
state_dir = "{tmp / "state"}"
status_interval_s = 0.5

[clickhouse]
dsn = "chdb://{tmp / "chdb"}"

[detect]
enabled = false

[[budgets]]
name = "fleet"
limit_usd = "{limits["fleet"]}"

[[budgets]]
name = "voice"
limit_usd = "{limits["voice"]}"
match = {{ service = "voice" }}

[alerting]
group_wait_s = 0
group_interval_s = 1
group_by = ["alert_id"]
default_inhibit = false

[[alerting.receivers]]
name = "oncall"
type = "slack"
webhook_url = "{slack.webhook_url()}"
"""


def make_events(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    now = datetime.now(UTC) - timedelta(seconds=5)
    return [
        {
            "schema_version": 1,
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "ts": (now + timedelta(microseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "service": rng.choice(SERVICES),
            "operation": "call",
            "status": "ok",
            "provider": "acme",
            "unit": "call",
            "cost_usd": f"0.{rng.randint(1, 9_999_999):07d}01",
        }
        for i in range(n)
    ]


def nusd(event: dict[str, Any]) -> int:
    return int(Decimal(event["cost_usd"]).scaleb(9))


async def produce(bootstrap: str, events: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for e in events:
            await producer.send(topics.USAGE, orjson.dumps(e), key=e["service"].encode())
        await producer.flush()
    finally:
        await producer.stop()


def thresholds_crossed(total: int, limit_usd: str) -> int:
    limit = int(Decimal(limit_usd).scaleb(9))
    return sum(total * 100 >= limit * pct for pct in (50, 80, 95, 100))


def check_exact(
    worker: WorkerProcess,
    broker: TansuBroker,
    slack: SlackServer,
    unique: list[dict[str, Any]],
    limits: dict[str, str],
) -> None:
    expected = {
        "fleet": sum(nusd(e) for e in unique),
        "voice": sum(nusd(e) for e in unique if e["service"] == "voice"),
    }
    wait_for(
        lambda: worker.scalar("SELECT count() FROM usage_events") >= len(unique),
        120,
        f"{len(unique)} rows",
    )
    [[rows, ids, cost, minute_events, minute_cost, day_cost, letters]] = worker.query(
        "SELECT count(), uniqExact(event_id), sum(cost_nusd), "
        "(SELECT sum(events) FROM spend_by_minute), (SELECT sum(cost_nusd) FROM spend_by_minute), "
        "(SELECT sum(cost_nusd) FROM spend_by_day), (SELECT count() FROM deadletter) "
        "FROM usage_events"
    )
    assert (rows, ids, cost) == (len(unique), len(unique), expected["fleet"])
    assert (minute_events, minute_cost, day_cost) == (len(unique), cost, cost)
    assert letters == 0
    wait_for(
        lambda: asyncio.run(spent_by_budget(broker.bootstrap_servers)) == expected,
        60,
        f"statuses {expected}",
    )
    due = sum(thresholds_crossed(expected[b], limits[b]) for b in limits)
    wait_for(lambda: len(slack.delivered) >= due, 60, f"{due} threshold alerts")
    time.sleep(2.0)
    texts = [m.text for m in slack.delivered]
    assert len(texts) == due, texts
    assert len(set(texts)) == due, texts
    [[alert_rows]] = worker.query("SELECT count() FROM alerts WHERE kind = 'threshold'")
    assert alert_rows == due


@pytest.fixture
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as b:
        yield b


def test_events_sent_twice_are_stored_and_counted_once(
    broker: TansuBroker, slack: SlackServer, tmp_path: Path
) -> None:
    events = make_events(5000, seed=1)
    total = sum(nusd(e) for e in events)
    limits = {
        "fleet": str(Decimal(total).scaleb(-9).quantize(Decimal("1e-9")) * Decimal("0.97")),
        "voice": "1000",
    }
    rng = random.Random(2)
    twice = rng.sample(range(5000), 300)
    soon, later = set(twice[:150]), twice[150:]
    first_wave: list[dict[str, Any]] = []
    for i, e in enumerate(events):
        first_wave.append(e)
        if i in soon:
            first_wave.append(e)  # a retry right behind the first copy
    with running_worker(config(broker, slack, tmp_path, limits), tmp_path) as worker:
        asyncio.run(produce(broker.bootstrap_servers, first_wave))
        wait_for(lambda: worker.scalar("SELECT count() FROM usage_events") == 5000, 120, "5,000")
        time.sleep(1.0)
        asyncio.run(produce(broker.bootstrap_servers, [events[i] for i in later]))
        wait_for(lambda: worker.health()[1]["hot_path"]["records"] == 5300, 60, "every record read")
        health = worker.health()[1]["hot_path"]
        assert (health["rows"], health["repeats"]) == (5000, 300)
        check_exact(worker, broker, slack, events, limits)


@pytest.mark.parametrize("seed", [3])
def test_a_worker_killed_at_each_point_of_a_batch_loses_and_repeats_nothing(
    broker: TansuBroker, slack: SlackServer, tmp_path: Path, seed: int
) -> None:
    events = make_events(3000, seed=seed)
    total = sum(nusd(e) for e in events)
    voice = sum(nusd(e) for e in events if e["service"] == "voice")
    usd = lambda n: str((Decimal(n).scaleb(-9) * Decimal("0.9")).quantize(Decimal("1e-9")))  # noqa: E731
    limits = {"fleet": usd(total), "voice": usd(voice)}
    asyncio.run(create_topics(broker.bootstrap_servers, [topics.USAGE], 2))
    asyncio.run(produce(broker.bootstrap_servers, events))
    text = config(broker, slack, tmp_path, limits)
    for point in ("hot.after_write", "hot.mid_send", "hot.after_send"):
        with running_worker(text, tmp_path, env={"SPENDWATCH_FAULTS": f"kill:{point}@2"}) as worker:
            assert worker.process.wait(120) == -9, point  # killed by its own fault point
    with running_worker(text, tmp_path) as worker:
        check_exact(worker, broker, slack, events, limits)
        replayed = worker.health()[1]["hot_path"]["replayed"]
        assert replayed >= 1  # the last kill left stored, uncommitted rows to replay
