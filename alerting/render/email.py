"""Email rendering of an alert notification: subject, plain text and HTML (pure).

Subject: ``[spendwatch CRITICAL] budget fleet-daily at 95% ($1.90 of $2.00)`` for one
alert; ``[spendwatch CRITICAL] 3 alerts: <first headline> (+2 more)`` for a group. Every
value from the data is HTML-escaped in the HTML part; the subject is a single line.
"""

from __future__ import annotations

from html import escape

from alerting.notification import Notification
from alerting.render.text import (
    contributor_line,
    figure_lines,
    format_time,
    headline,
    one_line,
    status_tag,
)
from alerting.render.types import EmailContent
from schemas.alerts import SEVERITY_RANK, Alert

FOOTER = "Sent by spendwatch. This is an automated message; replies are not read."


def subject(message: Notification) -> str:
    alerts = message.alerts
    if len(alerts) == 1:
        return one_line(
            f"[spendwatch {status_tag(alerts[0], message.is_reminder(0))}] {headline(alerts[0])}"
        )
    lead_i = max(
        range(len(alerts)),
        key=lambda i: (alerts[i].status == "firing", SEVERITY_RANK[alerts[i].severity], -i),
    )
    lead = alerts[lead_i]
    tag = status_tag(lead, message.is_reminder(lead_i))
    return one_line(
        f"[spendwatch {tag}] {len(alerts)} alerts: {headline(lead)} (+{len(alerts) - 1} more)"
    )


def _alert_text(alert: Alert, reminder: bool) -> list[str]:
    lines = [f"{status_tag(alert, reminder)}: {one_line(headline(alert))}", ""]
    if reminder:
        lines += ["Still firing.", ""]
    if alert.summary:
        lines += [alert.summary, ""]
    figures = figure_lines(alert)
    if figures:
        width = max(len(label) for label, _ in figures) + 1
        lines += [f"{(label + ':').ljust(width)} {value}" for label, value in figures]
        lines.append("")
    if alert.contributors:
        lines.append("Top contributors:")
        lines += [
            f"  - {contributor_line(c.dimension, c.name, c.cost_nusd, c.share)}"
            for c in alert.contributors
        ]
        lines.append("")
    if alert.labels:
        lines.append("Labels: " + ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items())))
    lines.append(
        f"Kind: {alert.kind} | Fired: {format_time(alert.fired_at)} | Alert id: {alert.alert_id}"
    )
    return lines


def _alert_html(alert: Alert, reminder: bool) -> str:
    parts = [f"<h2>{escape(status_tag(alert, reminder))}: {escape(one_line(headline(alert)))}</h2>"]
    if reminder:
        parts.append("<p><i>Still firing.</i></p>")
    if alert.summary:
        parts.append(f"<p>{escape(alert.summary)}</p>")
    figures = figure_lines(alert)
    if figures:
        rows = "".join(
            f'<tr><th align="left">{escape(label)}</th><td>{escape(value)}</td></tr>'
            for label, value in figures
        )
        parts.append(f"<table>{rows}</table>")
    if alert.contributors:
        items = "".join(
            f"<li>{escape(contributor_line(c.dimension, c.name, c.cost_nusd, c.share))}</li>"
            for c in alert.contributors
        )
        parts.append(f"<h3>Top contributors</h3><ul>{items}</ul>")
    labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
    meta = f"Kind: {alert.kind} | Fired: {format_time(alert.fired_at)} | Alert id: {alert.alert_id}"
    if labels:
        parts.append(f"<p><small>Labels: {escape(labels)}</small></p>")
    parts.append(f"<p><small>{escape(meta)}</small></p>")
    return "".join(parts)


def render_email(message: Notification) -> EmailContent:
    """Subject, text and HTML for an ``alerts`` notification."""
    text_blocks: list[str] = []
    html_blocks: list[str] = []
    for i, alert in enumerate(message.alerts):
        reminder = message.is_reminder(i)
        text_blocks.append("\n".join(_alert_text(alert, reminder)))
        html_blocks.append(_alert_html(alert, reminder))
    text = "\n\n----\n\n".join(text_blocks) + f"\n\n-- \n{FOOTER}\n"
    html = (
        "<html><body>"
        + "<hr>".join(html_blocks)
        + f"<hr><p><small>{escape(FOOTER)}</small></p></body></html>\n"
    )
    return EmailContent(subject=subject(message), text=text, html=html)
