"""Dispatcher -> EmailNotifier -> a real aiosmtpd server on loopback; and the failure
protocol across Slack (loopback Slack API) and email."""

from __future__ import annotations

from typing import Any

import pytest

from alerting.config import AlertingSettings
from alerting.delivery import AlertDispatcher
from alerting.deliverylog import MemoryDeliveryLog
from alerting.notifiers.factory import build_notifiers
from alerting.records import AlertRecord, DeliveryRecord
from tests.support.slack_server import SlackServer, server_error
from tests.support.smtp_server import SmtpReply, SmtpServer
from tests.unit.alerting.factories import at, threshold_alert

pytestmark = pytest.mark.integration

ALERT = threshold_alert()
EXPECTED_TEXT = f"""CRITICAL: budget fleet-daily at 95% ($1.90 of $2.00)

Spent $1.90 of $2.00 in period 2025-03-14.

Spent:     $1.90
Limit:     $2.00
Used:      95%
Burn rate: $0.40/h
Runs out:  2025-03-14 10:15 UTC

Top contributors:
  - service checkout: $1.20 (63%)
  - model gpt-4o: $0.70 (37%)

Labels: budget=fleet-daily, period=2025-03-14, threshold=0.95
Kind: threshold | Fired: 2025-03-14 10:00 UTC | Alert id: {ALERT.alert_id}

-- 
Sent by spendwatch. This is an automated message; replies are not read.
"""  # noqa: W291 - the signature separator is "-- " by convention
EXPECTED_HTML = (
    "<html><body><h2>CRITICAL: budget fleet-daily at 95% ($1.90 of $2.00)</h2>"
    "<p>Spent $1.90 of $2.00 in period 2025-03-14.</p><table>"
    '<tr><th align="left">Spent</th><td>$1.90</td></tr>'
    '<tr><th align="left">Limit</th><td>$2.00</td></tr>'
    '<tr><th align="left">Used</th><td>95%</td></tr>'
    '<tr><th align="left">Burn rate</th><td>$0.40/h</td></tr>'
    '<tr><th align="left">Runs out</th><td>2025-03-14 10:15 UTC</td></tr></table>'
    "<h3>Top contributors</h3><ul><li>service checkout: $1.20 (63%)</li>"
    "<li>model gpt-4o: $0.70 (37%)</li></ul>"
    "<p><small>Labels: budget=fleet-daily, period=2025-03-14, threshold=0.95</small></p>"
    f"<p><small>Kind: threshold | Fired: 2025-03-14 10:00 UTC | Alert id: {ALERT.alert_id}"
    "</small></p><hr><p><small>Sent by spendwatch. This is an automated message; replies "
    "are not read.</small></p></body></html>\n"
)


def email_receiver(smtp: SmtpServer, **extra: Any) -> dict[str, Any]:
    return {
        "name": "finance",
        "type": "email",
        "to": ["finance@example.com", "cfo@example.com"],
        "from": "spendwatch@example.com",
        "smtp_host": smtp.host,
        "smtp_port": smtp.port,
        **extra,
    }


def make(receivers: list[dict[str, Any]], rows: list[Any], **extra: Any) -> AlertDispatcher:
    cfg = AlertingSettings.from_config(
        {
            "group_wait_s": 0.1,
            "group_interval_s": 0.5,
            "receivers": receivers,
            "retry": {"max_attempts": 3, "initial_backoff_s": 0.2, "dead_letter_retry_s": 30},
            **extra,
        },
        environ={"SMTP_PASSWORD": "s3cret"},
    )

    async def recorder(row: Any) -> None:
        rows.append(row)

    return AlertDispatcher(cfg, build_notifiers(cfg), MemoryDeliveryLog(), None, recorder)


async def test_email_is_exact_with_auth() -> None:
    with SmtpServer(auth=("spendwatch", "s3cret")) as smtp:
        d = make([email_receiver(smtp, username="spendwatch", password="env:SMTP_PASSWORD")], [])
        await d.submit(ALERT, at(0))
        await d.tick(at(0.1))
        await d.close()
    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert mail.login == "spendwatch"
    assert mail.mail_from == "spendwatch@example.com"
    assert mail.rcpt_tos == ("finance@example.com", "cfo@example.com")
    m = mail.message
    assert m["Subject"] == "[spendwatch CRITICAL] budget fleet-daily at 95% ($1.90 of $2.00)"
    assert m["From"] == "spendwatch@example.com"
    assert m["To"] == "finance@example.com, cfo@example.com"
    assert m["Auto-Submitted"] == "auto-generated"
    assert m["X-Auto-Response-Suppress"] == "All"
    assert m["Date"] == "Fri, 14 Mar 2025 10:00:00 +0000"
    nid = m["X-Spendwatch-Notification-Id"]
    assert m["Message-ID"] == f"<{nid}@spendwatch>"
    assert m.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in m.iter_parts()] == ["text/plain", "text/html"]
    assert mail.text == EXPECTED_TEXT
    assert mail.html == EXPECTED_HTML


