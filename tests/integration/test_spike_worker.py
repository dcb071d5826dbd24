"""A runaway through the real worker: one spike alert, then one resolved notice.

SDK (``spendwatch.record`` with event time ``ts=``) -> real Tansu broker -> the worker process
(``python -m streams.cli worker``: ingest, pricing, the detect agent, the alerts agent) ->
chDB ``alerts`` + a loopback HTTP server speaking the Slack incoming-webhook API.

The history is ~100 minutes of one service, ``search``, ending at the current wall-clock
minute: 9-11 calls a minute at $0.10-$0.12 (deterministic noise), then a runaway loop of 40
calls a minute in minutes 60-62 (4x the baseline), then normal traffic again. Detection runs
on event time, so the history is replayed in seconds.

Two oracles, both independent of the worker:

* the README's maths done here with ``Decimal``: the alert fires when minute 61 closes
  (``confirm_min`` = 2 anomalous minutes), ``observed`` is the mean spend of minutes 60-61,
  ``baseline`` the median of minute 61's trailing 60 minutes (1-60); it resolves when minute
  65 closes (``resolve_min`` = 3 normal minutes), its baseline then being the median of minutes
  5-64 without the episode's minutes 60-62;
* ``streams.detect.DetectStream`` run offline in this test over the same events (priced here
  from the supplied costs): the worker must publish exactly the alerts it returns, field for
  field ("the same code runs in the stream and offline").

Pacing, and why: the dispatcher drops a resolved alert whose firing notice never went out
(Alertmanager-style: nothing to resolve). A replay at full speed produces both within
milliseconds, so the test waits for the firing notice to reach Slack before it sends the
event that closes minute 65 -- as it is live, where minutes 63-65 take three minutes. While it
waits it keeps sending minute 62-66 traffic every 0.5 s: a worker that sees no event for two
5 s ticks closes minutes by the wall clock, and the rest of the replay would then be late.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import spendwatch

from schemas.alerts import Alert, alert_id_for
from schemas.money import usd_to_nusd
from streams.broker import TansuBroker
from streams.detect import DetectSettings, DetectStream
from tests.support.slack_server import SlackRequest, SlackServer
from tests.support.worker import WorkerProcess, running_worker, wait_for

pytestmark = pytest.mark.integration

SERVICE = "search"
MINUTES = 100  # minute 0 starts 100 minutes before the current wall-clock minute
RUNAWAY = range(60, 63)
RUNAWAY_CALLS = 40
NORMAL_CALLS = (9, 10, 11, 10)  # by minute % 4: median 10 calls a minute
COSTS_USD = ("0.10", "0.11", "0.12")  # by (call + minute) % 3
PLANNER_CALLS = 10  # in a runaway minute, calls after the 10th come from the looping agent
CONFIG = """
[kafka]
bootstrap_servers = "{bootstrap}"
partitions = 1

[worker]
http_port = {{http_port}}
state_dir = "{state_dir}"

[clickhouse]
dsn = "chdb://{chdb}"

# The detector's defaults throughout (window 60 min, 30 min cold start, confirm 2, resolve 3,
# lateness 15 s): the 100-minute history is long enough, so nothing is tuned for the test.
[detect]

[alerting]
group_wait_s = 0
group_interval_s = 1

