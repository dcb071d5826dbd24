"""``spendwatch worker`` on a broker where spendwatch never ran: it owns its topics, and it
never runs half-dead.

(a) Nothing pre-created, ``[kafka] partitions = 2``: the worker creates every topic with two
    partitions (one for the epoch, compaction for the status) and budgets work: each threshold
    alert once, each status equal to ClickHouse to the nano-dollar.
(b) A ``budget-deltas`` topic left with 3 partitions: the worker gives the co-partitioned
    topics it creates the same 3 and works; with ``control`` at 2 beside it, the start-up
    stops with exit code 2, naming both topics and both counts.
(c) The budgets agent made to fail: ``/health`` answers 503 "crashed" naming the agent, then
    the worker exits with code 1 and the reason.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import spendwatch
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams import topics
from streams.admin import topic_partitions
from streams.broker import TansuBroker
from tests.support.slack_server import SlackServer
from tests.support.topic import spent_by_budget
from tests.support.worker import running_worker, wait_for

pytestmark = pytest.mark.integration

USD = 1_000_000_000


def config(broker: TansuBroker, slack: SlackServer, tmp: Path, partitions: int = 2) -> str:
    return f"""
[kafka]
bootstrap_servers = "{broker.bootstrap_servers}"
partitions = {partitions}

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
limit_usd = "10"

[[budgets]]
name = "voice"
limit_usd = "4"
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


async def layout(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await topic_partitions(admin, topics.ALL)
    finally:
        await admin.close()


async def create(bootstrap: str, **counts: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, n, 1) for name, n in counts.items()]  # type: ignore[arg-type]
        )
    finally:
        await admin.close()


def spend(bootstrap: str, costs: dict[str, list[str]]) -> int:
    spendwatch.configure(bootstrap_servers=bootstrap, service="agents")
    total = 0
    for service, amounts in costs.items():
        for usd in amounts:
            spendwatch.record(
                "call", service=service, provider="acme", unit="call", cost_usd=Decimal(usd)
            )
            total += int(Decimal(usd) * USD)
    assert spendwatch.flush(30.0)
    spendwatch.shutdown(5.0)
    return total


def budgets_work(broker: TansuBroker, slack: SlackServer, worker: Any) -> None:
    """$9.60 over three services, $3.90 of it on voice: fleet crosses 50/80/95 %, voice
    50/80/95 %; each alert once, each status equal to ClickHouse."""
    total = spend(
        broker.bootstrap_servers,
        {"voice": ["1.3", "1.3", "1.3"], "chat": ["2.5", "1.2"], "search": ["2.0"]},
    )
    wait_for(lambda: worker.scalar("SELECT sum(cost_nusd) FROM usage_events") == total, 60, "rows")
    expected = {
        "fleet": worker.scalar("SELECT sum(cost_nusd) FROM usage_events FINAL"),
        "voice": worker.scalar(
            "SELECT sum(cost_nusd) FROM usage_events FINAL WHERE service='voice'"
        ),
    }
    assert expected == {"fleet": 9_600_000_000, "voice": 3_900_000_000}
    wait_for(
        lambda: asyncio.run(spent_by_budget(broker.bootstrap_servers)) == expected,
        30,
        "statuses equal to ClickHouse",
    )
    wait_for(lambda: len(slack.delivered) >= 6, 30, "six threshold alerts")
    time.sleep(2.0)
    texts = sorted(m.text for m in slack.delivered)
    assert len(texts) == 6, texts
    assert [sum(f"budget {b} " in t for t in texts) for b in ("fleet", "voice")] == [3, 3], texts
    fired = worker.query(
        "SELECT labels['budget'], arraySort(groupArray(labels['threshold'])) FROM alerts FINAL "
        "WHERE kind = 'threshold' GROUP BY 1 ORDER BY 1"
    )
    assert fired == [["fleet", ["0.5", "0.8", "0.95"]], ["voice", ["0.5", "0.8", "0.95"]]]


def test_a_fresh_broker_gets_its_topics_and_budgets_work(
    slack: SlackServer, tmp_path: Path
) -> None:
    with (
        TansuBroker() as broker,
        running_worker(config(broker, slack, tmp_path), tmp_path) as worker,
    ):
        counts = asyncio.run(layout(broker.bootstrap_servers))
        assert counts == {t: (1 if t == topics.META else 2) for t in topics.ALL}
        budgets_work(broker, slack, worker)
        status, body = worker.health()
        assert status == 200 and body["status"] == "ok"
        assert {c["state"] for c in body["components"].values()} <= {"running", "stopped"}
        assert body["components"]["agent:budgets"]["state"] == "running"
        assert body["ledgers"]["seeded"] == ["fleet", "voice"]


def test_a_deltas_topic_left_with_three_partitions_is_followed(
    slack: SlackServer, tmp_path: Path
) -> None:
    with TansuBroker() as broker:
        asyncio.run(create(broker.bootstrap_servers, **{topics.BUDGET_DELTAS: 3}))
        with running_worker(config(broker, slack, tmp_path), tmp_path) as worker:
            counts = asyncio.run(layout(broker.bootstrap_servers))
            assert [counts[t] for t in (topics.BUDGET_DELTAS, topics.CONTROL, topics.ALERTS)] == [
                3,
                3,
                3,
            ]
            assert counts[topics.USAGE] == 2
            budgets_work(broker, slack, worker)


def test_co_partitioned_topics_with_two_counts_stop_the_start_up(tmp_path: Path) -> None:
    with TansuBroker() as broker:
        asyncio.run(
            create(broker.bootstrap_servers, **{topics.BUDGET_DELTAS: 3, topics.CONTROL: 2})
        )
        cfg = tmp_path / "spendwatch.toml"
        cfg.write_text(
            f'[kafka]\nbootstrap_servers = "{broker.bootstrap_servers}"\npartitions = 2\n'
            f'[clickhouse]\ndsn = "chdb://{tmp_path / "chdb"}"\n'
        )
        done = subprocess.run(
            [sys.executable, "-m", "streams.cli", "worker", "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("spendwatch worker:")]
    assert len(lines) == 1, done.stderr
    assert f"{topics.BUDGET_DELTAS} has 3" in lines[0] and f"{topics.CONTROL} has 2" in lines[0]
    assert "Traceback" not in done.stderr


def test_a_crashed_agent_is_reported_and_stops_the_worker(
    slack: SlackServer, tmp_path: Path
) -> None:
    log = tmp_path / "worker.err"
    with (
        TansuBroker() as broker,
        running_worker(
            config(broker, slack, tmp_path),
            tmp_path,
            env={"SPENDWATCH_FAULTS": "raise:agent.budgets"},
            stderr=log,
        ) as worker,
    ):
        status, body = worker.health()
        assert status == 200 and body["components"]["agent:budgets"]["state"] == "running"
        spend(broker.bootstrap_servers, {"voice": ["0.5"]})
        seen: list[dict[str, Any]] = []

        def crashed() -> bool:
            code, answer = worker.health()
            seen.append(answer)
            return code == 503 and answer["status"] == "crashed"

        wait_for(crashed, 60, "/health to report the crash")
        component = seen[-1]["components"]["agent:budgets"]
        assert component["state"] == "crashed"
        assert "fault injected at agent.budgets" in component["error"]
        assert worker.process.wait(60) == 1
    stderr = log.read_text()
    assert "spendwatch worker: stopped: agent:budgets: RuntimeError: fault injected" in stderr
