"""A restarted worker keeps its detector baselines: history is read back from ClickHouse.

Run 1: a worker on its own Tansu broker takes 70 minutes of one service's normal traffic
(9-11 calls a minute at $0.010-$0.012, event time ending ten minutes ago) and stores it in
chDB; no alert. Everything stops. Run 2: a fresh, empty broker (the embedded default forgets
everything when it stops) and a new worker on the same ClickHouse data. Its first events are
a runaway loop: 40 calls a minute for three minutes, $0.44 a minute. Without history that is
neither 30 minutes of baseline nor the $2/min that alerts a service with none, so a cold
detector stays silent (asserted below); the restarted worker pages once, with the baseline
of run 1's minutes, and resolves once when the wall clock closes the silent minutes after.

The oracle is ``DetectStream`` run in this test over the same minutes (history built here
from the planned calls, not read from ClickHouse): the worker's alert rows must equal its
alerts field for field.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import spendwatch

from schemas.alerts import Alert
from schemas.money import usd_to_nusd
from streams import topics
from streams.broker import TansuBroker, create_topics
from streams.detect import DetectSettings, DetectStream, MinuteBucket
from streams.detect.history import ServiceHistory
from tests.integration.test_spike_worker import as_row, normalise, worker_alert_rows
from tests.support.slack_server import SlackServer
from tests.support.worker import running_worker, wait_for

pytestmark = pytest.mark.integration

SERVICE = "search"
HISTORY = range(0, 70)
RUNAWAY = range(70, 73)
START_AGO_MIN = 80  # minute 0 starts this long before the current wall-clock minute
COSTS_USD = ("0.010", "0.011", "0.012")
NORMAL_CALLS = (9, 10, 11, 10)
TOKENS = (800, 200)
DETECT = {"busy_min_requests_per_min": 1000}  # the replay ends minutes ago: no drop alert


def config(broker: TansuBroker, slack: SlackServer, tmp_path: Path) -> str:
    return f"""
[kafka]
bootstrap_servers = "{broker.bootstrap_servers}"
partitions = 1

[worker]
http_port = {{http_port}}
state_dir = "{tmp_path / "state"}"

[clickhouse]
dsn = "chdb://{tmp_path / "chdb"}"

[detect]
busy_min_requests_per_min = {DETECT["busy_min_requests_per_min"]}

[alerting]
group_wait_s = 0
group_interval_s = 1

