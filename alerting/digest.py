"""Daily digest: the data the worker gathers, and its rendering for Slack and email.

The worker builds a ``DigestSummary`` (from ClickHouse: spend by service and by model,
budgets with spent/limit, the day's alerts) and calls ``await dispatcher.send_digest(summary,
now)``. Rendering is pure and exact: money is integer nano-USD, shown with ``format_usd``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from html import escape
from typing import Final

from alerting.render.mrkdwn import escape_entities, escape_mrkdwn, truncate
from alerting.render.text import format_percent, format_time, one_line
from alerting.render.types import Block, EmailContent, SlackMessage
from schemas.money import format_usd

MAX_ITEMS: Final = 10  # lines per digest list; the rest is counted, not shown


@dataclass(frozen=True, slots=True)
class SpendLine:
    """Spend of one service or model over the digest day."""

    name: str
    cost_nusd: int
    requests: int = 0


@dataclass(frozen=True, slots=True)
class BudgetLine:
    """One budget in its current period, as of the digest."""

    name: str
    spent_nusd: int
    limit_nusd: int
    period: str = ""  # human label of the period, e.g. "2025-03-14" or "March 2025"


@dataclass(frozen=True, slots=True)
class DigestAlert:
    """One alert of the day as the digest lists it."""

    severity: str
    title: str
    fired_at: datetime
    status: str = "firing"


@dataclass(frozen=True, slots=True)
class DigestSummary:
    """Everything one digest shows. ``day`` is the calendar day in ``timezone``."""

    day: date
    timezone: str
    total_cost_nusd: int
    by_service: tuple[SpendLine, ...] = ()
    by_model: tuple[SpendLine, ...] = ()
    budgets: tuple[BudgetLine, ...] = ()
    alerts: tuple[DigestAlert, ...] = ()


def budget_percent(line: BudgetLine) -> str:
    """Spent as a percentage of the limit, one decimal, e.g. ``"95%"`` / ``"95.3%"``."""
    if line.limit_nusd <= 0:
        return "no limit"
    pct = (Decimal(line.spent_nusd) * 100 / Decimal(line.limit_nusd)).quantize(Decimal("0.1"))
    return format_percent(str(pct))


def _spend_item(line: SpendLine) -> str:
    text = f"{line.name}: {format_usd(line.cost_nusd)}"
    if line.requests:
        text += f" ({line.requests:,} requests)"
    return text


def _budget_item(line: BudgetLine) -> str:
    period = f" [{line.period}]" if line.period else ""
    return (
        f"{line.name}{period}: {format_usd(line.spent_nusd)} of "
        f"{format_usd(line.limit_nusd)} ({budget_percent(line)})"
    )


def _alert_item(alert: DigestAlert) -> str:
    tag = "RESOLVED" if alert.status == "resolved" else alert.severity.upper()
    return f"[{tag}] {one_line(alert.title)} ({format_time(alert.fired_at)})"


def _sections(summary: DigestSummary) -> list[tuple[str, list[str]]]:
    """(title, items) in display order; long lists are cut at ``MAX_ITEMS`` with a note."""

    def cut(items: list[str]) -> list[str]:
        if len(items) <= MAX_ITEMS:
            return items
        return [*items[:MAX_ITEMS], f"\u2026 and {len(items) - MAX_ITEMS} more"]

    out = [
        ("By service", cut([_spend_item(s) for s in summary.by_service])),
        ("By model", cut([_spend_item(m) for m in summary.by_model])),
        ("Budgets", cut([_budget_item(b) for b in summary.budgets])),
        (f"Alerts ({len(summary.alerts)})", cut([_alert_item(a) for a in summary.alerts])),
    ]
    return [(title, items) for title, items in out if items]


def digest_subject(summary: DigestSummary) -> str:
    """``[spendwatch DIGEST] 2025-03-14: $12.34 spent, 3 alerts``."""
    n = len(summary.alerts)
    return (
        f"[spendwatch DIGEST] {summary.day.isoformat()}: {format_usd(summary.total_cost_nusd)}"
        f" spent, {n} alert{'' if n == 1 else 's'}"
    )


def render_digest_slack(summary: DigestSummary) -> SlackMessage:
    """Block Kit digest: header, total, then one section per non-empty list."""
    title = f"spendwatch daily digest \u2014 {summary.day.isoformat()} ({summary.timezone})"
    blocks: list[Block] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": truncate(escape_entities(title), 150)},
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"*Total spend:* {escape_mrkdwn(format_usd(summary.total_cost_nusd))}",
            },
        },
    ]
    for heading, items in _sections(summary):
        body = "\n".join("\u2022 " + escape_mrkdwn(i) for i in items)
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": truncate(f"*{heading}*\n{body}", 3000)},
            }
        )
    return SlackMessage(text=escape_mrkdwn(digest_subject(summary)), blocks=tuple(blocks))


def render_digest_email(summary: DigestSummary, *, chart_cid: str | None = None) -> EmailContent:
    """Plain-text and HTML digest with the same figures; with ``chart_cid`` the HTML shows
    the attached chart (spend by service) under the total."""
    text_lines = [
        f"spendwatch daily digest for {summary.day.isoformat()} ({summary.timezone})",
        "",
        f"Total spend: {format_usd(summary.total_cost_nusd)}",
    ]
    html_parts = [
        f"<h2>spendwatch daily digest for {escape(summary.day.isoformat())} "
        f"({escape(summary.timezone)})</h2>",
        f"<p><b>Total spend:</b> {escape(format_usd(summary.total_cost_nusd))}</p>",
    ]
    if chart_cid:
        html_parts.append(f'<p><img src="cid:{escape(chart_cid)}" alt="spend by service"></p>')
    for heading, items in _sections(summary):
        text_lines += ["", f"{heading}:", *(f"  - {i}" for i in items)]
        lis = "".join(f"<li>{escape(i)}</li>" for i in items)
        html_parts.append(f"<h3>{escape(heading)}</h3><ul>{lis}</ul>")
    text = "\n".join(text_lines) + "\n"
    html = "<html><body>" + "".join(html_parts) + "</body></html>\n"
    return EmailContent(subject=digest_subject(summary), text=text, html=html)
