"""Console lines, webhook payload, email subject for groups, Slack grouping limits."""

from __future__ import annotations

import io

import orjson

from alerting.notification import Notification
from alerting.notifiers.console import ConsoleNotifier
from alerting.notifiers.webhook import payload
from alerting.render.email import subject
from alerting.render.slack import render_notification
from alerting.render.text import contributor_line, format_money
from tests.unit.alerting.factories import T0, at, resolved, spike_alert, threshold_alert


async def test_console_prints_one_compact_line_per_alert() -> None:
    stream = io.StringIO()
    a, s = threshold_alert(), spike_alert()
    await ConsoleNotifier("console", stream).send(
        Notification("console", "g", at(10), (a, resolved(s)), seqs=(1, 0))
    )
    assert stream.getvalue() == (
        "2025-03-14 10:00 UTC [spendwatch CRITICAL reminder] budget fleet-daily at 95% "
        f"($1.90 of $2.00) budget=fleet-daily period=2025-03-14 threshold=0.95 id={a.alert_id}\n"
        "2025-03-14 10:00 UTC [spendwatch RESOLVED] Spend spike on search service=search "
        f"id={s.alert_id}\n"
    )


async def test_console_adds_the_usage_analysis_under_an_emergency() -> None:
    stream = io.StringIO()
    a = threshold_alert(threshold="1", severity="emergency")
    await ConsoleNotifier("console", stream).send(Notification("console", "g", at(10), (a,)))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[1] == ("    top spend: service checkout $1.20 (63%) | model gpt-4o $0.70 (37%)")


def test_webhook_payload() -> None:
    a = threshold_alert()
    n = Notification("hook", "hook{}", T0, (a,))
    body = payload(n)
    assert body["schema_version"] == 1
    assert body["notification_id"] == n.notification_id
    assert body["status"] == "firing"
    assert body["alerts"] == [{**a.to_dict(), "seq": 0}]
    orjson.dumps(body)  # JSON-ready


def test_group_subject_names_the_most_severe_firing_alert() -> None:
    low = threshold_alert(budget="x", threshold="0.5", severity="info")
    top = threshold_alert()
    gone = resolved(spike_alert(severity="emergency"))
    n = Notification("mail", "g", T0, (low, top, gone))
    assert subject(n) == (
        "[spendwatch CRITICAL] 3 alerts: budget fleet-daily at 95% ($1.90 of $2.00) (+2 more)"
    )


def test_slack_group_message_stays_within_50_blocks() -> None:
    # a spike alert takes 4 blocks (divider, text, figures, context): 1 + 12 * 4 + 1 = 50
    alerts = tuple(spike_alert(service=f"s{i}", window=str(i)) for i in range(14))
    msg = render_notification(Notification("slack", "slack{}", T0, alerts))
    assert len(msg.blocks) == 50
    assert msg.blocks[0]["text"]["text"] == ":warning: spendwatch: 14 firing (slack{})"
    assert msg.blocks[-1] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": "\u2026 and 2 more alerts in this group."}],
    }
    assert msg.text.count("\n") == 13  # the fallback lists all 14


def test_notification_id_is_deterministic() -> None:
    a = threshold_alert()
    assert (
        Notification("r", "g", at(1), (a,)).notification_id
        == Notification("r", "g", at(99), (a,)).notification_id
    )
    assert (
        Notification("r", "g", at(1), (a,)).notification_id
        != Notification("r", "g", at(1), (a,), seqs=(1,)).notification_id
    )


def test_contributor_money_reads_as_the_figures_do() -> None:
    assert contributor_line("service", "checkout", 1_200_000_000, "0.62") == (
        "service checkout: $1.20 (62%)"
    )
    assert contributor_line("model", "m", 4_200_000, "") == "model m: $0.0042"
    assert contributor_line("model", "m", 50_000_000, "") == "model m: $0.05"
    assert format_money("0.0042") == "$0.0042" and format_money("n/a") == "n/a"
