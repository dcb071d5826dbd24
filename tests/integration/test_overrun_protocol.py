"""The overrun protocol end to end, through the real worker process on the real broker.

A fleet of four services overruns one daily budget in four waves: SDK → Tansu → the worker
(Faust) → budget ledger → alerts (ClickHouse ``alerts`` + a loopback Slack webhook) and budget
status → the SDK guard. Asserted with figures computed here, independently of the pipeline:

- each threshold (50/80/95/100 %) alerts exactly once, with the spend at the crossing event and
  the deterministic id ``alert_id_for("threshold", budget, period_start, threshold)``;
- one per-request alert for the one request above the per-request limit;
- the emergency alert carries the usage analysis (top services/models/providers, exact cost);
- the status after each wave reaches the SDK; at the limit ``guard`` raises ``BudgetExceeded``
  with the exact spend, limit and reset (next UTC midnight);
- ``spendwatch budgets override`` (the real CLI) raises the limit, the worker announces it once
  and republishes the status, and the guard lets calls through again; spend after it that
  crosses no new threshold at the new limit alerts nothing.

Ordering: the SDK orders events per service only (its batches are grouped by key, as Kafka
orders per key), so each wave is a burst from the fleet that stays below the wave's threshold,
acknowledged, then one call that crosses it. Every topic has one partition, so that call reaches
the ledger after the burst and the spend at each crossing is known exactly.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import spendwatch
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from spendwatch.guard import BudgetExceeded, Guard, PerRequestLimitExceeded
from spendwatch.status import BudgetStatus, BudgetStatusFollower

from schemas.alerts import alert_id_for
from streams import topics
from streams.app import APP_ID
from streams.broker import TansuBroker
from tests.support.slack_server import SlackRequest, SlackServer
from tests.support.worker import WorkerProcess, running_worker, wait_for

pytestmark = pytest.mark.integration

BUDGET = "fleet-daily"
USD = 1_000_000_000
LIMIT_NUSD = 2 * USD
PER_REQUEST_LIMIT_NUSD = 250_000_000  # $0.25
OVERRIDE_LIMIT_NUSD = 2_500_000_000  # $2.50
# (fraction, key in alert ids / labels, severity)
THRESHOLDS = (
    (Decimal("0.5"), "0.5", "info"),
    (Decimal("0.8"), "0.8", "warning"),
    (Decimal("0.95"), "0.95", "critical"),
    (Decimal("1.0"), "1", "emergency"),
)
# service -> (provider, model): each service calls one model.
FLEET = {
    "research-agent": ("openai", "gpt-4o"),
    "support-bot": ("openai", "gpt-4o-mini"),
    "lead-enricher": ("anthropic", "claude-3-5-haiku-latest"),
    "planner": ("anthropic", "claude-sonnet-4-5"),
}
# Cumulative spend at the end of each wave (nano-USD, odd digits on purpose) and the status
# state it gives at the $2.00 limit: 52.2 % ok (info), 85.1 % warning, 96.6 % critical, 103.4 %.
WAVE_TOTALS = (1_043_217_659, 1_702_468_813, 1_931_577_402, 2_068_339_517)
WAVE_STATES = ("ok", "warning", "critical", "exhausted")
# The last call of each wave, which crosses its threshold (the burst before it stays below).
CROSSING_SERVICES = ("research-agent", "lead-enricher", "support-bot", "research-agent")
CROSSING_NUSD = (101_234_567, 150_000_003, 60_606_061, 100_000_009)
BIG_REQUEST_NUSD = 312_345_678  # above the $0.25 per-request limit, sent by the planner
AFTER_OVERRIDE_NUSD = 50_000_001  # 2.118339518 of 2.50 = 84.7 %: no new threshold


@dataclass(frozen=True)
class Call:
    service: str
    cost_nusd: int
    input_tokens: int
    output_tokens: int

    @property
    def provider(self) -> str:
        return FLEET[self.service][0]

    @property
    def model(self) -> str:
        return FLEET[self.service][1]

    @property
    def cost_usd(self) -> str:
        return format(Decimal(self.cost_nusd).scaleb(-9), "f")


def plan_waves() -> list[tuple[list[Call], Call]]:
    """Four waves: a burst from the fleet, then one call that crosses the wave's threshold.

    The SDK batches events by service (Kafka orders per key only), so the order within a
    burst is not known; each burst stays below its threshold, and the crossing call is sent
    after the burst is acknowledged. Running totals end exactly at WAVE_TOTALS.
    """
    rng = random.Random(20260315)
    services = sorted(FLEET)
    waves: list[tuple[list[Call], Call]] = []
    previous = 0
    for index, total in enumerate(WAVE_TOTALS):
        crossing = Call(CROSSING_SERVICES[index], CROSSING_NUSD[index], 2_000, 300)
        amount = total - previous - crossing.cost_nusd
        previous = total
        big = BIG_REQUEST_NUSD if index == 1 else 0
        count = 10
        weights = [rng.randint(1, 100) for _ in range(count)]
        # Every small call stays under the per-request limit: only the big one may alert.
        parts = [(amount - big) * w // sum(weights) for w in weights]
        parts[-1] += amount - big - sum(parts)
        assert all(0 < p <= PER_REQUEST_LIMIT_NUSD for p in parts), parts
        burst = [
            Call(rng.choice(services), p, rng.randint(100, 9_000), rng.randint(10, 900))
            for p in parts
        ]
        if big:
            burst.insert(4, Call("planner", big, 120_000, 8_000))
        waves.append((burst, crossing))
    return waves


def share_text(part_nusd: int, total_nusd: int) -> str:
    """A contributor's share as the alert states it: a fraction floored to four decimals."""
    share = (Decimal(part_nusd) / Decimal(total_nusd)).quantize(
        Decimal("0.0001"), rounding=ROUND_FLOOR
    )
    return format(share, "f")


