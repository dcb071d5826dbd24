"""Dispatcher -> SlackNotifier -> a real loopback HTTP server speaking the Slack API.

Times are explicit (``now``), so backoff, Retry-After and pacing are checked without
sleeping; the HTTP exchanges are real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alerting.config import AlertingSettings
from alerting.delivery import AlertDispatcher
from alerting.deliverylog import FileDeliveryLog, MemoryDeliveryLog
from alerting.notifiers.factory import build_notifiers
from alerting.records import DeliveryRecord
from tests.support.slack_server import (
    OK,
    SlackServer,
    drop_connection,
    rate_limited,
    server_error,
)
from tests.unit.alerting.factories import at, spike_alert, threshold_alert

pytestmark = pytest.mark.integration

EXPECTED_BLOCKS: list[dict[str, Any]] = [
    {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": ":rotating_light: CRITICAL: budget fleet-daily at 95% ($1.90 of $2.00)",
            "emoji": True,
        },
    },
    {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "Spent $1.90 of $2.00 in period 2025-03-14."},
    },
    {
        "type": "section",
        "fields": [
            {"type": "mrkdwn", "text": "*Spent*\n$1.90"},
            {"type": "mrkdwn", "text": "*Limit*\n$2.00"},
            {"type": "mrkdwn", "text": "*Used*\n95%"},
            {"type": "mrkdwn", "text": "*Burn rate*\n$0.40/h"},
            {"type": "mrkdwn", "text": "*Runs out*\n2025-03-14 10:15 UTC"},
        ],
    },
    {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": "*Top contributors*\n\u2022 service checkout: $1.20 (63%)"
            "\n\u2022 model gpt-4o: $0.70 (37%)",
        },
    },
    {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": "threshold \u00b7 fired 2025-03-14 10:00 UTC \u00b7 budget: fleet-daily"
                " \u00b7 period: 2025-03-14 \u00b7 threshold: 0.95 \u00b7 id "
                + threshold_alert().alert_id,
            }
        ],
    },
]
EXPECTED_TEXT = "[spendwatch CRITICAL] budget fleet-daily at 95% ($1.90 of $2.00)"


def slack_settings(receiver: dict[str, Any], **extra: Any) -> AlertingSettings:
    section = {
        "group_wait_s": 0.1,
        "group_interval_s": 0.5,
        "repeat_interval_s": 3600,
        "receivers": [{"name": "oncall", "type": "slack", **receiver}],
        "retry": {"max_attempts": 4, "initial_backoff_s": 0.2, "dead_letter_retry_s": 60},
        **extra,
    }
    return AlertingSettings.from_config(section)


def make(cfg: AlertingSettings, log: Any, rows: list[Any]) -> AlertDispatcher:
    async def recorder(row: Any) -> None:
        rows.append(row)

    return AlertDispatcher(cfg, build_notifiers(cfg), log, None, recorder)


async def test_webhook_message_is_exact() -> None:
    async with SlackServer() as server:
        cfg = slack_settings({"webhook_url": server.webhook_url("T1/B1/abc")})
        d = make(cfg, MemoryDeliveryLog(), [])
        await d.submit(threshold_alert(), at(0))
        await d.tick(at(0.1))
        await d.close()
    assert len(server.requests) == 1
    req = server.requests[0]
    assert req.path == "/webhook/T1/B1/abc"
    assert req.body == {"text": EXPECTED_TEXT, "blocks": EXPECTED_BLOCKS}


async def test_bot_token_chat_post_message() -> None:
    async with SlackServer() as server:
        cfg = slack_settings(
            {"bot_token": "xoxb-test-token", "channel": "#spend", "base_url": server.api_base_url}
        )
        d = make(cfg, MemoryDeliveryLog(), [])
        await d.submit(threshold_alert(), at(0))
        await d.tick(at(0.1))
        await d.close()
    assert [r.endpoint for r in server.delivered] == ["chat.postMessage"]
    req = server.delivered[0]
    assert req.headers["Authorization"] == "Bearer xoxb-test-token"
    assert req.body == {"channel": "#spend", "text": EXPECTED_TEXT, "blocks": EXPECTED_BLOCKS}


async def test_labels_cannot_inject_mentions_or_formatting() -> None:
    async with SlackServer() as server:
        cfg = slack_settings({"webhook_url": server.webhook_url()}, group_by=["service"])
        d = make(cfg, MemoryDeliveryLog(), [])
        await d.submit(spike_alert(service="<!channel> *x* _y_ ~z~ `c` & <http://e|f>"), at(0))
        await d.tick(at(0.1))
        await d.close()
    body = server.delivered[0].body
    dumped = str(body)
    assert body["blocks"][0]["text"]["text"] == (
        ":warning: WARNING: Spend spike on &lt;!channel&gt; *x* _y_ ~z~ `c` &amp; "
        "&lt;http://e|f&gt;"
    )
    dumped = str(body["blocks"][1:]) + body["text"]
    for raw in ("<!channel>", "*x*", "_y_", "~z~", "`c`", "<http"):
        assert raw not in dumped
    context = body["blocks"][-1]["elements"][0]["text"]
    assert (
        "service: &lt;!channel&gt; \u2217x\u2217 \u02cdy\u02cd \u223cz\u223c \u02cbc\u02cb &amp; "
        "&lt;http://e|f&gt;" in context
    )


async def test_429_then_500_then_ok_delivers_each_alert_exactly_once() -> None:
    alerts = [threshold_alert(budget=f"b{i}") for i in range(3)]
    rows: list[Any] = []
    async with SlackServer() as server:
        server.script(rate_limited(retry_after_s=1), server_error(500), drop_connection(), OK)
        cfg = slack_settings({"webhook_url": server.webhook_url()})
        d = make(cfg, MemoryDeliveryLog(), rows)
        for a in alerts:
            await d.submit(a, at(0))
        t = 0.1
        while t < 10:
            await d.tick(at(t))
            t = round(t + 0.1, 1)
        await d.close()
    assert server.answers() == ["429", "500", "drop", "200", "200", "200"]
    texts = sorted(r.body["text"] for r in server.delivered)
    assert texts == sorted(
        f"[spendwatch CRITICAL] budget b{i} at 95% ($1.90 of $2.00)" for i in range(3)
    )
    sent = [r for r in rows if isinstance(r, DeliveryRecord) and r.outcome == "sent"]
    # 429 at 0.1 -> Retry-After 1 s -> 500 at 1.1 -> backoff 0.4 s, but the Slack pace (one
    # request per second per webhook, failed ones too) says 2.1 -> drop at 2.1 -> OK at 3.1;
    # then the other two alerts one second apart
    assert [r.attempted_at for r in sent] == [at(3.1), at(4.1), at(5.1)]
    retries = [
        (r.attempt, r.next_attempt_at)
        for r in rows
        if isinstance(r, DeliveryRecord) and r.outcome == "retry"
    ]
    assert retries == [(1, at(1.1)), (2, at(2.1)), (3, at(3.1))]


async def test_restart_with_file_log_sends_nothing_again(tmp_path: Path) -> None:
    alerts = [threshold_alert(budget=f"b{i}") for i in range(2)] + [spike_alert()]
    async with SlackServer() as server:
        cfg = slack_settings({"webhook_url": server.webhook_url(), "min_interval_s": 0})
        d1 = make(cfg, FileDeliveryLog(tmp_path / "log.jsonl"), [])
        for a in alerts:
            await d1.submit(a, at(0))
        await d1.tick(at(0.1))
        await d1.close()
        assert len(server.delivered) == 3
        d2 = make(cfg, FileDeliveryLog(tmp_path / "log.jsonl"), [])
        for a in alerts:  # a replay of the alerts topic after the restart
            await d2.submit(a, at(5))
        for t in (5.1, 6, 7):
            await d2.tick(at(t))
        await d2.close()
    assert len(server.requests) == 3


def test_slack_server_runs_in_its_own_thread_for_other_loops() -> None:
    """The lead's pipeline test drives a worker with its own loop: the server must work
    from a thread too (here the client runs in a fresh loop via asyncio.run)."""
    import asyncio

    from alerting.errors import TransientDeliveryError
    from alerting.notification import Notification
    from alerting.notifiers.slack import SlackNotifier

    async def post(url: str) -> None:
        n = SlackNotifier("s", webhook_url=url)
        try:
            await n.send(Notification("s", "g", at(0), (threshold_alert(),)))
        finally:
            await n.close()

    with SlackServer().running_in_thread() as server:
        server.script(drop_connection())
        with pytest.raises(TransientDeliveryError, match="ServerDisconnectedError"):
            asyncio.run(post(server.webhook_url()))
        asyncio.run(post(server.webhook_url()))
        assert server.answers() == ["drop", "200"]
        assert server.delivered[0].body["text"] == EXPECTED_TEXT
