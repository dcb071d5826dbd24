"""Weekly and monthly reports from the worker: on Monday and on the 1st, once local time in
``[report] timezone`` passes ``[report] at``, the group's leader builds the report of the period
that ended and hands it to the alert dispatcher (email: full report with the chart; Slack: the
summary; console: one line). The dispatcher's delivery log sends each report once per receiver,
across restarts; a period with no spend in it or the one before sends nothing.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from alerting.report import ReportMessage
from streams.report.build import build_report
from streams.report.chart import report_chart
from streams.report.model import Report
from streams.report.periods import Period, ReportSpan, due_span
from streams.report.render import CHART_CID, render_html, render_summary, render_text
from streams.report.settings import ReportSettings

log = logging.getLogger("spendwatch.report")


def report_message(report: Report) -> ReportMessage:
    """A built report rendered for the notifiers (blocking: draws the chart)."""
    return ReportMessage(
        key=report.span.key,
        subject=f"[spendwatch REPORT] {report.span.current.label}: "
        f"{render_summary(report).splitlines()[1]}",
        text=render_text(report),
        html=render_html(report, chart_cid=CHART_CID),
        summary=render_summary(report),
        chart_png=report_chart(report),
        chart_cid=CHART_CID,
    )


def build_message(
    client: Any, span: ReportSpan, settings: ReportSettings, budgets: Any
) -> ReportMessage | None:
    """Build and render the report of ``span`` from ClickHouse (blocking); None when neither
    it nor the previous period had any call."""

    def run(sql: str) -> list[list[Any]]:
        return [list(r) for r in client.query(sql).result_rows]

    report = build_report(run, span, settings, budgets)
    if not report.total.calls and not report.total.previous_calls:
        return None
    return report_message(report)


class ReportSchedule:
    """Sends the due weekly / monthly reports; ``tick`` runs every minute on the leader."""

    def __init__(self, settings: Any, runtime: Any) -> None:
        self.settings = settings
        self.runtime = runtime
        self._last: dict[str, str] = {}

    async def tick(self) -> None:
        await self.run_once(datetime.now(UTC))

    async def run_once(self, now: datetime) -> list[str]:
        """Send what is due at ``now``; returns the keys of the reports handed over."""
        report: ReportSettings = getattr(self.settings, "report", None) or ReportSettings()
        runtime = self.runtime
        if not runtime.ready.is_set() or runtime.dispatcher is None:
            return []
        periods: list[Period] = []
        if report.weekly:
            periods.append("week")
        if report.monthly:
            periods.append("month")
        sent = []
        for period in periods:
            span = due_span(period, now, report.timezone, report.at, self._last.get(period))
            if span is None:
                continue
            try:
                message = await asyncio.to_thread(
                    build_message, runtime.query_client, span, report, self.settings.budgets
                )
            except Exception:  # ClickHouse unreadable: try again at the next tick
                log.exception("cannot build the %s report %s", period, span.key)
                continue
            self._last[period] = span.key
            if message is None:
                log.info("no spend in %s or before it: no report", span.key)
                continue
            await runtime.dispatcher.send_report(message, report.receivers, now)
            sent.append(span.key)
        return sent