def usd_text(nusd: int) -> str:
    """Exact decimal USD with at least two decimals ("2.00", "2.068339517")."""
    text = format(Decimal(nusd).scaleb(-9).normalize(), "f")
    whole, _, cents = text.partition(".")
    return f"{whole}.{cents.ljust(2, '0')}"


def percent_text(spent_nusd: int, limit_nusd: int) -> str:
    hundredths = spent_nusd * 10_000 // limit_nusd
    return f"{hundredths // 100}.{hundredths % 100:02d}"


def expected_threshold_crossings(calls: list[Call]) -> dict[str, tuple[int, list[Call]]]:
    """threshold key -> (spent at the crossing call, the calls counted so far)."""
    crossings: dict[str, tuple[int, list[Call]]] = {}
    spent = 0
    for i, call in enumerate(calls):
        spent += call.cost_nusd
        for at, key, _ in THRESHOLDS:
            if key not in crossings and spent * 100 >= LIMIT_NUSD * int(at * 100):
                crossings[key] = (spent, calls[: i + 1])
    return crossings


def contributors(calls: list[Call], dimension: str) -> list[dict[str, Any]]:
    """The usage analysis for one dimension, by cost descending (ties by name)."""
    total = sum(c.cost_nusd for c in calls)
    by_name: dict[str, int] = {}
    for call in calls:
        name = {"service": call.service, "model": call.model, "provider": call.provider}[dimension]
        by_name[name] = by_name.get(name, 0) + call.cost_nusd
    ranked = sorted(by_name.items(), key=lambda kv: (-kv[1], kv[0]))
    return [
        {"dimension": dimension, "name": n, "cost_nusd": c, "share": share_text(c, total)}
        for n, c in ranked
    ]


def slack_alert_id(message: SlackRequest) -> str | None:
    """The alert id a one-alert Slack message names in its context block."""
    for block in message.blocks:
        if block.get("type") == "context":
            for element in block.get("elements", []):
                found = re.search(r"id ([0-9a-f-]{36})", str(element.get("text", "")))
                if found:
                    return found.group(1)
    return None


def utc_midnight_after(ts: datetime) -> datetime:
    return datetime(ts.year, ts.month, ts.day, tzinfo=UTC) + timedelta(days=1)


def config_text(bootstrap: str, webhook_url: str, tmp_path: Path) -> str:
    return f"""
[kafka]
bootstrap_servers = "{bootstrap}"
partitions = 1                 # one partition: the ledger sees the events in SDK order

[worker]
http_port = {{http_port}}
state_dir = "{tmp_path / "state"}"
status_interval_s = 0.5

[clickhouse]
dsn = "chdb://{tmp_path / "chdb"}"

[[budgets]]
name = "{BUDGET}"
period = "day"
timezone = "UTC"
limit_usd = "2.00"
per_request_limit_usd = "0.25"
on_exhausted = "block"

[detect]
enabled = false                # spike detection is tested elsewhere; this test counts messages

[alerting]
group_wait_s = 0
group_interval_s = 1
group_by = ["alert_id"]        # one message per alert: this test counts them
default_inhibit = false        # every threshold is announced, not just the highest

[[alerting.receivers]]
name = "oncall"
type = "slack"
webhook_url = "{webhook_url}"
"""


