"""Two workers in one group: each budget's status comes from the worker that owns it.

``spendwatch.budget-spend.v1`` is keyed by budget name, so with two partitions and two
workers each budget's ledger lives on one worker. A worker publishing the status of a budget
it does not own would publish a stale (or empty) copy every heartbeat, and the SDK guard,
which keeps the latest status per budget, would flip between the two. Here two budgets land
on different partitions (``north`` -> 0, ``south`` -> 1 under the producer's murmur2
partitioner, checked below), and so do their services, named alike; after their spend,
every status published over two heartbeats carries the exact spend of its budget.
Yesterday's calls make a daily digest due at once (``digest_at = "00:00"``): the group sends
it once, from its leader, not once per worker.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import spendwatch
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

from streams import topics
from streams.broker import TansuBroker, create_topics
from tests.support.slack_server import SlackServer
from tests.support.topic import read_until_idle
from tests.support.worker import running_worker, wait_for

pytestmark = pytest.mark.integration

SPEND = {"north": [Decimal("1.25"), Decimal("0.5")], "south": [Decimal("2.000000003")]}


def config(bootstrap: str, slack: SlackServer, directory: Path) -> str:
    budgets = "".join(
        f"""
[[budgets]]
name = "{name}"
period = "day"
limit_usd = "100"
match = {{ service = ["{name}"] }}
"""
        for name in SPEND
    )
    return f"""
[kafka]
bootstrap_servers = "{bootstrap}"
partitions = 2

[worker]
http_port = {{http_port}}
state_dir = "{directory / "state"}"
status_interval_s = 0.5

[clickhouse]
dsn = "chdb://{directory / "chdb"}"

[detect]
enabled = false

[alerting]
group_wait_s = 0
digest_at = "00:00"

[[alerting.receivers]]
name = "oncall"
type = "slack"
webhook_url = "{slack.webhook_url()}"
{budgets}"""


async def group_members(bootstrap: str) -> int:
    """Members of the workers' consumer group (Faust's app id) once it is stable, else 0."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_consumer_groups(["spendwatch"])
        [group] = described.groups
        error_code, _, state, _, _, members = group
        return len(members) if error_code == 0 and state == "Stable" else 0
    finally:
        await admin.close()


async def statuses_since(bootstrap: str, since_ms: int) -> list[dict[str, object]]:
    """Every budget status published at or after ``since_ms``."""
    return [
        orjson.loads(r.value)
        for r in await read_until_idle(bootstrap, topics.BUDGET_STATUS, 1500)
        if r.timestamp >= since_ms
    ]


def digests(slack: SlackServer) -> list[str]:
    return [m.text for m in slack.delivered if m.text.startswith("[spendwatch DIGEST]")]


def test_each_budget_status_comes_from_its_owner(slack: SlackServer, tmp_path: Path) -> None:
    partitioner = DefaultPartitioner()
    # budgets (budget-spend key) and services (usage and priced key) share the names: each
    # worker owns one budget and stores one service's calls
    assert {n: partitioner(n.encode(), [0, 1], [0, 1]) for n in SPEND} == {"north": 0, "south": 1}
    expected = {name: int(sum(costs) * 10**9) for name, costs in SPEND.items()}
    with TansuBroker() as broker:
        bootstrap = broker.bootstrap_servers
        asyncio.run(create_topics(bootstrap, topics.ALL, 2))
        a, b = tmp_path / "a", tmp_path / "b"
        a.mkdir()
        b.mkdir()
        with (
            running_worker(config(bootstrap, slack, a), a),
            running_worker(config(bootstrap, slack, b), b),
        ):
            # Both workers in the group before any spend: a later join would hand a budget
            # over mid-test (a rebalance; the new owner recovers the ledger from the table).
            wait_for(lambda: asyncio.run(group_members(bootstrap)) == 2, 60, "a two-worker group")
            time.sleep(3.0)  # table recovery after the rebalance
            spendwatch.configure(bootstrap_servers=bootstrap, service="north")
            try:
                yesterday = datetime.now(UTC) - timedelta(days=1)
                for name, costs in SPEND.items():
                    for cost in costs:
                        spendwatch.record(
                            "call", service=name, unit="request", quantity=1,
                            cost_usd=cost,
                        )  # fmt: skip
                    # a call of yesterday for each service: the digest day is not empty on
                    # either worker's ClickHouse (each stores its own partitions here)
                    spendwatch.record(
                        "call", service=name, unit="request", quantity=1,
                        cost_usd="0.01", ts=yesterday,
                    )  # fmt: skip
                assert spendwatch.flush(30.0)
            finally:
                spendwatch.shutdown(5.0)

            def latest() -> dict[str, object]:
                found: dict[str, object] = {}
                for status in asyncio.run(statuses_since(bootstrap, 0)):
                    found[str(status["budget"])] = status["spent_nusd"]
                return found

            wait_for(lambda: latest() == expected, 60, "both budgets' statuses")
            since_ms = int(time.time() * 1000)
            time.sleep(22.0)  # two status heartbeats (10 s): every worker's every budget
            window = asyncio.run(statuses_since(bootstrap, since_ms))
            # the digest timer runs every 30 s on the leader only
            wait_for(lambda: len(digests(slack)) >= 1, 60, "the daily digest")
            time.sleep(35.0)  # another timer round on both workers: still one digest
            assert len(digests(slack)) == 1, [m.text for m in slack.delivered]
    by_budget: dict[str, set[object]] = {}
    for status in window:
        by_budget.setdefault(str(status["budget"]), set()).add(status["spent_nusd"])
    assert by_budget == {name: {spent} for name, spent in expected.items()}
