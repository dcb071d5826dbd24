"""A client sending a distinct tag value on every event: the worker stores and prices them
all, budgets that match on the tag count exactly, and the data stays queryable by tag value.
(The memory side, peak RSS against a few-values reference at 1,000,000 values, is measured by
``bench/bench_tag_cardinality.py``.)"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams import topics
from streams.broker import TansuBroker
from tests.support.topic import spent_by_budget
from tests.support.worker import running_worker, wait_for

pytestmark = pytest.mark.integration

N = 5000


def config(broker: TansuBroker, tmp: Path) -> str:
    return f"""
[kafka]
bootstrap_servers = "{broker.bootstrap_servers}"
partitions = 1
max_batch_records = 1000

[worker]
http_port = {{http_port}}
state_dir = "{tmp / "state"}"
status_interval_s = 0.5

[clickhouse]
dsn = "chdb://{tmp / "chdb"}"

[detect]
tag_keys = ["customer", "team"]

[[budgets]]
name = "growth"
limit_usd = "1000000"
match = {{ tags = {{ team = "growth" }} }}

[[budgets]]
name = "customers-1"
limit_usd = "1000000"
match = {{ tags = {{ customer = "cust-1*" }} }}
"""


def cost_usd(i: int) -> str:
    return f"0.{i % 997 + 1:09d}"


async def produce(bootstrap: str) -> None:
    now = datetime.now(UTC) - timedelta(seconds=30)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        for i in range(N):
            event = {
                "schema_version": 1,
                "event_id": str(uuid.UUID(int=i + 1, version=4)),
                "ts": (now + timedelta(milliseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "service": "crm",
                "operation": "enrich",
                "status": "ok",
                "provider": "acme",
                "unit": "lookup",
                "cost_usd": cost_usd(i),
                "tags": {"team": "growth", "customer": f"cust-{i}"},
            }
            await producer.send(topics.USAGE, orjson.dumps(event), key=b"crm")
        await producer.flush()
    finally:
        await producer.stop()


def test_a_distinct_tag_value_per_event_is_stored_counted_and_queryable(
    broker: TansuBroker, tmp_path: Path
) -> None:
    nusd = [int(Decimal(cost_usd(i)).scaleb(9)) for i in range(N)]
    total = sum(nusd)
    ones = sum(c for i, c in enumerate(nusd) if str(i).startswith("1"))
    asyncio.run(produce(broker.bootstrap_servers))
    with running_worker(config(broker, tmp_path), tmp_path) as worker:
        wait_for(lambda: worker.scalar("SELECT count() FROM usage_events") == N, 120, "rows")

        def ledgers_caught_up() -> bool | dict[str, int]:
            latest = asyncio.run(spent_by_budget(broker.bootstrap_servers))
            return latest == {"growth": total, "customers-1": ones} or latest

        wait_for(ledgers_caught_up, 60, "the budgets' exact spend")
        [[values, summed]] = worker.query(
            "SELECT uniqExact(tags['customer']), sum(cost_nusd) FROM usage_events"
        )
        per_value = worker.query(
            "SELECT tags['customer'] AS c, sum(cost_nusd) FROM usage_events "
            "WHERE c IN ('cust-0', 'cust-1234', 'cust-4999') GROUP BY c ORDER BY c"
        )
        time.sleep(1)  # a status tick later: still the same (counted once)
        again = asyncio.run(spent_by_budget(broker.bootstrap_servers))
        status, health = worker.health()
    assert (values, summed) == (N, total)
    assert per_value == [["cust-0", nusd[0]], ["cust-1234", nusd[1234]], ["cust-4999", nusd[4999]]]
    assert again == {"growth": total, "customers-1": ones}
    assert status == 200 and health["status"] == "ok"