def alert_rows(worker: WorkerProcess, kind: str) -> list[dict[str, Any]]:
    rows = worker.query(
        "SELECT alert_id, severity, status, title, labels, figures, contributors "
        f"FROM alerts WHERE kind = '{kind}' ORDER BY fired_at, alert_id"
    )
    return [
        {
            "alert_id": r[0],
            "severity": r[1],
            "status": r[2],
            "title": r[3],
            "labels": r[4],
            "figures": r[5],
            "contributors": orjson.loads(r[6]),
        }
        for r in rows
    ]


def replay_alert(bootstrap: str, alert_id: str) -> int:
    """Produce again the alerts-topic record of ``alert_id`` (same key and bytes); its offset."""

    async def run() -> int:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
        )
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await consumer.start()
        await producer.start()
        try:
            tp = TopicPartition(topics.ALERTS, 0)
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            while await consumer.position(tp) < end:
                for record in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    if orjson.loads(record.value or b"{}").get("alert_id") == alert_id:
                        sent = await producer.send_and_wait(
                            topics.ALERTS, record.value, key=record.key, partition=0
                        )
                        return int(sent.offset)
            raise AssertionError(f"alert {alert_id} is not on {topics.ALERTS}")
        finally:
            await producer.stop()
            await consumer.stop()

    return asyncio.run(run())


def alerts_consumed_to(bootstrap: str) -> int:
    """The worker's committed offset on the alerts topic (-1 before its first commit)."""

    async def run() -> int:
        # A consumer of the worker's group that never subscribes: it reads the group's
        # committed offset without joining the group.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=APP_ID, enable_auto_commit=False
        )
        await consumer.start()
        try:
            offset = await consumer.committed(TopicPartition(topics.ALERTS, 0))
        finally:
            await consumer.stop()
        return -1 if offset is None else int(offset)

    return asyncio.run(run())


def status_is(
    follower: BudgetStatusFollower, spent_nusd: int, state: str, limit_nusd: int
) -> BudgetStatus:
    """Wait until the SDK's follower holds exactly this status of the budget."""

    def matches(statuses: dict[str, BudgetStatus]) -> bool:
        s = statuses.get(BUDGET)
        return s is not None and (s.spent_nusd, s.state, s.limit_nusd) == (
            spent_nusd,
            state,
            limit_nusd,
        )

    if not follower.wait_for(matches, 30):
        raise AssertionError(
            f"status never became {(spent_nusd, state, limit_nusd)}: {follower.get(BUDGET)!r}"
        )
    status = follower.get(BUDGET)
    assert status is not None
    return status


def send(calls: list[Call]) -> None:
    for call in calls:
        spendwatch.record(
            "chat",
            service=call.service,
            provider=call.provider,
            model=call.model,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cost_usd=call.cost_usd,
        )
    assert spendwatch.flush(20.0)


