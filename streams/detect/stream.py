"""``DetectStream``: the aggregator and the monitor wired together for the worker's agent.

The detect agent calls :meth:`DetectStream.add` for every priced event and a timer calls
:meth:`DetectStream.tick` with the wall clock every few seconds; both return the alerts to
publish. The order inside ``tick`` matters: minutes still open in the aggregator are closed
and observed *before* silent minutes are filled, so a service is never taken for silent while
its bucket is still on its way.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from schemas.alerts import Alert
from streams.detect.minutes import MinuteAggregator
from streams.detect.monitor import SpikeMonitor
from streams.detect.settings import DetectSettings


class DetectStream:
    """One worker's spike and failure detection: events in, alerts out."""

    def __init__(self, settings: DetectSettings | None = None) -> None:
        self.settings = settings or DetectSettings()
        self.minutes = MinuteAggregator(self.settings)
        self.monitor = SpikeMonitor(self.settings)

    def add(self, event: Mapping[str, Any]) -> list[Alert]:
        """One priced event (dict); returns alerts caused by the minutes it closed."""
        alerts: list[Alert] = []
        for bucket in self.minutes.add(event):
            alerts += self.monitor.observe(bucket)
        return alerts

    def tick(self, now: datetime) -> list[Alert]:
        """Periodic (every few seconds) with the wall clock: closes minutes of an idle stream
        and notices services that went silent."""
        alerts: list[Alert] = []
        for bucket in self.minutes.close_until(now):
            alerts += self.monitor.observe(bucket)
        watermark = self.minutes.watermark
        if watermark is not None:
            alerts += self.monitor.close_idle(watermark)
        return alerts

    def flush(self) -> list[Alert]:
        """Close and observe every open minute (end of a backfill; shutdown)."""
        alerts: list[Alert] = []
        for bucket in self.minutes.flush():
            alerts += self.monitor.observe(bucket)
        return alerts