[[alerting.receivers]]
name = "oncall"
type = "slack"
webhook_url = "{webhook_url}"
"""


@dataclass(frozen=True)
class Call:
    minute: int
    ts: datetime
    cost_usd: str
    agent: str


def calls_in(minute: int) -> int:
    return RUNAWAY_CALLS if minute in RUNAWAY else NORMAL_CALLS[minute % 4]


def plan(t0: datetime) -> list[Call]:
    """Every call in event-time order, spread over the first 55 s of its minute."""
    calls = []
    for minute in range(MINUTES):
        n = calls_in(minute)
        for k in range(n):
            calls.append(
                Call(
                    minute=minute,
                    ts=t0 + timedelta(minutes=minute, seconds=k * 55 / n),
                    cost_usd=COSTS_USD[(k + minute) % 3],
                    agent="looper" if k >= PLANNER_CALLS else "planner",
                )
            )
    return calls


def priced(call: Call) -> dict[str, Any]:
    """The fields of the priced event the detector reads, computed here (not by the pricer)."""
    return {
        "ts": call.ts.isoformat(),
        "service": SERVICE,
        "operation": "chat",
        "status": "ok",
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 2_000,
        "output_tokens": 500,
        "tags": {"agent": call.agent},
        "cost_nusd": usd_to_nusd(Decimal(call.cost_usd)),
    }


def record(call: Call) -> None:
    spendwatch.record(
        "chat",
        service=SERVICE,
        ts=call.ts,
        provider="openai",
        model="gpt-4o",
        input_tokens=2_000,
        output_tokens=500,
        cost_usd=call.cost_usd,
        tags={"agent": call.agent},
    )


def offline_alerts(calls: list[Call]) -> list[Alert]:
    """The oracle: the detector run in this process over the same events, in send order."""
    stream = DetectStream(DetectSettings.from_config({}))
    alerts: list[Alert] = []
    for call in calls:
        alerts += stream.add(priced(call))
    assert stream.minutes.late_events == 0
    return alerts + stream.flush()


def is_firing_notice(message: SlackRequest, alert_id: str) -> bool:
    return (
        message.text.startswith("[spendwatch WARNING]")
        and alert_id in orjson.dumps(message.blocks).decode()
    )


ALERT_COLUMNS = (
    "alert_id",
    "kind",
    "severity",
    "status",
    "title",
    "summary",
    "fired_at",
    "labels",
    "figures",
    "contributors",
)


def worker_alert_rows(worker: WorkerProcess) -> list[dict[str, Any]]:
    answer = worker.query(
        f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts ORDER BY fired_at, status"
    )
    return [dict(zip(ALERT_COLUMNS, row, strict=True)) for row in answer]


def as_row(alert: Alert) -> dict[str, Any]:
    """What the ``alerts`` table should hold for ``alert`` (as the SQL endpoint renders it)."""
    return {
        "alert_id": alert.alert_id,
        "kind": alert.kind,
        "severity": alert.severity,
        "status": alert.status,
        "title": alert.title,
        "summary": alert.summary,
        "fired_at": alert.fired_at,
        "labels": dict(alert.labels),
        "figures": dict(alert.figures),
        "contributors": orjson.loads(orjson.dumps(alert.to_dict()["contributors"])),
    }


def normalise(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    fired_at = datetime.fromisoformat(row["fired_at"])
    out["fired_at"] = fired_at if fired_at.tzinfo else fired_at.replace(tzinfo=UTC)
    out["contributors"] = orjson.loads(row["contributors"])
    return out


def usd(amount: Decimal) -> str:
    """USD as the detector renders money figures: nine decimal places."""
    return str(amount.quantize(Decimal("1e-9")))


def test_runaway_through_the_worker_pages_once_and_resolves_once(
    broker: TansuBroker, slack: SlackServer, tmp_path: Path
) -> None:
    config = CONFIG.format(
        bootstrap=broker.bootstrap_servers,
        state_dir=tmp_path / "state",
        chdb=tmp_path / "chdb",
        webhook_url=slack.webhook_url(),
    )
    with running_worker(config, tmp_path) as worker:
        now = datetime.now(UTC)
        t0 = now.replace(second=0, microsecond=0) - timedelta(minutes=MINUTES)
        calls = plan(t0)
        expected = offline_alerts(calls)

        # -- the independent maths (README "The baseline", "Lifecycle") ---------------------
        spend = {m: Decimal(0) for m in range(MINUTES)}
        for c in calls:
            spend[c.minute] += Decimal(c.cost_usd)
        start = t0 + timedelta(minutes=RUNAWAY[0])
        alert_id = alert_id_for("spike", SERVICE, "spend", start.isoformat())
        observed = (spend[60] + spend[61]) / 2
        baseline = statistics.median(spend[m] for m in range(1, 61))
        resolved_baseline = statistics.median(spend[m] for m in range(5, 65) if m not in RUNAWAY)
        # minutes 60 and 61: 40 calls, 13 x ($0.10 + $0.11 + $0.12) + $0.10 or $0.11
        assert (spend[60], spend[61], spend[62]) == (
            Decimal("4.39"),
            Decimal("4.40"),
            Decimal("4.41"),
        )
        assert (observed, baseline) == (Decimal("4.395"), Decimal("1.10"))  # 4x: a warning
        assert (spend[65], resolved_baseline) == (Decimal("1.11"), Decimal("1.10"))
        excess = sum(
            (spend[m] - baseline for m in RUNAWAY), Decimal(0)
        )  # baseline frozen during the episode
        assert [(a.alert_id, a.status) for a in expected] == [
            (alert_id, "firing"),
            (alert_id, "resolved"),
        ]
        fired, resolved = expected
        assert fired.severity == "warning" and fired.labels["cause"] == "runaway_loop"
        assert fired.fired_at == t0 + timedelta(minutes=62)  # minute 61 closed
        assert resolved.fired_at == t0 + timedelta(minutes=66)  # minute 65 closed
        assert fired.figures["observed"] == usd(observed)
        assert fired.figures["baseline"] == usd(baseline)
        assert fired.figures["episode_start"] == start.isoformat()
        assert resolved.figures["observed"] == usd(spend[65])
        assert resolved.figures["baseline"] == usd(resolved_baseline)
        assert fired.figures["ratio"] == "4.00"  # 4.395 / 1.10 = 3.995
        assert fired.figures["excess_usd"] == usd((observed - baseline) * 2)
        assert resolved.figures["resolution"] == "returned_to_baseline"
        assert resolved.figures["excess_usd"] == usd(excess)  # $9.90
        assert resolved.figures["peak_ratio"] == "4.01"  # minute 62: 4.41 / 1.10
        assert resolved.figures["episode_minutes"] == "6"  # minutes 60-65

        # -- the replay through the SDK ------------------------------------------------------
        fires_by = t0 + timedelta(minutes=62, seconds=30)  # past 62:15, which closes minute 61
        resolves_at = t0 + timedelta(minutes=66, seconds=15)  # closes minute 65
        head = [c for c in calls if c.ts < fires_by]
        middle = [c for c in calls if fires_by <= c.ts < resolves_at]
        tail = [c for c in calls if c.ts >= resolves_at]
        spendwatch.configure(bootstrap_servers=broker.bootstrap_servers, service=SERVICE)
        try:
            for c in head:
                record(c)
            assert spendwatch.flush(30.0)
            notified = False
            for c in middle:
                record(c)
                notified = notified or any(is_firing_notice(m, alert_id) for m in slack.delivered)
                if not notified:
                    assert spendwatch.flush(10.0)
                    time.sleep(0.5)
            wait_for(
                lambda: any(is_firing_notice(m, alert_id) for m in slack.delivered),
                1.0,
                "the firing notice before the event that resolves the spike",
            )
            for c in tail:
                record(c)
            assert spendwatch.flush(30.0)
            assert spendwatch.stats().dropped == 0
        finally:
            spendwatch.shutdown(5.0)

        # -- what the worker did ---------------------------------------------------------------
        total_nusd = sum(usd_to_nusd(Decimal(c.cost_usd)) for c in calls)
        wait_for(
            lambda: (
                worker.query("SELECT count(), sum(cost_nusd) FROM usage_events")
                == [[len(calls), total_nusd]]
            ),
            30,
            f"{len(calls)} priced rows",
        )
        wait_for(
            lambda: worker.scalar("SELECT count() FROM alerts") >= 2 and len(slack.delivered) >= 2,
            30,
            "two alert rows and two Slack notices",
        )
        # Two detect-idle ticks (5 s apart) close the last minutes by the wall clock: no
        # "traffic dropped" may follow, and no notice may repeat.
        time.sleep(11.0)
        rows = [normalise(r) for r in worker_alert_rows(worker)]
        assert rows == [as_row(a) for a in expected]
        assert worker.query(
            "SELECT kind, status, count() FROM alerts GROUP BY kind, status ORDER BY status"
        ) == [["spike", "firing", 1], ["spike", "resolved", 1]]

        texts = [m.text for m in slack.delivered]
        assert len(slack.requests) == 2, texts
        first, second = slack.delivered
        assert is_firing_notice(first, alert_id), first.text
        assert second.text.startswith("[spendwatch RESOLVED]"), second.text
        assert alert_id in orjson.dumps(second.blocks).decode()
        assert worker.query(
            "SELECT status, receiver, outcome, count() FROM alert_deliveries FINAL "
            "GROUP BY status, receiver, outcome ORDER BY status"
        ) == [["firing", "oncall", "sent", 1], ["resolved", "oncall", "sent", 1]]
