"""Several workers alert as one: the same scripted overrun through one worker and through two
gives the same notifications, once each; a new owner of an alert partition (rebalance) or a
worker whose state dir is lost neither repeats what was delivered nor loses what was accepted;
the daily digest is not repeated when the leader changes on its day.

Real parts: the Tansu broker, ``spendwatch worker`` subprocesses with embedded chDB, a loopback
Slack webhook and an ``aiosmtpd`` SMTP server. Budgets ``north`` and ``south`` land on
partitions 0 and 1 of the budget topics (the producers' murmur2 partitioner, checked below);
their services are named alike, so with two workers each budget's usage, ledger and alerts
live on one worker and the two budgets on different workers.

The overrun: ``north`` ($10 a day) crosses 50 %, then 80 %, then 95 % and 100 % with one call
(the 100 % alert inhibits the 95 % one: it never goes out), ``south`` crosses 50 %. Each wave
waits for its notifications, so the expected list is exact: north 50, 80, 100 and south 50,
one Slack message and one email each.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import spendwatch
from aiokafka.partitioner import DefaultPartitioner

from schemas.alerts import alert_id_for
from streams import topics
from streams.broker import TansuBroker, create_topics
from tests.integration.test_two_workers import group_members
from tests.support.slack_server import SlackRequest, SlackServer, server_error
from tests.support.smtp_server import SmtpServer
from tests.support.worker import WorkerProcess, running_worker, wait_for

pytestmark = pytest.mark.integration

BUDGETS = ("north", "south")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# (budget, cost of the one call, thresholds it crosses, thresholds announced)
WAVES = (
    ("north", "5.00", ("0.5",), ("0.5",)),
    ("north", "3.00", ("0.8",), ("0.8",)),
    ("north", "2.10", ("0.95", "1"), ("1",)),  # 95 % is inhibited by 100 %
    ("south", "6.00", ("0.5",), ("0.5",)),
)


def config(bootstrap: str, slack: SlackServer, smtp: SmtpServer, directory: Path) -> str:
    budgets = "".join(
        f"""
[[budgets]]
name = "{name}"
period = "day"
timezone = "UTC"
limit_usd = "10"
match = {{ service = ["{name}"] }}
"""
        for name in BUDGETS
    )
    return f"""
[kafka]
bootstrap_servers = "{bootstrap}"
partitions = 2
session_timeout_ms = 6000

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
group_interval_s = 1
digest_at = "00:00"

[alerting.retry]
max_attempts = 1000            # Slack failing in the handover tests: retried, never dead
initial_backoff_s = 0.5
backoff_factor = 1.0
max_backoff_s = 0.5

[[alerting.receivers]]
name = "oncall"
type = "slack"
webhook_url = "{slack.webhook_url()}"

