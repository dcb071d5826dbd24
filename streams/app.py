"""The Faust app: topics, tables and thin agents. All maths lives in pure modules.

```
usage (key=service) ──ingest──► priced (key=service) ──► ClickHouse usage_events
                       │        └─► budget-spend (key=budget) ──budgets──► alerts, budget-status
                       └─► deadletter ──► ClickHouse deadletter
priced ──detect──► alerts (spikes, failures)        control (key=budget) ──► overrides
alerts ──► ClickHouse alerts + AlertDispatcher (Slack, email, console, webhook)
```

Processing is ``at_least_once`` (the Tansu broker refuses idempotent producers and
transactions): sinks are idempotent on replay and alert ids are deterministic, so a replay
neither doubles a sum nor repeats a notification. Sink agents write a batch before its events
are acknowledged, so offsets are committed only for rows that are in ClickHouse.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

import faust
import orjson

from alerting.digest import BudgetLine
from schemas.alerts import Alert
from schemas.events import parse_ts
from streams import topics
from streams.budgets import LedgerState, OverrideCommand, apply_spend, status_of
from streams.config import Settings
from streams.detect import DetectStream
from streams.digest import digest_day_due
from streams.ingest import DeadLetter, price_event, unpriced_alert
from streams.pricing import Pricer
from streams.runtime import Runtime

log = logging.getLogger("spendwatch.worker")

# Every budget's status is republished at least this often, even when nothing changed, so a
# period rollover reaches the SDK guard and the SDK can tell a quiet worker from a dead one.
STATUS_HEARTBEAT = timedelta(seconds=10)


def _now() -> datetime:
    return datetime.now(UTC)


class Pipeline:
    """One worker's Faust app with its agents; ``runtime`` holds ClickHouse and the notifiers.

    Agents wait for ``runtime.ready`` before they touch a sink, so nothing is processed before
    the schema is applied and the sinks are open.
    """

    def __init__(self, settings: Settings, *, app_id: str = "spendwatch") -> None:
        self.settings = settings
        self.budgets = {b.name: b for b in settings.budgets}
        self.pricer = Pricer(settings.prices)
        self.runtime = Runtime(settings)
        self.app = app = faust.App(
            app_id,
            broker=[f"kafka://{hp.strip()}" for hp in settings.kafka.bootstrap_servers.split(",")],
            store="memory://",
            processing_guarantee="at_least_once",
            topic_partitions=settings.kafka.partitions,
            topic_allow_declare=True,
            web_enabled=False,
            broker_session_timeout=6.0,
            broker_heartbeat_interval=1.0,
            consumer_auto_offset_reset="earliest",
            stream_wait_empty=False,
            worker_redirect_stdouts=False,
            table_cleanup_interval=30.0,
        )
        raw: dict[str, Any] = {
            "key_type": bytes,
            "value_type": bytes,
            "key_serializer": "raw",
            "value_serializer": "raw",
        }
        self.usage = app.topic(topics.USAGE, **raw)
        self.priced = app.topic(topics.PRICED, **raw)
        self.deadletter = app.topic(topics.DEADLETTER, **raw)
        self.budget_spend = app.topic(topics.BUDGET_SPEND, **raw)
        self.alerts = app.topic(topics.ALERTS, **raw)
        self.budget_status = app.topic(topics.BUDGET_STATUS, **raw)
        self.control = app.topic(topics.CONTROL, **raw)
        # Period-to-date ledger per budget (LedgerState as a dict), keyed by budget name.
        self.ledger = app.Table("budget-ledger", default=None, partitions=settings.kafka.partitions)
        # Per-service spend in 1-minute tumbling windows (event time = record timestamp).
        self.minute_spend = app.Table(
            "service-minute-spend", default=int, partitions=settings.kafka.partitions
        ).tumbling(60.0, expires=timedelta(hours=2))
        self._states: dict[str, LedgerState] = {}
        self._dirty: set[str] = set()
        self._last_heartbeat = datetime.min.replace(tzinfo=UTC)
        self._digest_day: date | None = None
        self._unpriced_seen: set[str] = set()
        self.detector = DetectStream(settings.detect)
        self._register()

    # -- agents ------------------------------------------------------------------------------
    def _register(self) -> None:
        app = self.app
        app.agent(self.usage, name="ingest")(self._ingest)
        app.agent(self.priced, name="store-priced")(self._store_priced)
        app.agent(self.priced, name="detect")(self._detect)
        app.agent(self.deadletter, name="store-deadletter")(self._store_deadletter)
        app.agent(self.budget_spend, name="budgets")(self._budgets)
        app.agent(self.control, name="control")(self._control)
        app.agent(self.alerts, name="alerts")(self._alerts)
        app.timer(self.settings.worker.status_interval_s, name="publish-status")(
            self._publish_status
        )
        app.timer(1.0, name="alert-tick")(self._alert_tick)
        app.timer(5.0, name="detect-idle")(self._detect_idle)
        app.timer(5.0, name="health")(self._health)
        app.timer(30.0, name="digest")(self._digest)
        app.task(self.runtime.start)
        app.on_before_shutdown.connect(self._on_shutdown)  # type: ignore[arg-type]

    async def _on_shutdown(self, app: Any, *args: Any, **kwargs: Any) -> None:
        await self.runtime.stop()

    async def _ingest(self, stream: Any) -> None:
        async for event in stream.events():
            now = _now()
            msg = event.message
            priced, rejection = price_event(msg.value, self.pricer, now)
            if priced is None:
                assert rejection is not None
                letter = DeadLetter(
                    reason_code=rejection.code,
                    reason=str(rejection),
                    original=msg.value,
                    topic=msg.topic,
                    partition=msg.partition,
                    offset=msg.offset,
                    key=msg.key,
                    received_at=now,
                )
                await self.deadletter.send(value=orjson.dumps(letter.to_dict()))
                continue
            service = priced["service"].encode()
            await self.priced.send(key=service, value=orjson.dumps(priced))
            if priced["cost_source"] == "unpriced":
                alert = unpriced_alert(priced, now)
                if alert.alert_id not in self._unpriced_seen:
                    self._unpriced_seen.add(alert.alert_id)
                    await self.send_alert(alert)
            for budget in self.budgets.values():
                if budget.matches(priced):
                    await self.budget_spend.send(
                        key=budget.name.encode(),
                        value=orjson.dumps({"budget": budget.name, "event": priced}),
                    )

    async def _store_priced(self, stream: Any) -> None:
        await self.runtime.ready.wait()
        ch = self.settings.clickhouse
        async for values in stream.take(ch.batch_rows, within=ch.flush_interval_s):
            await self.runtime.write_usage([orjson.loads(v) for v in values])

    async def _store_deadletter(self, stream: Any) -> None:
        await self.runtime.ready.wait()
        ch = self.settings.clickhouse
        async for values in stream.take(ch.batch_rows, within=ch.flush_interval_s):
            await self.runtime.write_deadletters([orjson.loads(v) for v in values])

    async def _budgets(self, stream: Any) -> None:
        async for value in stream:
            item = orjson.loads(value)
            budget = self.budgets.get(item["budget"])
            if budget is None:  # budget removed from the config since the event was routed
                continue
            event = item["event"]
            # A client with a fast clock must not roll a period over early.
            ts = min(parse_ts(event["ts"]), parse_ts(event["ingested_at"]))
            state, alerts = apply_spend(
                budget, self._state(budget.name), event=event, cost_nusd=event["cost_nusd"], ts=ts
            )
            self._remember(budget.name, state)
            for alert in alerts:
                await self.send_alert(alert)

    async def _control(self, stream: Any) -> None:
        async for value in stream:
            try:
                command = OverrideCommand.from_json(value)
                budget = self.budgets[command.budget]
            except (KeyError, ValueError) as exc:
                log.warning("ignoring control command %r: %s", bytes(value[:200]), exc)
                continue
            state, alert = command.apply(budget, self._state(budget.name))
            self._remember(budget.name, state)
            await self.send_alert(alert)

    async def _detect(self, stream: Any) -> None:
        async for key, value in stream.items():
            event = orjson.loads(value)
            self.minute_spend[key] += event["cost_nusd"]
            for alert in self.detector.add(event):
                await self.send_alert(alert)

    async def _detect_idle(self) -> None:
        for alert in self.detector.tick(_now()):
            await self.send_alert(alert)

    async def _alerts(self, stream: Any) -> None:
        await self.runtime.ready.wait()
        async for values in stream.take(500, within=0.5):
            alerts = [Alert.from_json(v) for v in values]
            await self.runtime.handle_alerts(alerts, _now())

    async def _alert_tick(self) -> None:
        if self.runtime.ready.is_set():
            await self.runtime.tick(_now())

    async def _health(self) -> None:
        if self.runtime.ready.is_set():
            await self.runtime.check_health(_now())

    async def _digest(self) -> None:
        """Send yesterday's digest once ``alerting.digest_at`` has passed (local time)."""
        alerting = self.settings.alerting
        if alerting.digest_at is None or not self.runtime.ready.is_set():
            return
        now = _now()
        day = digest_day_due(now, alerting.digest_at, alerting.digest_timezone, self._digest_day)
        if day is None:
            return
        lines = []
        for name, budget in self.budgets.items():
            status = status_of(budget, self._state(name), now)
            lines.append(
                BudgetLine(
                    name,
                    status.spent_nusd,
                    status.limit_nusd,
                    status.period_start.date().isoformat(),
                )
            )
        await self.runtime.send_digest(day, alerting.digest_timezone, tuple(lines), now)
        self._digest_day = day

    async def _publish_status(self) -> None:
        """Publish budget status: changed budgets every tick, every budget at least every
        ``STATUS_HEARTBEAT``."""
        now = _now()
        heartbeat = now - self._last_heartbeat >= STATUS_HEARTBEAT
        if heartbeat:
            self._last_heartbeat = now
        dirty, self._dirty = self._dirty, set()
        for name in sorted(set(self.budgets) if heartbeat else dirty):
            budget = self.budgets[name]
            status = status_of(budget, self._state(name), now)
            await self.budget_status.send(key=name.encode(), value=status.to_json())

    # -- helpers -----------------------------------------------------------------------------
    def _remember(self, name: str, state: LedgerState) -> None:
        """Keep the new ledger in memory and in the table (written from inside the stream
        iteration, as Faust requires, so the changelog partition matches the event's)."""
        self._states[name] = state
        self.ledger[name] = state.to_dict()
        self._dirty.add(name)

    def _state(self, name: str) -> LedgerState | None:
        """The budget's ledger: in memory while the worker runs (decoding it per event would
        cost more than the maths), recovered from the table after a restart."""
        state = self._states.get(name)
        if state is None:
            raw = self.ledger.get(name)
            if raw:
                state = self._states[name] = LedgerState.from_dict(raw)
        return state

    async def send_alert(self, alert: Alert) -> None:
        """Publish an alert; the alerts agent records and delivers it."""
        await self.alerts.send(key=alert.alert_id.encode(), value=alert.to_json())
