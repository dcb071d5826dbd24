"""A restarted worker continues its budgets from ClickHouse.

The embedded broker forgets everything when it stops, and with it the budget ledgers. Run 1
spends 60 % of a daily budget (the 50 % alert fires); everything stops; run 2 starts a fresh
broker and worker on the same ClickHouse data and state directory, spends 25 % more: exactly
one new alert (80 %), no repeat of 50 %, and the status the SDK sees counts both runs' spend
to the nano-dollar.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import spendwatch
from aiokafka import AIOKafkaConsumer

from streams import topics
from streams.broker import TansuBroker, create_topics
from tests.support.slack_server import SlackServer
from tests.support.worker import running_worker, wait_for

pytestmark = pytest.mark.integration

LIMIT = Decimal("10.00")
RUN1 = [Decimal("1.500000001"), Decimal("2.25"), Decimal("2.249999999")]  # 6.00 = 60 %
RUN2 = [Decimal("1.1"), Decimal("1.4")]  # +2.50 -> 85 %


def config(broker: TansuBroker, slack: SlackServer, tmp_path: Path) -> str:
    return f"""
[kafka]
bootstrap_servers = "{broker.bootstrap_servers}"

[worker]
http_port = {{http_port}}
state_dir = "{tmp_path / "state"}"
status_interval_s = 0.5

[clickhouse]
dsn = "chdb://{tmp_path / "chdb"}"

[[budgets]]
name = "team-daily"
period = "day"
limit_usd = "{LIMIT}"

[detect]
enabled = false

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


def send(bootstrap: str, costs: list[Decimal]) -> None:
    spendwatch.configure(bootstrap_servers=bootstrap, service="agents")
    for cost in costs:
        spendwatch.record("call", provider="acme", unit="request", quantity=1, cost_usd=cost)
    assert spendwatch.flush(30.0)
    spendwatch.shutdown(5.0)


