"""What a worker holds besides its Faust app: ClickHouse (client, sinks, read-only SQL
endpoint) and the alert dispatcher with its notifiers.

``start()`` runs as a Faust task when the worker starts: it applies the ClickHouse schema,
opens the sinks and the endpoint, then sets ``ready`` (agents wait for it). ``stop()`` runs
before the worker shuts down: it flushes every sink and closes the notifiers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from alerting.delivery import AlertDispatcher
from alerting.deliverylog import TopicDeliveryLog
from alerting.digest import BudgetLine
from alerting.records import AlertRecord, DeliveryRecord
from schemas.alerts import Alert
from sinks import rows
from sinks.batching import DeadLetter as SinkDeadLetter
from sinks.clickhouse import ClickHouseSink
from sinks.client import make_client
from sinks.http_endpoint import start_sql_endpoint
from sinks.migrate import migrate_async
from sinks.query import recorded_alerts
from streams.config import Settings
from streams.digest import build_summary
from streams.health import SINK_FAILURES_TO_ALERT, sink_health_alert

log = logging.getLogger("spendwatch.runtime")
T = TypeVar("T")


class Runtime:
    """ClickHouse sinks, the SQL endpoint and the alert dispatcher of one worker."""

    def __init__(
        self,
        settings: Settings,
        health: Callable[[], dict[str, Any]] | None = None,
        *,
        alert_partitions: int | None = None,
    ) -> None:
        """``alert_partitions``: the alerts topic's partition count; with it the dispatcher
        keeps its delivery log in the shared topic as well (``topics.DELIVERIES``), and owns
        the alert partitions given to :meth:`assign_alerts`."""
        self.settings = settings
        self.health = health
        self.alert_partitions = alert_partitions
        self.ready = asyncio.Event()
        self._owned_alerts: set[int] | None = None
        # Clear while a rebalance hands alert partitions over: alerts wait for it.
        self._assigned = asyncio.Event()
        self._assigned.set()
        self.client: Any = None
        self.query_client: Any = None
        self.deadletter_sink: ClickHouseSink | None = None
        self.alert_sink: ClickHouseSink | None = None
        self.delivery_sink: ClickHouseSink | None = None
        self.dispatcher: AlertDispatcher | None = None
        self._endpoint: Any = None
        self._sink_episodes: dict[str, datetime] = {}
        self._handled: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._stopped = False

    async def start(self) -> None:
        """Apply the schema, open sinks, endpoint and dispatcher; then set ``ready``."""
        ch = self.settings.clickhouse
        self.settings.worker.state_dir.mkdir(parents=True, exist_ok=True)
        self.client = await asyncio.to_thread(make_client, ch)
        await migrate_async(self.client, ch)

        def sink(spec: rows.TableSpec) -> ClickHouseSink:
            return ClickHouseSink.for_table(
                self.client, spec, ch, on_dead_letter=self._sink_dead_letters
            )

        self.deadletter_sink = sink(rows.DEADLETTER)
        self.alert_sink = sink(rows.ALERTS)
        self.delivery_sink = sink(rows.ALERT_DELIVERIES)
        for s in self.sinks:
            await s.open()
        shared = None
        if self.alert_partitions is not None:
            from streams import topics

            shared = TopicDeliveryLog(
                self.settings.kafka.bootstrap_servers, topics.DELIVERIES, self.alert_partitions
            )
        self.dispatcher = AlertDispatcher.from_settings(
            self.settings.alerting,
            state_dir=self.settings.worker.state_dir,
            recorder=self._record_delivery,
            shared=shared,
        )
        if self._owned_alerts is not None:
            await self.dispatcher.assign(self._owned_alerts, datetime.now(UTC))
        w = self.settings.worker
        # The endpoint gets its own read-only client: queries never queue behind inserts.
        self.query_client = await asyncio.to_thread(make_client, ch, read_only=True)
        from streams.console import console_app  # the console rides on the endpoint

        self._endpoint = await start_sql_endpoint(
            self.query_client,
            w.http_host,
            w.http_port,
            health=self.health,
            extend=console_app(self.settings),
        )
        self.ready.set()
        log.info(
            "worker ready: ClickHouse %s, SQL endpoint %s:%s",
            ch.redacted_dsn,
            w.http_host,
            w.http_port,
        )

    async def stop(self) -> None:
        """Flush and close everything; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self.dispatcher is not None:
            await self.dispatcher.close()
        for s in self.sinks:
            await s.close()
        if self._endpoint is not None:
            await self._endpoint.stop()
        for client in (self.query_client, self.client):
            if client is not None:
                await asyncio.to_thread(client.close)

    @property
    def sinks(self) -> list[ClickHouseSink]:
        return [
            s for s in (self.deadletter_sink, self.alert_sink, self.delivery_sink) if s is not None
        ]

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking read ``fn(query_client, *args)`` in a worker thread."""
        return await asyncio.to_thread(fn, self.query_client, *args, **kwargs)

    def alerts_rebalancing(self) -> None:
        """A rebalance started: alerts wait until :meth:`assign_alerts` has run."""
        self._assigned.clear()

    async def revoke_alerts(self, partitions: set[int]) -> None:
        """Alert partitions taken away at a rebalance: their queued work is dropped."""
        self._assigned.clear()
        if self.dispatcher is not None and partitions:
            await self.dispatcher.release(partitions)

    async def assign_alerts(self, partitions: set[int]) -> None:
        """The alert partitions this worker owns after a rebalance (see
        ``AlertDispatcher.assign``); alerts handled meanwhile wait for it."""
        try:
            self._owned_alerts = set(partitions)
            if self.dispatcher is not None:
                await self.dispatcher.assign(partitions, datetime.now(UTC))
        finally:
            self._assigned.set()

    async def handle_alerts(
        self, alerts: Sequence[Alert], now: datetime, *, first_copies: bool = False
    ) -> None:
        """Hand alerts to the dispatcher (durable in its delivery log), then record them in
        ClickHouse. Notifications go first so a ClickHouse outage delays the record, never
        the page.

        The first copy of an alert wins: one emitted again with the same id and status (a
        replay, or a ledger seeded while the first copy was on its way) is neither submitted
        nor recorded again, so the recorded alert keeps its original time and figures.
        ``first_copies``: the caller knows these are first copies (a ledger's new alerts),
        so ClickHouse is not asked."""
        assert self.alert_sink is not None and self.dispatcher is not None
        await self._assigned.wait()
        alerts = await self._first_copies(alerts, ask_clickhouse=not first_copies)
        for alert in alerts:
            await self.dispatcher.submit(alert, now)
        if alerts:
            # Send what is due now (a group whose wait is over) rather than at the next
            # 1 s tick: a page should not wait for the clock.
            await self.dispatcher.tick(now)
        for alert in alerts:
            await self.alert_sink.add(rows.alert_row(alert, recorded_at=now))
        await self.alert_sink.flush()

    async def _first_copies(
        self, alerts: Sequence[Alert], *, ask_clickhouse: bool = True
    ) -> list[Alert]:
        fresh: list[Alert] = []
        for alert in alerts:
            key = (alert.alert_id, alert.status)
            if key not in self._handled:
                fresh.append(alert)
                self._handled[key] = None
        unknown = sorted({a.alert_id for a in fresh})
        if unknown and ask_clickhouse:
            try:
                recorded = await self.read(recorded_alerts, unknown)
            except Exception:  # ClickHouse down: better a repeat than a lost page
                log.warning("cannot read the alerts table; alerts are not deduplicated")
                recorded = set()
            fresh = [a for a in fresh if (a.alert_id, a.status) not in recorded]
        while len(self._handled) > 100_000:
            self._handled.popitem(last=False)
        return fresh

    async def check_health(self, now: datetime) -> None:
        """Raise (and later resolve) a pipeline alert for each sink that keeps failing.

        Submitted straight to the dispatcher, not through the alerts topic: the alerts agent
        itself waits on ClickHouse while ClickHouse is down.
        """
        assert self.dispatcher is not None
        for sink in self.sinks:
            failing = sink.stats.consecutive_failures >= SINK_FAILURES_TO_ALERT
            alert = sink_health_alert(sink.name, sink.stats, self._sink_episodes, now, failing)
            if alert is not None:
                await self.dispatcher.submit(alert, now)

    async def send_digest(
        self, day: date, timezone: str, budgets: tuple[BudgetLine, ...], now: datetime
    ) -> bool:
        """Build the digest of ``day`` from ClickHouse and send it; False for an empty day."""
        assert self.dispatcher is not None
        summary = await asyncio.to_thread(build_summary, self.query_client, day, timezone, budgets)
        if summary is None:
            return False
        await self.dispatcher.send_digest(summary, now)
        return True

    async def tick(self, now: datetime) -> None:
        assert self.dispatcher is not None
        await self.dispatcher.tick(now)

    # -- hooks -------------------------------------------------------------------------------
    async def _record_delivery(self, record: AlertRecord | DeliveryRecord) -> None:
        """Delivery attempts go to ``alert_deliveries``. Alerts themselves are recorded by
        :meth:`handle_alerts` (all of them, silenced ones included), so AlertRecords are
        skipped here."""
        if self.delivery_sink is None or not isinstance(record, DeliveryRecord):
            return
        await self.delivery_sink.add(
            rows.alert_delivery_row(
                alert_id=record.alert_id,
                receiver=record.receiver,
                attempt=record.attempt,
                outcome=record.outcome,
                at=record.attempted_at,
                error=record.error,
                status=record.alert_status,
            )
        )

    async def _sink_dead_letters(self, letters: Sequence[SinkDeadLetter]) -> None:
        """Rows ClickHouse refused as data errors: kept in the deadletter table with why."""
        if self.deadletter_sink is None:
            return
        now = datetime.now(UTC)
        for letter in letters:
            if letter.table == rows.DEADLETTER.table:
                log.error("deadletter row refused by ClickHouse: %s", letter.reason)
                continue
            original = rows.row_json(letter.columns, letter.row)
            await self.deadletter_sink.add(
                rows.deadletter_row(
                    received_at=now,
                    topic=f"clickhouse:{letter.table}",
                    partition=-1,
                    offset=-1,
                    reason_code=letter.reason_code,
                    reason=letter.reason,
                    original=original,
                )
            )
        await self.deadletter_sink.flush()
