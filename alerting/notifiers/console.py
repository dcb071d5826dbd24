"""Console notifier: one compact human line per alert, to a text stream (stdout default).

Example: ``2025-03-14 10:00 UTC [spendwatch CRITICAL] budget fleet-daily at 95% ($1.90 of
$2.00) service=checkout id=5f0c...``. A digest prints its total and per-budget lines.
"""

from __future__ import annotations

import sys
from typing import TextIO

from alerting.notification import Notification
from alerting.render.text import format_time, headline, one_line, status_tag
from schemas.money import format_usd


class ConsoleNotifier:
    """Writes to ``stream`` (resolved at send time when None, so pytest's capsys works)."""

    def __init__(self, name: str = "console", stream: TextIO | None = None) -> None:
        self.name = name
        self._stream = stream

    def lines(self, message: Notification) -> list[str]:
        """The lines ``send`` writes (pure)."""
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
        return out

    async def send(self, message: Notification) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        for line in self.lines(message):
            stream.write(line + "\n")
        stream.flush()
