"""``DetectStream``: the aggregator and the monitor wired together for the worker's agent.

The detect agent calls :meth:`DetectStream.add` for every priced event and a timer calls
:meth:`DetectStream.tick` with the wall clock every few seconds; both return the alerts to
publish. The order inside ``tick`` matters: minutes still open in the aggregator are closed
and observed *before* silent minutes are filled, so a service is never taken for silent while
its bucket is still on its way.

Warm start: :meth:`DetectStream.load_history` takes minutes and detector alerts still firing
read from ClickHouse at start-up (see ``streams/detect/history.py``); a service's history is
seeded into the monitor, and its open episodes continued, just before its first live minute
is observed. History of services that have not shown up within ``HISTORY_TTL`` is dropped
(another worker's partitions, or services gone quiet): a worker never continues an episode of
a service it does not see, so it never resolves one that another worker is following.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from schemas.alerts import Alert
from streams.detect.bucket import MinuteBucket, minute_index
from streams.detect.history import ServiceHistory
from streams.detect.minutes import MinuteAggregator
from streams.detect.monitor import SpikeMonitor
from streams.detect.settings import DetectSettings

log = logging.getLogger("spendwatch.detect")

HISTORY_TTL = timedelta(minutes=30)


class DetectStream:
    """One worker's spike and failure detection: events in, alerts out."""

    def __init__(self, settings: DetectSettings | None = None) -> None:
        self.settings = settings or DetectSettings()
        self.minutes = MinuteAggregator(self.settings)
        self.monitor = SpikeMonitor(self.settings)
        self._history: dict[str, ServiceHistory] = {}
        self._history_until: datetime | None = None
        self.seeded_services = 0
        self.seeded_minutes = 0
        self._open: dict[str, list[Alert]] = {}
        self.restored_alerts = 0

    def load_history(
        self,
        history: Mapping[str, ServiceHistory],
        now: datetime,
        open_alerts: Iterable[Alert] = (),
    ) -> None:
        """Keep each service's history (``read_history``) to seed it when it first shows up
        (until ``now + HISTORY_TTL``), with the detector alerts still firing for it
        (``read_open_alerts``), whose episodes are then continued so that they resolve under
        their own ids. A traffic-drop alert's service is silent by definition: it is seeded
        and continued at once. Call before the first event."""
        self._history = {svc: h for svc, h in history.items() if len(h)}
        self._history_until = now + HISTORY_TTL
        self._open = {}
        for alert in open_alerts:
            self._open.setdefault(alert.labels.get("service", ""), []).append(alert)
        for service in sorted(self._open):
            if any(a.labels.get("detector") == "traffic_drop" for a in self._open[service]):
                h = self._history.pop(service, None)
                if h is not None:
                    self._seed(service, h, minute_index(now))
                self._restore(service)

    def _restore(self, service: str) -> None:
        for alert in self._open.pop(service, ()):
            if self.monitor.restore(alert):
                self.restored_alerts += 1
            else:
                log.warning(
                    "detector alert %s (%s) cannot be continued: its episode starts before the "
                    "stored history; it stays open",
                    alert.alert_id,
                    alert.title,
                )

    def _seed(self, service: str, history: ServiceHistory, before: int) -> None:
        loaded = self.monitor.seed_history(service, history, before=before)
        self.seeded_services += loaded > 0
        self.seeded_minutes += loaded

    @property
    def pending_history(self) -> int:
        """Services whose history is loaded but not yet seeded."""
        return len(self._history)

    def _observe(self, bucket: MinuteBucket) -> list[Alert]:
        if self._history:
            history = self._history.pop(bucket.service, None)
            if history:
                self._seed(bucket.service, history, bucket.index)
                self._restore(bucket.service)
        return self.monitor.observe(bucket)

    def add(self, event: Mapping[str, Any]) -> list[Alert]:
        """One priced event (dict); returns alerts caused by the minutes it closed."""
        alerts: list[Alert] = []
        for bucket in self.minutes.add(event):
            alerts += self._observe(bucket)
        return alerts

    def observe(self, buckets: list[MinuteBucket]) -> list[Alert]:
        """Minutes closed by the hot path's ``MinuteAggregator.add_event`` calls."""
        alerts: list[Alert] = []
        for bucket in buckets:
            alerts += self._observe(bucket)
        return alerts

    def forget_partition(self, partition: int) -> None:
        """A source partition went to another worker: stop following its services here, so
        they are not taken for silent (the other worker follows them now)."""
        for service in self.minutes.forget_partition(partition):
            self.monitor.forget(service)

    def tick(self, now: datetime) -> list[Alert]:
        """Periodic (every few seconds) with the wall clock: closes minutes of an idle stream
        and notices services that went silent."""
        if self._history_until is not None and now >= self._history_until:
            self._history, self._open, self._history_until = {}, {}, None
        alerts: list[Alert] = []
        for bucket in self.minutes.close_until(now):
            alerts += self._observe(bucket)
        watermark = self.minutes.watermark
        if watermark is not None:
            alerts += self.monitor.close_idle(watermark)
        return alerts

    def flush(self) -> list[Alert]:
        """Close and observe every open minute (end of a backfill; shutdown)."""
        alerts: list[Alert] = []
        for bucket in self.minutes.flush():
            alerts += self._observe(bucket)
        return alerts