async def latest_status(bootstrap: str) -> dict[str, object]:
    consumer = AIOKafkaConsumer(
        topics.BUDGET_STATUS, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        latest: dict[str, object] = {}
        batches = await consumer.getmany(timeout_ms=2000)
        for records in batches.values():
            for record in records:
                latest = orjson.loads(record.value)
        return latest
    finally:
        await consumer.stop()


def test_restart_continues_the_period(slack: SlackServer, tmp_path: Path) -> None:
    if datetime.now(UTC).hour == 23 and datetime.now(UTC).minute >= 58:
        pytest.skip("too close to UTC midnight: the daily period would roll over mid-test")
    run1_nusd = int(sum(RUN1) * 10**9)
    total_nusd = int((sum(RUN1) + sum(RUN2)) * 10**9)

    with TansuBroker() as broker:
        asyncio.run(create_topics(broker.bootstrap_servers, topics.ALL, 1))
        with running_worker(config(broker, slack, tmp_path), tmp_path) as worker:
            send(broker.bootstrap_servers, RUN1)
            wait_for(
                lambda: (
                    worker.query("SELECT count(), sum(cost_nusd) FROM usage_events")
                    == [[3, run1_nusd]]
                ),
                60,
                "run 1 stored",
            )
            wait_for(lambda: len(slack.delivered) == 1, 30, "the 50 % alert")

    with TansuBroker() as broker:  # a fresh, empty broker: the stream remembers nothing
        asyncio.run(create_topics(broker.bootstrap_servers, topics.ALL, 1))
        with running_worker(config(broker, slack, tmp_path), tmp_path) as worker:
            send(broker.bootstrap_servers, RUN2)
            wait_for(
                lambda: worker.scalar("SELECT sum(cost_nusd) FROM usage_events") == total_nusd,
                60,
                "run 2 stored",
            )
            wait_for(lambda: len(slack.delivered) == 2, 30, "the 80 % alert")
            wait_for(
                lambda: (
                    asyncio.run(latest_status(broker.bootstrap_servers)).get("spent_nusd")
                    == total_nusd
                ),
                30,
                "a status counting both runs",
            )
            status = asyncio.run(latest_status(broker.bootstrap_servers))
            assert status["state"] == "warning"
            assert status["fraction"] == "0.850000"
            # The alert is recorded in ClickHouse just after it is sent.
            wait_for(
                lambda: (
                    worker.query(
                        "SELECT groupArray(labels['threshold']) FROM "
                        "(SELECT labels FROM alerts WHERE kind = 'threshold' ORDER BY fired_at)"
                    )
                    == [[["0.5", "0.8"]]]
                ),
                30,
                "both threshold alerts recorded",
            )

    texts = [m.text for m in slack.delivered]
    assert len(texts) == 2
    # Crossing 50 % at $6.00 in run 1, and 80 % at $8.50 in run 2 (the spend of both runs).
    assert "at 60% ($6.00 of $10.00)" in texts[0], texts
    assert "at 85% ($8.50 of $10.00)" in texts[1], texts


def _pick(status: dict) -> tuple:
    return status.get("period_start"), status.get("spent_nusd")


def test_a_budget_redefined_in_the_config_is_recounted(slack: SlackServer, tmp_path: Path) -> None:
    """Same broker (its ledger survives in the changelog), but the budget's period changes
    from the UTC day to the week between runs: the worker does not go on with the day's
    ledger (whose reset is tonight) but recounts the week from ClickHouse. The 50 % crossing
    of run 1 is not announced again; 80 % of the week fires once."""
    now = datetime.now(UTC)
    if now.hour == 23 and now.minute >= 58:
        pytest.skip("too close to UTC midnight: the daily period would roll over mid-test")
    total_nusd = int((sum(RUN1) + sum(RUN2)) * 10**9)
    monday = (now - timedelta(days=now.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    with TansuBroker() as broker:
        asyncio.run(create_topics(broker.bootstrap_servers, topics.ALL, 1))
        daily = config(broker, slack, tmp_path)
        weekly = daily.replace('period = "day"', 'period = "week"')
        assert weekly != daily
        with running_worker(daily, tmp_path) as worker:
            send(broker.bootstrap_servers, RUN1)
            wait_for(lambda: len(slack.delivered) == 1, 60, "the 50 % alert")
            day_status = asyncio.run(latest_status(broker.bootstrap_servers))
            assert (
                day_status["reset_at"]
                == (
                    now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
                ).isoformat()
            )
        with running_worker(weekly, tmp_path) as worker:
            send(broker.bootstrap_servers, RUN2)
            wait_for(
                lambda: worker.scalar("SELECT sum(cost_nusd) FROM usage_events") == total_nusd,
                60,
                "run 2 stored",
            )
            wait_for(lambda: len(slack.delivered) == 2, 30, "the 80 % alert")
            wait_for(
                lambda: (
                    _pick(asyncio.run(latest_status(broker.bootstrap_servers)))
                    == (monday.isoformat(), total_nusd)
                ),
                30,
                "a status for the week with run 2 counted (status is published on a timer)",
            )
            status = asyncio.run(latest_status(broker.bootstrap_servers))
            assert status["spent_nusd"] == total_nusd
            assert status["reset_at"] == (monday + timedelta(days=7)).isoformat()
            assert status["state"] == "warning"
    texts = [m.text for m in slack.delivered]
    assert "at 60% ($6.00 of $10.00)" in texts[0], texts
    assert "at 85% ($8.50 of $10.00)" in texts[1], texts


def test_a_clean_stop_checkpoints_what_the_ledger_counted(
    slack: SlackServer, tmp_path: Path
) -> None:
    """Ledgers are checkpointed at most once a second, yet Faust commits the offsets of every
    event counted: a clean stop writes the ledgers changed since their last checkpoint, so a
    worker restarted on the same broker neither loses those events nor counts them twice."""
    if datetime.now(UTC).hour == 23 and datetime.now(UTC).minute >= 58:
        pytest.skip("too close to UTC midnight: the daily period would roll over mid-test")
    burst = [Decimal("1.25"), Decimal("1.5"), Decimal("1.000000007")]  # 37.5 %, no alert
    total_nusd = int((sum(burst) + sum(RUN2)) * 10**9)  # + 2.50 -> 62.5 %
    with TansuBroker() as broker:
        asyncio.run(create_topics(broker.bootstrap_servers, topics.ALL, 1))
        daily = config(broker, slack, tmp_path)
        with running_worker(daily, tmp_path) as worker:
            send(broker.bootstrap_servers, burst)  # one burst: only the first is checkpointed
            wait_for(
                lambda: worker.scalar("SELECT count() FROM usage_events") == len(burst),
                60,
                "the burst stored",
            )
        with running_worker(daily, tmp_path) as worker:
            send(broker.bootstrap_servers, RUN2)
            wait_for(lambda: len(slack.delivered) == 1, 60, "the 50 % alert")
            wait_for(
                lambda: (
                    asyncio.run(latest_status(broker.bootstrap_servers)).get("spent_nusd")
                    == total_nusd
                ),
                30,
                "a status counting both runs exactly",
            )
    assert len(slack.delivered) == 1
    assert "at 62.5% ($6.25 of $10.00)" in slack.delivered[0].text, slack.delivered[0].text
