"""Console notifier: one compact human line per alert, to a text stream (stdout default).

Example: ``2025-03-14 10:00 UTC [spendwatch CRITICAL] budget fleet-daily at 95% ($1.90 of
$2.00) service=checkout id=5f0c...``. A digest prints its total and per-budget lines.
"""

from __future__ import annotations

import sys
from decimal import Decimal, InvalidOperation
from typing import TextIO

from alerting.notification import Notification
from alerting.render.text import format_time, headline, one_line, status_tag
from schemas.money import format_usd


def _share(share: str) -> str:
    """ " (63%)" for a decimal share "0.63"; nothing when absent or unreadable."""
    try:
        return f" ({(Decimal(share) * 100).quantize(Decimal(1))}%)" if share else ""
    except InvalidOperation:
        return ""


class ConsoleNotifier:
    """Writes to ``stream`` (resolved at send time when None, so pytest's capsys works)."""

    def __init__(self, name: str = "console", stream: TextIO | None = None) -> None:
        self.name = name
        self._stream = stream

    def lines(self, message: Notification) -> list[str]:
        """The lines ``send`` writes (pure)."""
        if message.kind == "report" and message.report is not None:
            return [
                f"{format_time(message.created_at)} [spendwatch REPORT] "
                + one_line(message.report.summary.replace("\n", " | ").replace("*", ""))
            ]
        if message.kind == "digest" and message.digest is not None:
            d = message.digest
            out = [
                f"{d.day.isoformat()} [spendwatch DIGEST] total {format_usd(d.total_cost_nusd)}"
                f" ({d.timezone})"
            ]
            out += [
                f"  budget {b.name}: {format_usd(b.spent_nusd)} of {format_usd(b.limit_nusd)}"
                for b in d.budgets
            ]
            return out
        out = []
        for i, alert in enumerate(message.alerts):
            labels = " ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
            text = (
                f"{format_time(message.created_at)} "
                f"[spendwatch {status_tag(alert, message.is_reminder(i))}] "
                f"{headline(alert)} {labels} id={alert.alert_id}"
            )
            out.append(one_line(text))
            if alert.severity == "emergency" and alert.status == "firing" and alert.contributors:
                # The overrun protocol: say where the money went, right under the alert.
                top = " | ".join(
                    f"{c.dimension} {c.name} {format_usd(c.cost_nusd)}" + _share(c.share)
                    for c in alert.contributors[:8]
                )
                out.append("    " + one_line(f"top spend: {top}"))
        return out

    async def send(self, message: Notification) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        for line in self.lines(message):
            stream.write(line + "\n")
        stream.flush()