def test_fleet_overrun_alerts_blocks_and_override_lets_calls_through(
    broker: TansuBroker, slack: SlackServer, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    if utc_midnight_after(now) - now < timedelta(minutes=3):
        # The daily period must not reset mid-test: start in the next one.
        time.sleep((utc_midnight_after(now) - now).total_seconds() + 1)
        now = datetime.now(UTC)
    period_start = utc_midnight_after(now) - timedelta(days=1)
    reset_at = utc_midnight_after(now)

    waves = plan_waves()
    calls = [c for burst, crossing in waves for c in (*burst, crossing)]
    spent_nusd = WAVE_TOTALS[-1]
    assert sum(c.cost_nusd for c in calls) == spent_nusd
    crossings = expected_threshold_crossings(calls)
    # Each wave's last call crosses its threshold, whatever the order within the burst (costs
    # are positive, so no prefix of a burst crosses when the whole burst does not).
    assert {key: spent for key, (spent, _) in crossings.items()} == dict(
        zip(("0.5", "0.8", "0.95", "1"), WAVE_TOTALS, strict=True)
    )

    bootstrap = broker.bootstrap_servers
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPENDWATCH_")}
    guard: Guard | None = None
    try:
        with running_worker(
            config_text(bootstrap, slack.webhook_url(), tmp_path), tmp_path
        ) as worker:
            # -- the guard exists before the overrun and sees the budget's fresh status ----------
            guard = spendwatch.guard(budgets=[BUDGET], bootstrap_servers=bootstrap)
            follower = guard.follower
            assert isinstance(follower, BudgetStatusFollower)
            first = status_is(follower, 0, "ok", LIMIT_NUSD)
            assert (first.period_start, first.reset_at) == (period_start, reset_at)
            assert first.per_request_limit_nusd == PER_REQUEST_LIMIT_NUSD
            assert first.on_exhausted == "block"
            assert guard.check("openai", "gpt-4o").model == "gpt-4o"
            with pytest.raises(PerRequestLimitExceeded):
                guard.check("openai", "gpt-4o", estimated_cost_usd="0.250000001")
            assert guard.check("openai", "gpt-4o", estimated_cost_usd="0.25").model == "gpt-4o"

            # -- the fleet overruns the budget in four waves --------------------------------------
            spendwatch.configure(bootstrap_servers=bootstrap, service="fleet")
            for (burst, crossing), total, state in zip(
                waves, WAVE_TOTALS, WAVE_STATES, strict=True
            ):
                send(burst)
                send([crossing])
                status_is(follower, total, state, LIMIT_NUSD)
                if state != "exhausted":
                    assert guard.check("openai", "gpt-4o").model == "gpt-4o"

            # -- the exhausted status reached the SDK: the guard blocks ---------------------------
            with pytest.raises(BudgetExceeded) as blocked:
                guard.check("anthropic", "claude-sonnet-4-5")
            exc = blocked.value
            assert exc.budget == BUDGET
            assert exc.spent_usd == Decimal("2.068339517")
            assert exc.limit_usd == Decimal("2")
            assert exc.reset_at == reset_at
            assert exc.override_until is None
            assert guard.stats.blocked == 1 and guard.stats.unknown == 0

            # -- alerts: each threshold exactly once, in ClickHouse and on Slack ------------------
            wait_for(
                lambda: worker.scalar("SELECT count() FROM alerts") == 5,
                30,
                "4 threshold + 1 per-request alerts in ClickHouse",
            )
            thresholds = {a["labels"]["threshold"]: a for a in alert_rows(worker, "threshold")}
            assert sorted(thresholds) == ["0.5", "0.8", "0.95", "1"]
            for at, key, severity in THRESHOLDS:
                row = thresholds[key]
                crossing_spent, counted = crossings[key]
                assert row["alert_id"] == alert_id_for(
                    "threshold", BUDGET, period_start.isoformat(), key
                )
                assert (row["severity"], row["status"]) == (severity, "firing")
                assert row["labels"]["budget"] == BUDGET
                assert row["labels"]["period"] == period_start.isoformat()
                figures = row["figures"]
                assert figures["spent_usd"] == usd_text(crossing_spent), key
                assert figures["limit_usd"] == "2.00"
                assert figures["percent"] == percent_text(crossing_spent, LIMIT_NUSD)
                assert figures["resets_at"] == reset_at.isoformat()
                assert crossing_spent * 100 >= LIMIT_NUSD * int(at * 100)

            # The emergency alert carries the usage analysis up to the call that exhausted it.
            emergency = thresholds["1"]
            exhausted_at, counted = crossings["1"]
            analysis = emergency["contributors"]
            assert [c for c in analysis if c["dimension"] == "service"] == contributors(
                counted, "service"
            )
            assert [c for c in analysis if c["dimension"] == "model"] == contributors(
                counted, "model"
            )
            assert [c for c in analysis if c["dimension"] == "provider"] == contributors(
                counted, "provider"
            )
            assert len(analysis) == 4 + 4 + 2
            assert sum(c["cost_nusd"] for c in analysis if c["dimension"] == "service") == (
                exhausted_at
            )
            assert "spendwatch budgets override fleet-daily" in str(
                worker.scalar(
                    f"SELECT summary FROM alerts WHERE alert_id = '{emergency['alert_id']}'"
                )
            )

            [per_request] = alert_rows(worker, "per_request")
            assert per_request["severity"] == "warning"
            assert {k: per_request["labels"][k] for k in ("budget", "service", "model")} == {
                "budget": BUDGET,
                "service": "planner",
                "model": "claude-sonnet-4-5",
            }
            assert per_request["figures"]["cost_usd"] == "0.312345678"
            assert per_request["figures"]["per_request_limit_usd"] == "0.25"
            assert per_request["figures"]["input_tokens"] == "120000"
            assert "planner / claude-sonnet-4-5" in per_request["title"]
            big_event_id = worker.scalar(
                f"SELECT toString(event_id) FROM usage_events WHERE cost_nusd = {BIG_REQUEST_NUSD}"
            )
            assert per_request["alert_id"] == alert_id_for("per_request", BUDGET, big_event_id)

            expected_ids = {row["alert_id"] for row in thresholds.values()}
            expected_ids.add(per_request["alert_id"])
            wait_for(
                lambda: {slack_alert_id(m) for m in slack.delivered} == expected_ids,
                30,
                "the five alerts on Slack",
            )
            emergency_messages = [
                m for m in slack.delivered if slack_alert_id(m) == emergency["alert_id"]
            ]
            [emergency_message] = emergency_messages
            assert "EMERGENCY" in emergency_message.text
            [top] = [
                b["text"]["text"]
                for b in emergency_message.blocks
                if b.get("type") == "section"
                and "text" in b
                and b["text"]["text"].startswith("*Top contributors*")
            ]
            service_lines = [line for line in top.splitlines() if line.startswith("\u2022 service")]
            assert [line.split()[2].rstrip(":") for line in service_lines] == [
                c["name"] for c in contributors(counted, "service")
            ]

            # -- the operator raises the limit with the real CLI ----------------------------------
            cli = subprocess.run(
                [sys.executable, "-m", "streams.cli", "budgets", "override", BUDGET,
                 "--limit-usd", "2.50", "--for", "2h", "--reason", "fleet launch",
                 "--by", "oncall", "--config", str(worker.config),
                 "--bootstrap-servers", bootstrap],
                env=env, capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert cli.returncode == 0, cli.stderr
            command = orjson.loads(cli.stdout)
            assert (command["budget"], command["limit_usd"]) == (BUDGET, "2.5")
            issued_at = datetime.fromisoformat(command["at"])
            until = datetime.fromisoformat(command["until"])
            assert until - issued_at == timedelta(hours=2)

            # 2.068339517 of 2.50 = 82.73 %: past 80 % of the new limit, so "warning".
            raised = status_is(follower, spent_nusd, "warning", OVERRIDE_LIMIT_NUSD)
            assert raised.override_until == until
            assert guard.check("anthropic", "claude-sonnet-4-5").model == "claude-sonnet-4-5"
            assert guard.stats.blocked == 1

            wait_for(
                lambda: worker.scalar("SELECT count() FROM alerts WHERE kind = 'override'") == 1,
                30,
                "the override alert in ClickHouse",
            )
            [override] = alert_rows(worker, "override")
            assert override["alert_id"] == alert_id_for(
                "override", BUDGET, issued_at.isoformat(), OVERRIDE_LIMIT_NUSD, until.isoformat()
            )
            assert {
                k: override["figures"][k]
                for k in ("spent_usd", "limit_usd", "previous_limit_usd", "percent", "by")
            } == {
                "spent_usd": "2.068339517",
                "limit_usd": "2.50",
                "previous_limit_usd": "2.00",
                "percent": percent_text(spent_nusd, OVERRIDE_LIMIT_NUSD),
                "by": "oncall",
            }
            assert override["figures"]["override_until"] == until.isoformat()

            # Spend after the override that crosses no new threshold (of $2.50) alerts nothing.
            send([Call("support-bot", AFTER_OVERRIDE_NUSD, 300, 40)])
            status_is(follower, spent_nusd + AFTER_OVERRIDE_NUSD, "warning", OVERRIDE_LIMIT_NUSD)
            assert guard.check("openai", "gpt-4o-mini").model == "gpt-4o-mini"
            expected_ids.add(override["alert_id"])
            wait_for(
                lambda: {slack_alert_id(m) for m in slack.delivered} == expected_ids,
                30,
                "the override announcement on Slack",
            )
            # No fixed wait for "nothing more came": replay the override alert onto the alerts
            # topic (as a restarted worker might) and wait until the worker has consumed past
            # it. The topic has one partition, so every alert before it has been handled too,
            # and a repeat that got through would already be a second row in ``alerts``.
            replayed_at = replay_alert(bootstrap, override["alert_id"])
            wait_for(
                lambda: alerts_consumed_to(bootstrap) > replayed_at,
                30,
                "the worker to consume the alerts topic past the replayed copy",
            )
            delivered = [slack_alert_id(m) for m in slack.delivered]
            assert Counter(delivered) == dict.fromkeys(expected_ids, 1), delivered  # once each
            assert len(slack.requests) == len(expected_ids)  # no failed attempt either
            assert worker.query(
                "SELECT kind, count(), uniqExact(alert_id) FROM alerts GROUP BY kind ORDER BY kind"
            ) == [["override", 1, 1], ["per_request", 1, 1], ["threshold", 4, 4]]
            assert worker.scalar("SELECT sum(cost_nusd) FROM usage_events") == (
                spent_nusd + AFTER_OVERRIDE_NUSD
            )
    finally:
        spendwatch.shutdown(5.0)
        if guard is not None and isinstance(guard.follower, BudgetStatusFollower):
            guard.follower.stop()