[[alerting.receivers]]
name = "oncall"
type = "slack"
webhook_url = "{slack.webhook_url()}"
"""


def calls(t0: datetime, minutes: range) -> list[tuple[datetime, str]]:
    """``(ts, cost_usd)`` of every call in ``minutes``, spread over the first 55 s."""
    out = []
    for minute in minutes:
        n = 40 if minute in RUNAWAY else NORMAL_CALLS[minute % 4]
        for k in range(n):
            ts = t0 + timedelta(minutes=minute, seconds=k * 55 / n)
            out.append((ts, COSTS_USD[(k + minute) % 3]))
    return out


def send(bootstrap: str, planned: list[tuple[datetime, str]]) -> None:
    spendwatch.configure(bootstrap_servers=bootstrap, service=SERVICE)
    try:
        for ts, cost in planned:
            spendwatch.record(
                "chat",
                ts=ts,
                provider="openai",
                model="gpt-4o",
                input_tokens=TOKENS[0],
                output_tokens=TOKENS[1],
                cost_usd=cost,
            )
        assert spendwatch.flush(30.0)
        assert spendwatch.stats().dropped == 0
    finally:
        spendwatch.shutdown(5.0)


def priced(ts: datetime, cost: str) -> dict[str, Any]:
    return {
        "ts": ts.isoformat(),
        "service": SERVICE,
        "status": "ok",
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": TOKENS[0],
        "output_tokens": TOKENS[1],
        "cost_nusd": usd_to_nusd(Decimal(cost)),
    }


def history_buckets(planned: list[tuple[datetime, str]]) -> list[MinuteBucket]:
    """Run 1's minutes as the detector sees them. $0.01 per 1,000 tokens is $10/Mtok: every
    call counts as one on an expensive model."""
    by_minute: dict[datetime, list[int]] = {}
    for ts, cost in planned:
        by_minute.setdefault(ts.replace(second=0, microsecond=0), []).append(
            usd_to_nusd(Decimal(cost))
        )
    return [
        MinuteBucket(
            service=SERVICE,
            minute_start=minute,
            spend_nusd=sum(costs),
            requests=len(costs),
            tokens=len(costs) * sum(TOKENS),
            expensive_spend_nusd=sum(costs),
            expensive_requests=len(costs),
            requests_by_provider={"openai": len(costs)},
        )
        for minute, costs in sorted(by_minute.items())
    ]


def offline(
    history: list[MinuteBucket] | None,
    live: list[tuple[datetime, str]],
    now: datetime | None,
    open_alerts: tuple[Alert, ...] | list[Alert] = (),
) -> list[Alert]:
    """The detector run here over ``live`` after loading ``history``; with ``now``, two idle
    ticks at ``now`` then close the silent minutes by the wall clock."""
    stream = DetectStream(DetectSettings.from_config(dict(DETECT)))
    if history is not None:
        loaded = datetime.now(UTC) if now is None else now
        history_of = {SERVICE: ServiceHistory.from_buckets(history)}
        stream.load_history(history_of, loaded, open_alerts)
    alerts: list[Alert] = []
    for ts, cost in live:
        alerts += stream.add(priced(ts, cost))
    for _ in range(2 if now is not None else 0):
        alerts += stream.tick(now)
    return alerts


def test_a_restarted_worker_keeps_its_baselines(slack: SlackServer, tmp_path: Path) -> None:
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=START_AGO_MIN)
    run1 = calls(t0, HISTORY)
    # the runaway, then one call at minute 73:20 that closes minute 72 by event time
    run2 = [*calls(t0, RUNAWAY), (t0 + timedelta(minutes=73, seconds=20), COSTS_USD[0])]

    with TansuBroker() as broker:
        asyncio.run(create_topics(broker.bootstrap_servers, topics.ALL, 1))
        with running_worker(config(broker, slack, tmp_path), tmp_path) as worker:
            send(broker.bootstrap_servers, run1)
            wait_for(
                lambda: worker.scalar("SELECT sum(events) FROM spend_by_minute") == len(run1),
                60,
                "run 1 in the minute rollups",
            )
            time.sleep(11.0)  # two idle ticks: nothing in run 1 is an alert
            assert worker.scalar("SELECT count() FROM alerts") == 0

    now = datetime.now(UTC)
    assert offline(None, run2, now) == []  # what a worker starting cold would do
    expected = offline(history_buckets(run1), run2, now)
    assert [(a.kind, a.status) for a in expected] == [("spike", "firing"), ("spike", "resolved")]
    fired, resolved = expected
    assert fired.labels["cause"] == "runaway_loop"
    assert fired.fired_at == t0 + timedelta(minutes=72)  # minute 71 closed
    # baseline: median of minute 71's trailing hour, minutes 11-69 from run 1 and the live 70
    spend = {m: Decimal(0) for m in HISTORY}
    for ts, cost in run1:
        spend[int((ts - t0).total_seconds() // 60)] += Decimal(cost)
    baseline = statistics.median([spend[m] for m in range(11, 70)] + [Decimal("0.44")])
    assert fired.figures["baseline"] == str(baseline.quantize(Decimal("1e-9")))
    assert resolved.fired_at == t0 + timedelta(minutes=76)  # minutes 73-75 normal (silent)

    with TansuBroker() as broker:  # a fresh, empty broker: the stream remembers nothing
        asyncio.run(create_topics(broker.bootstrap_servers, topics.ALL, 1))
        with running_worker(config(broker, slack, tmp_path), tmp_path) as worker:
            send(broker.bootstrap_servers, run2)
            wait_for(
                lambda: worker.scalar("SELECT count() FROM alerts") == 2,
                60,
                "the spike's firing and resolved rows",
            )
            wait_for(lambda: len(slack.delivered) == 2, 30, "two Slack notices")
            time.sleep(6.0)  # one more tick: nothing repeats
            rows = [normalise(r) for r in worker_alert_rows(worker)]
            assert rows == [as_row(a) for a in expected]
            assert worker.query(
                "SELECT status, outcome, count() FROM alert_deliveries FINAL "
                "GROUP BY status, outcome ORDER BY status"
            ) == [["firing", "sent", 1], ["resolved", "sent", 1]]
    assert len(slack.requests) == 2
    assert slack.delivered[0].text.startswith("[spendwatch WARNING]")
    assert slack.delivered[1].text.startswith("[spendwatch RESOLVED]")


def test_a_spike_open_at_a_restart_resolves_under_its_own_id(
    slack: SlackServer, tmp_path: Path
) -> None:
    """Run 1 pages for a runaway and stops while it is still firing; run 2 sees normal
    traffic and resolves that same alert (same id, one Slack notice each) instead of leaving
    it open for good and opening a second one."""
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=START_AGO_MIN)
    run1 = [*calls(t0, range(0, 73)), (t0 + timedelta(minutes=73, seconds=20), COSTS_USD[0])]
    run2 = [*calls(t0, range(74, 77)), (t0 + timedelta(minutes=77, seconds=20), COSTS_USD[0])]
    first = offline(None, run1, None)
    assert [(a.kind, a.status) for a in first] == [("spike", "firing")]
    [fired] = first

    sent = list(run1)
    with TansuBroker() as broker:
        asyncio.run(create_topics(broker.bootstrap_servers, topics.ALL, 1))
        with running_worker(config(broker, slack, tmp_path), tmp_path):
            send(broker.bootstrap_servers, run1)
            # Until the notice is out, keep minute 73 open with a call a second: an idle
            # worker would close the silent minutes by the wall clock and resolve the spike.
            keep = 0
            while not slack.delivered and keep < 60:
                keep += 1
                call = (t0 + timedelta(minutes=73, seconds=20 + keep * 0.5), COSTS_USD[0])
                send(broker.bootstrap_servers, [call])
                sent.append(call)
                time.sleep(1.0)
            assert len(slack.delivered) == 1 and slack.delivered[0].text.startswith(
                "[spendwatch WARNING]"
            )

    now = datetime.now(UTC)
    history = history_buckets(sent)
    expected = offline(history, run2, now, [fired])
    assert [(a.alert_id, a.status) for a in expected] == [(fired.alert_id, "resolved")]
    [resolved] = expected
    assert resolved.fired_at == t0 + timedelta(minutes=77)  # minutes 74-76 normal again
    assert resolved.figures["episode_minutes"] == "7"  # minutes 70-76

    with TansuBroker() as broker:
        asyncio.run(create_topics(broker.bootstrap_servers, topics.ALL, 1))
        with running_worker(config(broker, slack, tmp_path), tmp_path) as worker:
            send(broker.bootstrap_servers, run2)
            wait_for(lambda: len(slack.delivered) == 2, 60, "the resolved notice")
            time.sleep(11.0)  # two idle ticks: nothing else
            rows = [normalise(r) for r in worker_alert_rows(worker)]
            assert rows == [as_row(fired), as_row(resolved)]
    assert len(slack.requests) == 2
    assert slack.delivered[1].text.startswith("[spendwatch RESOLVED]")
    assert fired.alert_id in orjson.dumps(slack.delivered[1].blocks).decode()