async def test_starttls_required_by_server() -> None:
    with SmtpServer(require_starttls=True) as smtp:
        d = make([email_receiver(smtp, starttls=True, validate_certs=False)], [])
        await d.submit(ALERT, at(0))
        await d.tick(at(0.1))
        await d.close()
    assert [m.message["Subject"] for m in smtp.messages] == [
        "[spendwatch CRITICAL] budget fleet-daily at 95% ($1.90 of $2.00)"
    ]


async def test_smtp_4xx_retried_5xx_dead_lettered() -> None:
    rows: list[Any] = []
    with SmtpServer() as smtp:
        smtp.script(SmtpReply("451 4.3.0 Try again later"), SmtpReply(drop=True))
        d = make([email_receiver(smtp)], rows)
        await d.submit(ALERT, at(0))
        for t in (0.1, 0.3, 0.7):  # 451 -> +0.2 s -> dropped -> +0.4 s -> accepted
            await d.tick(at(t))
        smtp.script(SmtpReply("554 5.7.1 Message rejected"))
        await d.submit(threshold_alert(budget="other"), at(1))
        await d.tick(at(1.1))
        await d.close()
    assert smtp.attempts == [
        "451 4.3.0 Try again later",
        "drop",
        "250 Message accepted for delivery",
        "554 5.7.1 Message rejected",
    ]
    assert len(smtp.messages) == 1
    outcomes = [(r.outcome, r.attempted_at) for r in rows if isinstance(r, DeliveryRecord)]
    assert outcomes == [
        ("retry", at(0.1)),
        ("retry", at(0.3)),
        ("sent", at(0.7)),
        ("dead_letter", at(1.1)),
    ]
    dead = [r for r in rows if isinstance(r, DeliveryRecord) and r.outcome == "dead_letter"]
    assert dead[0].error == "PermanentDeliveryError: finance: SMTP 554 5.7.1 Message rejected"


async def test_undeliverable_slack_dead_letters_and_tells_email() -> None:
    rows: list[Any] = []
    async with SlackServer() as slack:
        slack.script(*(server_error(500) for _ in range(3)))
        with SmtpServer() as smtp:
            d = make(
                [
                    {"name": "oncall-slack", "type": "slack", "webhook_url": slack.webhook_url()},
                    email_receiver(smtp),
                ],
                rows,
                routes=[{"match": {"kind": "threshold"}, "receivers": ["oncall-slack"]}],
            )
            await d.submit(ALERT, at(0))
            # 500 at 0.1; pace 1 s -> 1.1; 500; pace -> 2.1: third 500 -> dead letter
            for t in (0.1, 1.1, 2.1, 2.2):
                await d.tick(at(t))
            assert slack.answers() == ["500", "500", "500"]
            assert len(d.dead_letters) == 1
            assert [m.message["Subject"] for m in smtp.messages] == [
                "[spendwatch CRITICAL] alerts undeliverable to oncall-slack"
            ]
            body = smtp.messages[0].text
            assert (
                "1 alert(s) could not be delivered to receiver oncall-slack after 3 attempt(s):"
                " TransientDeliveryError: oncall-slack: HTTP 500: internal_error. Kept as a dead"
                " letter and retried every 30 s." in body
            )
            # Slack recovers: the slow dead-letter retry (30 s) delivers it, exactly once,
            # and the pipeline alert is resolved by email
            await d.tick(at(32.0))
            assert slack.answers() == ["500", "500", "500"]
            await d.tick(at(32.1))
            assert slack.answers() == ["500", "500", "500", "200"]
            assert d.dead_letters == ()
            await d.tick(at(33.0))
            await d.close()
            subjects = [m.message["Subject"] for m in smtp.messages]
    assert subjects == [
        "[spendwatch CRITICAL] alerts undeliverable to oncall-slack",
        "[spendwatch RESOLVED] alerts delivered to oncall-slack again",
    ]
    assert [r.body["text"] for r in slack.delivered] == [
        "[spendwatch CRITICAL] budget fleet-daily at 95% ($1.90 of $2.00)"
    ]
    kinds = [(r.kind, r.status) for r in rows if isinstance(r, AlertRecord)]
    assert kinds == [("threshold", "firing"), ("pipeline", "firing"), ("pipeline", "resolved")]
