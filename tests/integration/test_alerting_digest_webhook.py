"""Digest and generic webhook through the dispatcher to real loopback servers; Slack API
error mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alerting.config import AlertingSettings
from alerting.delivery import AlertDispatcher
from alerting.deliverylog import FileDeliveryLog, MemoryDeliveryLog
from alerting.notifiers.factory import build_notifiers
from alerting.records import DeliveryRecord
from tests.support.slack_server import SlackServer, api_error, rate_limited
from tests.support.smtp_server import SmtpServer
from tests.unit.alerting.factories import at, threshold_alert
from tests.unit.alerting.test_digest import SUMMARY

pytestmark = pytest.mark.integration


def make(section: dict[str, Any], log: Any, rows: list[Any] | None = None) -> AlertDispatcher:
    cfg = AlertingSettings.from_config(
        {
            "group_wait_s": 0.1,
            "group_interval_s": 0.5,
            "retry": {"max_attempts": 3, "initial_backoff_s": 0.2},
            **section,
        },
        environ={"HOOK_TOKEN": "Bearer t0k"},
    )
    sink = rows if rows is not None else []

    async def recorder(row: Any) -> None:
        sink.append(row)

    return AlertDispatcher(cfg, build_notifiers(cfg), log, None, recorder)


async def test_digest_to_slack_and_email_once_per_day(tmp_path: Path) -> None:
    async with SlackServer() as slack:
        with SmtpServer() as smtp:
            section = {
                "receivers": [
                    {"name": "slack", "type": "slack", "webhook_url": slack.webhook_url()},
                    {
                        "name": "mail",
                        "type": "email",
                        "to": ["f@example.com"],
                        "from": "sw@example.com",
                        "smtp_host": smtp.host,
                        "smtp_port": smtp.port,
                    },
                    {"name": "console", "type": "console"},
                ],
                "digest_receivers": ["slack", "mail"],
            }
            d1 = make(section, FileDeliveryLog(tmp_path / "log.jsonl"))
            await d1.send_digest(SUMMARY, at(0))
            await d1.send_digest(SUMMARY, at(5))  # same day again: nothing
            await d1.close()
            d2 = make(section, FileDeliveryLog(tmp_path / "log.jsonl"))
            await d2.send_digest(SUMMARY, at(60))  # after a restart: still nothing
            await d2.close()
            mails = [m.message["Subject"] for m in smtp.messages]
            mail_text = smtp.messages[0].text
    assert [r.body["text"] for r in slack.requests] == [
        "[spendwatch DIGEST] 2025-03-14: $12.35 spent, 2 alerts"
    ]
    assert slack.requests[0].body["blocks"][1] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "*Total spend:* $12.35"},
    }
    assert mails == ["[spendwatch DIGEST] 2025-03-14: $12.35 spent, 2 alerts"]
    assert "  - monthly [March 2025]: $333.33 of $1,000.00 (33.3%)\n" in mail_text


async def test_generic_webhook_json_post() -> None:
    a = threshold_alert()
    async with SlackServer() as server:  # its /webhook/... endpoint records any JSON POST
        d = make(
            {
                "receivers": [
                    {
                        "name": "hook",
                        "type": "webhook",
                        "url": server.webhook_url("x"),
                        "headers": {"Authorization": "env:HOOK_TOKEN"},
                    }
                ]
            },
            MemoryDeliveryLog(),
        )
        await d.submit(a, at(0))
        await d.tick(at(0.1))
        await d.close()
    [req] = server.requests
    assert req.headers["Authorization"] == "Bearer t0k"
    assert req.body["receiver"] == "hook" and req.body["status"] == "firing"
    assert req.body["alerts"] == [{**a.to_dict(), "seq": 0}]


async def test_slack_api_errors_map_to_retry_or_dead_letter() -> None:
    rows: list[Any] = []
    async with SlackServer() as server:
        server.script(rate_limited(retry_after_s=2), api_error("channel_not_found"))
        d = make(
            {
                "receivers": [
                    {
                        "name": "bot",
                        "type": "slack",
                        "bot_token": "xoxb-1",
                        "channel": "#nope",
                        "base_url": server.api_base_url,
                    }
                ]
            },
            MemoryDeliveryLog(),
            rows,
        )
        await d.submit(threshold_alert(), at(0))
        await d.tick(at(0.1))  # 429 ratelimited, Retry-After 2 -> 2.1
        await d.tick(at(2.0))
        await d.tick(at(2.1))  # channel_not_found: permanent -> dead letter at once
        await d.close()
    assert server.answers() == ["429", "200"]
    got = [(r.outcome, r.attempt, r.error) for r in rows if isinstance(r, DeliveryRecord)]
    assert got == [
        ("retry", 1, "TransientDeliveryError: bot: rate limited (429)"),
        (
            "dead_letter",
            2,
            "PermanentDeliveryError: bot: chat.postMessage HTTP 200 channel_not_found",
        ),
    ]
