"""Block Kit rendering of an alert notification.

Layout for one alert: a header (severity + headline), the summary, the key figures as
fields (spent, limit, percentage, burn rate, run-out time ...), the top contributors, and a
context line with the kind, the labels and the alert id. Several alerts in one group
notification repeat that body per alert, separated by dividers, within Slack's 50-block
limit. ``text`` is the fallback shown in notifications and by clients without blocks.
Everything taken from the data is escaped with ``escape_mrkdwn`` (or placed in
``plain_text``).
"""

from __future__ import annotations

from typing import Final

from alerting.notification import Notification
from alerting.render.mrkdwn import escape_entities, escape_mrkdwn, truncate
from alerting.render.text import (
    contributor_line,
    figure_lines,
    format_time,
    headline,
    one_line,
    status_tag,
)
from alerting.render.types import Block, SlackMessage
from schemas.alerts import SEVERITY_RANK, Alert

EMOJI: Final[dict[str, str]] = {
    "info": ":information_source:",
    "warning": ":warning:",
    "critical": ":rotating_light:",
    "emergency": ":fire:",
    "resolved": ":white_check_mark:",
}
MAX_BLOCKS: Final = 50


def _emoji(alert: Alert) -> str:
    return EMOJI["resolved"] if alert.status == "resolved" else EMOJI[alert.severity]


def _mrkdwn(text: str) -> Block:
    return {"type": "mrkdwn", "text": text}


def fallback_line(alert: Alert, reminder: bool = False) -> str:
    """``[spendwatch CRITICAL] budget fleet-daily at 95% ($1.90 of $2.00)`` (escaped)."""
    return escape_mrkdwn(f"[spendwatch {status_tag(alert, reminder)}] {one_line(headline(alert))}")


def alert_blocks(alert: Alert, *, reminder: bool, with_headline: bool) -> list[Block]:
    """The body blocks of one alert (no header)."""
    blocks: list[Block] = []
    lines = []
    if with_headline:
        lines.append(f"*{escape_mrkdwn(one_line(headline(alert)))}*")
    if reminder:
        lines.append("_Still firing._")
    if alert.status == "resolved":
        lines.append("_Resolved._")
    if alert.summary:
        lines.append(escape_mrkdwn(alert.summary))
    if lines:
        blocks.append({"type": "section", "text": _mrkdwn(truncate("\n".join(lines), 3000))})
    fields = [
        _mrkdwn(truncate(f"*{label}*\n{escape_mrkdwn(value)}", 2000))
        for label, value in figure_lines(alert)[:10]
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    if alert.contributors:
        items = [
            "\u2022 " + escape_mrkdwn(contributor_line(c.dimension, c.name, c.cost_nusd, c.share))
            for c in alert.contributors[:10]
        ]
        text = "*Top contributors*\n" + "\n".join(items)
        blocks.append({"type": "section", "text": _mrkdwn(truncate(text, 3000))})
    context = [alert.kind, f"fired {format_time(alert.fired_at)}"]
    context += [f"{k}: {v}" for k, v in sorted(alert.labels.items())]
    context.append(f"id {alert.alert_id}")
    blocks.append(
        {
            "type": "context",
            "elements": [_mrkdwn(truncate(escape_mrkdwn(" \u00b7 ".join(context)), 2000))],
        }
    )
    return blocks


def render_notification(message: Notification) -> SlackMessage:
    """Blocks and fallback text for an ``alerts`` notification."""
    alerts = message.alerts
    reminders = [message.is_reminder(i) for i in range(len(alerts))]
    if len(alerts) == 1:
        alert = alerts[0]
        title = f"{status_tag(alert, reminders[0])}: {one_line(headline(alert))}"
        blocks: list[Block] = [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": truncate(escape_entities(f"{_emoji(alert)} {title}"), 150),
                    "emoji": True,
                },
            }
        ]
        blocks += alert_blocks(alert, reminder=reminders[0], with_headline=False)
        return SlackMessage(text=fallback_line(alert, reminders[0]), blocks=tuple(blocks))

    lead = max(alerts, key=lambda a: (a.status == "firing", _rank(a)))
    n_firing = len(message.firing)
    n_resolved = len(message.resolved)
    parts = []
    if n_firing:
        parts.append(f"{n_firing} firing")
    if n_resolved:
        parts.append(f"{n_resolved} resolved")
    title = f"{_emoji(lead)} spendwatch: {', '.join(parts)} ({message.group_key})"
    blocks = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": truncate(escape_entities(title), 150),
                "emoji": True,
            },
        }
    ]
    shown = 0
    for i, (alert, reminder) in enumerate(zip(alerts, reminders, strict=True)):
        body = [{"type": "divider"}, *alert_blocks(alert, reminder=reminder, with_headline=True)]
        reserve = 0 if i == len(alerts) - 1 else 1  # room for the "... and N more" line
        if len(blocks) + len(body) + reserve > MAX_BLOCKS:
            break
        blocks += body
        shown += 1
    if shown < len(alerts):
        more = f"\u2026 and {len(alerts) - shown} more alerts in this group."
        blocks.append({"type": "context", "elements": [_mrkdwn(more)]})
    text = "\n".join(fallback_line(a, r) for a, r in zip(alerts, reminders, strict=True))
    return SlackMessage(text=truncate(text, 3000), blocks=tuple(blocks))


def _rank(alert: Alert) -> int:
    return SEVERITY_RANK[alert.severity]
