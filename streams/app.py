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

import asyncio
import logging
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import faust
import orjson
from aiokafka.partitioner import DefaultPartitioner

from alerting.digest import BudgetLine
from schemas.alerts import Alert
from schemas.events import parse_ts
from schemas.money import format_usd
from streams import topics
from streams.budgets import (
    Budget,
    LedgerState,
    OverrideCommand,
    apply_spend,
    period_bounds,
    status_of,
)
from streams.budgets.seed import seed_state
from streams.config import Settings
from streams.detect import DetectStream
from streams.detect.history import read_history, read_open_alerts
from streams.digest import digest_day_due
from streams.ingest import DeadLetter, price_event, unpriced_alert
from streams.pricing import Pricer
from streams.report.schedule import ReportSchedule  # issue 17
from streams.runtime import Runtime
from streams.transport import use_fetch_wait

log = logging.getLogger("spendwatch.worker")

# Every budget's status is republished at least this often, even when nothing changed, so a
# period rollover reaches the SDK guard and the SDK can tell a quiet worker from a dead one.
STATUS_HEARTBEAT = timedelta(seconds=10)
LEDGER_CHECKPOINT_S = 1.0
_PARTITIONER = DefaultPartitioner()  # the producer's (Faust's default): key -> partition
WARM_START_WAIT_S = 30.0  # the detector waits this long for ClickHouse, then starts cold


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
            # Batch produce requests for a few ms: one request per message costs the broker
            # (and this worker) more than the wait (measured: Tansu CPU/event 242 → 104 µs).
            producer_linger=0.005,
        )
        use_fetch_wait(app, settings.kafka.fetch_max_wait_ms)
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
        self.budget_status = app.topic(topics.BUDGET_STATUS, compacting=True, **raw)
        self.control = app.topic(topics.CONTROL, **raw)
        # Period-to-date ledger per budget (LedgerState as a dict), keyed by budget name.
        self.ledger = app.Table("budget-ledger", default=None, partitions=settings.kafka.partitions)
        self.started_at = _now()
        self._states: dict[str, LedgerState] = {}
        self._stale: dict[str, LedgerState] = {}  # table ledgers kept under another definition
        self._unsaved: set[str] = set()  # ledgers changed since their last checkpoint
        self._ledger_partitions: dict[str, int] = {}  # changelog partition of each ledger
        self._ledgers_ready = asyncio.Event()
        self._checkpointed_at: dict[str, float] = {}
        self._dirty: set[str] = set()
        self._last_heartbeat = datetime.min.replace(tzinfo=UTC)
        self._digest_day: date | None = None
        self._unpriced_seen: set[str] = set()
        # Per-service 1-minute windows (event time, with allowed lateness) feeding the spike
        # and failure detectors.
        self.detector = DetectStream(settings.detect)
        self.reports = ReportSchedule(settings, self.runtime)  # issue 17: weekly/monthly
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
        # One digest per group: only the leader sends it (each worker keeps its own delivery
        # log, so two senders would mean two digests).
        app.timer(30.0, name="digest", on_leader=True)(self._digest)
        app.timer(60.0, name="reports", on_leader=True)(self.reports.tick)  # issue 17
        app.task(self.runtime.start)
        app.task(self._load_ledgers)
        app.on_before_shutdown.connect(self._on_shutdown)  # type: ignore[arg-type]
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

    async def _on_shutdown(self, app: Any, *args: Any, **kwargs: Any) -> None:
        await self._checkpoint_ledgers()
        await self.runtime.stop()

    async def _on_revoked(self, app: Any, revoked: Any, **kwargs: Any) -> None:
        # Another worker may own some budget after this rebalance and recover its ledger
        # from the changelog: everything counted so far must be there first.
        await self._checkpoint_ledgers()

    async def _on_assigned(self, app: Any, assigned: Any, **kwargs: Any) -> None:
        # A ledger this worker no longer owns lives on in its new owner; dropping ours means a
        # later re-assignment reads the table (the changelog) instead of a stale copy.
        owned = self._owned()
        for name in [n for n in self._states if n not in owned]:
            self._states.pop(name, None)
            self._unsaved.discard(name)

    def _owned(self) -> set[str]:
        """Budgets whose ledger this worker holds. ``budget-spend`` is keyed by budget name
        and its partitions are shared among the workers of the group; with all of them
        assigned (one worker), every budget."""
        assigned = {
            tp.partition for tp in self.app.consumer.assignment() if tp.topic == topics.BUDGET_SPEND
        }
        # the consumer's metadata may not know the count yet: the configured one then
        count = self.app.consumer.topic_partitions(topics.BUDGET_SPEND) or (
            self.settings.kafka.partitions
        )
        if len(assigned) >= count:
            return set(self.budgets)
        partitions = list(range(count))
        return {
            name
            for name in self.budgets
            if _PARTITIONER(name.encode(), partitions, partitions) in assigned
        }

    async def _checkpoint_ledgers(self) -> None:
        """Write every ledger changed since its last checkpoint to the table's changelog (on
        the partition its events came from) and flush the producer: at a clean stop or a
        rebalance Faust commits the offsets of the events they counted, so a worker that
        recovered an older checkpoint would never count those events again."""
        for name in sorted(self._unsaved):
            partition = self._ledger_partitions.get(name)
            state = self._states.get(name)
            if partition is None or state is None:
                continue
            value = {**state.to_dict(), "counts": self.budgets[name].counting_key}
            self.ledger.send_changelog(partition, name, value)
        self._unsaved.clear()
        try:
            await self.app.producer.flush()
        except Exception:  # the stop goes on; the next start recounts from its checkpoint
            log.exception("could not flush the ledger checkpoints at shutdown")

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

    async def _load_ledgers(self) -> None:
        """Every budget's ledger into memory before any event, command or status uses it:
        from the table (Faust starts tasks once its tables are recovered), or rebuilt from
        ClickHouse when lost or kept under another definition of the budget. Checkpointed to
        the table with the next event (table writes belong in a stream's iteration)."""
        await self.runtime.ready.wait()
        owned = self._owned()
        for name, budget in sorted(self.budgets.items()):
            if name in owned and self._state(name) is None:
                self._states[name] = await self._seed(budget)
        self._ledgers_ready.set()

    async def _budgets(self, stream: Any) -> None:
        await self._ledgers_ready.wait()
        async for value in stream:
            item = orjson.loads(value)
            budget = self.budgets.get(item["budget"])
            if budget is None:  # budget removed from the config since the event was routed
                continue
            event = item["event"]
            # A client with a fast clock must not roll a period over early.
            ts = min(parse_ts(event["ts"]), parse_ts(event["ingested_at"]))
            state = self._state(budget.name) or await self._seed(budget)
            state, alerts = apply_spend(
                budget, state, event=event, cost_nusd=event["cost_nusd"], ts=ts
            )
            self._remember(budget.name, state, checkpoint=bool(alerts))
            for alert in alerts:
                await self.send_alert(alert)

    async def _control(self, stream: Any) -> None:
        await self._ledgers_ready.wait()
        async for value in stream:
            try:
                command = OverrideCommand.from_json(value)
                budget = self.budgets[command.budget]
            except (KeyError, ValueError) as exc:
                log.warning("ignoring control command %r: %s", bytes(value[:200]), exc)
                continue
            state, alert = command.apply(budget, self._state(budget.name))
            self._remember(budget.name, state, checkpoint=True)
            await self.send_alert(alert)

    async def _detect(self, stream: Any) -> None:
        await self._warm_detector()
        async for value in stream:
            event = orjson.loads(value)
            for alert in self.detector.add(event):
                await self.send_alert(alert)

    async def _warm_detector(self) -> None:
        """Load the detector's history (the last ``history_min`` minutes of per-minute
        rollups) from ClickHouse, so a restarted worker keeps its baselines instead of
        starting cold. ClickHouse unreachable for ``WARM_START_WAIT_S``: start cold."""
        s = self.settings.detect
        if not (s.enabled and s.warm_start):
            return
        started = time.monotonic()
        try:
            await asyncio.wait_for(self.runtime.ready.wait(), WARM_START_WAIT_S)
            now = _now()
            client = self.runtime.query_client
            history, open_alerts = await asyncio.wait_for(
                asyncio.gather(
                    asyncio.to_thread(read_history, client.query_np, s, now),
                    asyncio.to_thread(
                        read_open_alerts, lambda sql: client.query(sql).result_rows, s, now
                    ),
                ),
                WARM_START_WAIT_S,
            )
        except Exception:  # a detector without history beats one that waits for ClickHouse
            log.exception("detector starts cold: cannot read its history from ClickHouse")
            return
        self.detector.load_history(history, now, open_alerts)
        log.info(
            "detector history: %d minutes of %d services and %d open alerts from ClickHouse "
            "in %.1f s",
            sum(len(b) for b in history.values()),
            len(history),
            len(open_alerts),
            time.monotonic() - started,
        )

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
        owned = self._owned()
        for name, budget in self.budgets.items():
            state = self._state(name) if name in owned else await self._stored_state(budget, now)
            status = status_of(budget, state, now)
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

    async def _stored_state(self, budget: Budget, now: datetime) -> LedgerState | None:
        """The period-to-date spend of a budget another worker owns, from ClickHouse."""
        groups = await self._stored_groups(budget, now, before=now)
        return None if groups is None else seed_state(budget, groups, now)

    async def _stored_groups(
        self, budget: Budget, now: datetime, *, before: datetime
    ) -> list[tuple[dict[str, Any], int, int]] | None:
        """The budget's current-period spend stored in ClickHouse (rows ingested before
        ``before``), or None when ClickHouse cannot be read."""
        start, end = period_bounds(budget, now)
        try:
            return await self.runtime.stored_spend(start, end, before=before)
        except Exception:
            log.exception("budget %s: cannot read stored spend from ClickHouse", budget.name)
            return None

    async def _publish_status(self) -> None:
        """Publish budget status: changed budgets every tick, every budget at least every
        ``STATUS_HEARTBEAT``."""
        if not self._ledgers_ready.is_set():
            return  # no status before the ledgers are known: "ok" could unblock a guard
        now = _now()
        heartbeat = now - self._last_heartbeat >= STATUS_HEARTBEAT
        if heartbeat:
            self._last_heartbeat = now
        dirty, self._dirty = self._dirty, set()
        # Only the owner publishes a budget's status: another worker's copy would be stale.
        for name in sorted((set(self.budgets) if heartbeat else dirty) & self._owned()):
            budget = self.budgets[name]
            status = status_of(budget, self._state(name), now)
            await self.budget_status.send(key=name.encode(), value=status.to_json())

    # -- helpers -----------------------------------------------------------------------------
    def _remember(self, name: str, state: LedgerState, *, checkpoint: bool) -> None:
        """Keep the new ledger in memory; checkpoint it to the table (its changelog) when
        asked (alerts fired, override) or at most every ``LEDGER_CHECKPOINT_S`` otherwise.

        A changelog record per event was a quarter of the worker's per-event cost. Written
        from inside the stream iteration, as Faust requires, so the changelog partition is the
        event's. The ledger is exact while the worker runs; after a crash it restarts from its
        last checkpoint and the replay from the last committed offset.
        """
        self._states[name] = state
        self._dirty.add(name)
        event = faust.current_event()
        if event is not None:
            self._ledger_partitions[name] = event.message.partition
        now_s = time.monotonic()
        if checkpoint or now_s - self._checkpointed_at.get(name, 0.0) >= LEDGER_CHECKPOINT_S:
            self.ledger[name] = {**state.to_dict(), "counts": self.budgets[name].counting_key}
            self._checkpointed_at[name] = now_s
            self._unsaved.discard(name)
        else:
            self._unsaved.add(name)

    async def _seed(self, budget: Budget) -> LedgerState:
        """No ledger for ``budget`` (new budget, fresh embedded broker, lost changelog):
        continue from the spend earlier workers stored in ClickHouse for the current period.
        Only rows ingested before this worker started count, so nothing is counted twice."""
        now = _now()
        groups = await self._stored_groups(budget, now, before=self.started_at)
        if groups is None:  # ClickHouse unreadable: count from zero rather than stall budgets
            log.warning("budget %s: counting from zero", budget.name)
            groups = []
        state = seed_state(budget, groups, now)
        stale = self._stale.pop(budget.name, None)
        if stale is not None:
            log.warning(
                "budget %s: its scope, period or time zone changed in the config; the period "
                "is recounted from ClickHouse",
                budget.name,
            )
            if stale.override_until is not None and stale.override_until > now:
                state.override_limit_nusd = stale.override_limit_nusd
                state.override_until = stale.override_until
        if state.spent_nusd:
            log.warning(
                "budget %s: continuing from %s already spent this period (from ClickHouse)",
                budget.name,
                format_usd(state.spent_nusd),
            )
        return state

    def _state(self, name: str) -> LedgerState | None:
        """The budget's ledger: in memory while the worker runs (decoding it per event would
        cost more than the maths), recovered from the table after a restart. ``None`` when the
        table has none, or one kept under another definition of the budget (scope, period,
        time zone changed in the config): ``_seed`` then rebuilds it from ClickHouse."""
        state = self._states.get(name)
        if state is None:
            raw = self.ledger.get(name)
            if raw:
                budget = self.budgets.get(name)
                counts = raw.get("counts")
                if budget is not None and counts is not None and counts != budget.counting_key:
                    self._stale[name] = LedgerState.from_dict(raw)
                    return None
                state = self._states[name] = LedgerState.from_dict(raw)
        return state

    async def send_alert(self, alert: Alert) -> None:
        """Publish an alert; the alerts agent records and delivers it."""
        await self.alerts.send(key=alert.alert_id.encode(), value=alert.to_json())