[[alerting.receivers]]
name = "finance"
type = "email"
to = ["finance@example.com"]
from = "spendwatch@example.com"
smtp_host = "{smtp.host}"
smtp_port = {smtp.port}
{budgets}"""


def period_start() -> str:
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC).isoformat()


def expected_ids(waves: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...]) -> set[str]:
    start = period_start()
    return {
        alert_id_for("threshold", budget, start, key)
        for budget, _, _, announced in waves
        for key in announced
    }


def alert_slack(slack: SlackServer) -> list[SlackRequest]:
    return [m for m in slack.delivered if not m.text.startswith("[spendwatch DIGEST]")]


def slack_ids(slack: SlackServer) -> list[str]:
    """The alert ids of the delivered alert messages, one list entry per id per message."""
    out: list[str] = []
    for m in alert_slack(slack):
        out += sorted(set(UUID.findall(str(m.blocks))))
    return out


def mail_ids(smtp: SmtpServer) -> list[str]:
    out: list[str] = []
    for mail in smtp.messages:
        if "digest" in str(mail.message["Subject"]).lower():
            continue
        out += sorted(set(re.findall(r"Alert id: (" + UUID.pattern + ")", mail.text)))
    return out


def spend(bootstrap: str, budget: str, cost_usd: str, ts: datetime | None = None) -> None:
    spendwatch.configure(bootstrap_servers=bootstrap, service=budget)
    try:
        spendwatch.record(
            "call", service=budget, unit="request", quantity=1, cost_usd=cost_usd, ts=ts
        )
        assert spendwatch.flush(30.0)
    finally:
        spendwatch.shutdown(5.0)


def make_dirs(tmp_path: Path, *names: str) -> list[Path]:
    out = []
    for name in names:
        d = tmp_path / name
        d.mkdir(parents=True)
        out.append(d)
    return out


@contextlib.contextmanager
def group(
    bootstrap: str, slack: SlackServer, smtp: SmtpServer, dirs: list[Path]
) -> Iterator[list[WorkerProcess]]:
    with contextlib.ExitStack() as stack:
        workers = [
            stack.enter_context(running_worker(config(bootstrap, slack, smtp, d), d)) for d in dirs
        ]
        wait_for(lambda: asyncio.run(group_members(bootstrap)) == len(dirs), 60, "the worker group")
        wait_for(
            lambda: (
                sorted(b for w in workers for b in w.health()[1]["ledgers"]["owned"])
                == sorted(BUDGETS)
            ),
            60,
            "every budget owned once",
        )
        yield workers


def owners(workers: list[WorkerProcess]) -> list[list[str]]:
    return [sorted(w.health()[1]["ledgers"]["owned"]) for w in workers]


def overrun(tmp_path: Path, count: int) -> tuple[list[str], list[str], list[list[str]]]:
    """Run the scripted overrun through ``count`` workers; the alert ids delivered to Slack
    and by email, in delivery order, and which budgets each worker owned."""
    with (
        TansuBroker() as broker,
        SlackServer().running_in_thread() as slack,
        SmtpServer() as smtp,
    ):
        bootstrap = broker.bootstrap_servers
        asyncio.run(create_topics(bootstrap, topics.ALL, 2))
        dirs = make_dirs(tmp_path, *(f"w{i}" for i in range(count)))
        with group(bootstrap, slack, smtp, dirs) as workers:
            owned = owners(workers)
            announced = 0
            for budget, cost, _, keys in WAVES:
                spend(bootstrap, budget, cost)
                announced += len(keys)
                wait_for(lambda n=announced: len(slack_ids(slack)) == n, 60, "Slack messages")
                wait_for(lambda n=announced: len(mail_ids(smtp)) == n, 60, "emails")
            time.sleep(5.0)  # more ticks and group flushes: still nothing more
            return slack_ids(slack), mail_ids(smtp), owned


def test_two_workers_deliver_what_one_delivers(tmp_path: Path) -> None:
    partitioner = DefaultPartitioner()
    assert {n: partitioner(n.encode(), [0, 1], [0, 1]) for n in BUDGETS} == {
        "north": 0,
        "south": 1,
    }
    one_slack, one_mail, one_owned = overrun(tmp_path / "one", 1)
    two_slack, two_mail, two_owned = overrun(tmp_path / "two", 2)
    assert one_owned == [["north", "south"]]
    assert sorted(two_owned) == [["north"], ["south"]]  # one budget on each worker
    start = period_start()
    north = {k: alert_id_for("threshold", "north", start, k) for k in ("0.5", "0.8", "1")}
    south = alert_id_for("threshold", "south", start, "0.5")
    expected = [north["0.5"], north["0.8"], north["1"], south]  # in wave order, once each
    assert one_slack == expected and one_mail == expected
    assert two_slack == expected and two_mail == expected


def test_new_owner_neither_repeats_nor_loses(tmp_path: Path) -> None:
    """North's 50 % goes out; Slack then fails, north's 80 % reaches email only and waits
    for Slack; north's worker stops. The other worker takes north's partitions: it sends the
    80 % to Slack once and nothing else again (it knows only what the shared delivery log
    says: its own ClickHouse and state dir never saw north)."""
    start = period_start()
    fifty, eighty = (alert_id_for("threshold", "north", start, k) for k in ("0.5", "0.8"))
    with (
        TansuBroker() as broker,
        SlackServer().running_in_thread() as slack,
        SmtpServer() as smtp,
    ):
        bootstrap = broker.bootstrap_servers
        asyncio.run(create_topics(bootstrap, topics.ALL, 2))
        dirs = make_dirs(tmp_path, "a", "b")
        with contextlib.ExitStack() as stack:
            workers = [
                stack.enter_context(running_worker(config(bootstrap, slack, smtp, d), d))
                for d in dirs
            ]
            wait_for(lambda: asyncio.run(group_members(bootstrap)) == 2, 60, "the group")
            wait_for(lambda: sorted(owners(workers)) == [["north"], ["south"]], 60, "owners")
            holder = next(i for i, o in enumerate(owners(workers)) if o == ["north"])
            spend(bootstrap, "north", "5.00")
            wait_for(lambda: slack_ids(slack) == [fifty] and mail_ids(smtp) == [fifty], 60, "50 %")
            slack.script(*[server_error(500)] * 10_000)
            spend(bootstrap, "north", "3.00")
            wait_for(lambda: mail_ids(smtp) == [fifty, eighty], 60, "80 % by email")
            failed = len(slack.requests)
            wait_for(lambda: len(slack.requests) >= failed + 2, 30, "Slack retries failing")
            workers[holder].process.terminate()  # north's worker leaves the group
            workers[holder].process.wait(60)
            slack.unscript()
            other = workers[1 - holder]
            wait_for(lambda: owners([other]) == [["north", "south"]], 60, "the handover")
            wait_for(lambda: slack_ids(slack) == [fifty, eighty], 60, "80 % to Slack")
            time.sleep(5.0)
            assert slack_ids(slack) == [fifty, eighty]
            assert mail_ids(smtp) == [fifty, eighty]
            alerting = other.health()[1]["alerting"]
            assert alerting["alert_partitions"] == [0, 1]
            assert alerting["shared_log_read_failures"] == 0
            assert alerting["shared_log_write_failures"] == 0


def test_lost_state_dir_neither_repeats_nor_loses(tmp_path: Path) -> None:
    """One worker: 50 % goes out, 80 % reaches email only (Slack failing); the worker stops,
    its state dir (with the local delivery log) is deleted and it starts again with the same
    ClickHouse: 80 % reaches Slack once, nothing else is sent again."""
    start = period_start()
    fifty, eighty = (alert_id_for("threshold", "north", start, k) for k in ("0.5", "0.8"))
    with (
        TansuBroker() as broker,
        SlackServer().running_in_thread() as slack,
        SmtpServer() as smtp,
    ):
        bootstrap = broker.bootstrap_servers
        asyncio.run(create_topics(bootstrap, topics.ALL, 2))
        [d] = make_dirs(tmp_path, "w")
        with group(bootstrap, slack, smtp, [d]):
            spend(bootstrap, "north", "5.00")
            wait_for(lambda: slack_ids(slack) == [fifty] and mail_ids(smtp) == [fifty], 60, "50 %")
            slack.script(*[server_error(500)] * 10_000)
            spend(bootstrap, "north", "3.00")
            wait_for(lambda: mail_ids(smtp) == [fifty, eighty], 60, "80 % by email")
            failed = len(slack.requests)
            wait_for(lambda: len(slack.requests) >= failed + 2, 30, "Slack retries failing")
        shutil.rmtree(d / "state")  # the lost disk
        slack.unscript()
        with group(bootstrap, slack, smtp, [d]):
            wait_for(lambda: slack_ids(slack) == [fifty, eighty], 60, "80 % to Slack")
            time.sleep(5.0)
            assert slack_ids(slack) == [fifty, eighty]
            assert mail_ids(smtp) == [fifty, eighty]


def digests(slack: SlackServer, smtp: SmtpServer) -> tuple[int, int]:
    """Daily digests delivered to (Slack, email)."""
    mark = "[spendwatch DIGEST]"
    return (
        sum(1 for m in slack.delivered if m.text.startswith(mark)),
        sum(1 for m in smtp.messages if str(m.message["Subject"]).startswith(mark)),
    )


def test_digest_is_not_repeated_when_the_leader_changes(tmp_path: Path) -> None:
    """Two workers send yesterday's digest once (from the leader). Then both are replaced:
    worker a restarts with its ClickHouse but an empty state dir and stays alone, so it is
    the leader, has not sent the digest in its memory, and its day is not empty: it finds the
    digest in the shared delivery log and sends nothing. (A weekly report due today goes the
    same way: what was sent before the change is not sent again.)"""
    with (
        TansuBroker() as broker,
        SlackServer().running_in_thread() as slack,
        SmtpServer() as smtp,
    ):
        bootstrap = broker.bootstrap_servers
        asyncio.run(create_topics(bootstrap, topics.ALL, 2))
        a, b = make_dirs(tmp_path, "a", "b")
        yesterday = datetime.now(UTC) - timedelta(days=1)
        with group(bootstrap, slack, smtp, [a, b]):
            for name in BUDGETS:  # each worker's ClickHouse has a call of yesterday
                spend(bootstrap, name, "0.01", ts=yesterday)
            wait_for(lambda: digests(slack, smtp) == (1, 1), 90, "the daily digest")
            time.sleep(35.0)  # another digest round on the leader: still one
            assert digests(slack, smtp) == (1, 1)
            before = (len(slack.delivered), len(smtp.messages))  # digest (+ a due report)
        shutil.rmtree(a / "state")
        with group(bootstrap, slack, smtp, [a]) as [alone]:
            # a precondition, not a result: one or both of yesterday's calls, as the hot
            # path's partitions fell; either way a digest would be built
            assert alone.scalar("SELECT count() FROM usage_events") in (1, 2)
            time.sleep(40.0)  # the digest timer (30 s, leader only) has run
            assert digests(slack, smtp) == (1, 1)
            assert (len(slack.delivered), len(smtp.messages)) == before
