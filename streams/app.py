"""The worker: the hot path beside a Faust app. This module is wiring; the work is elsewhere.

```
usage (key=service) ──hot path (aiokafka batches, streams/hot)──► ClickHouse usage_events
                         │  └─► deadletter table + topic; detector minutes ─► alerts
                         └─► budget-deltas (key=budget, one per budget and batch)
budget-deltas ──agents/budgets──► LedgerBook ──► alerts, budget-status (key=budget)
control (key=budget) ──agents/control──► LedgerBook (overrides)
alerts (key=budget|service) ──agents/alerts──► ClickHouse alerts + dispatcher (Slack, email…)
```

Faust keeps the low-volume streams, the timers and leader election; the usage topic, where
the volume is, is read in whole batches by ``streams.hot.loop.UsageLoop``. Processing is
at-least-once on the wire and exactly-once in effect (docs/exactly-once.md): rows are stored
once per event id, ledgers count each source position once, alert ids are deterministic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import faust
from aiokafka.partitioner import DefaultPartitioner

from schemas.alerts import Alert
from streams import topics
from streams.agents import alerts as alerts_agent
from streams.agents import budgets as budgets_agent
from streams.agents import control as control_agent
from streams.agents import detect as detect_timer
from streams.agents import digest as digest_timer
from streams.agents import hot as hot_task
from streams.agents import status as status_timer
from streams.budgets.book import LedgerBook, LedgerStore
from streams.budgets.stored import announced_thresholds, latest_override, stored_spend
from streams.config import Settings
from streams.detect import DetectStream
from streams.hot.loop import UsageLoop
from streams.pricing import Pricer
from streams.report.schedule import ReportSchedule
from streams.runtime import Runtime
from streams.supervise import Supervisor
from streams.transport import use_fetch_wait

log = logging.getLogger("spendwatch.worker")

APP_ID = "spendwatch"
LEADER_TOPIC = f"{APP_ID}-__assignor-__leader"
_PARTITIONER = DefaultPartitioner()  # the producers': key -> partition


def _now() -> datetime:
    return datetime.now(UTC)


class Pipeline:
    """What one worker holds: the Faust app, the hot path, the ledgers, ClickHouse.

    ``epoch`` is the usage epoch (streams/epoch.py) and ``partitions`` the partition count of
    each topic, both known before the worker starts (``streams.worker.prepare``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        epoch: str,
        partitions: dict[str, int],
        supervisor: Supervisor | None = None,
    ) -> None:
        self.settings = settings
        self.epoch = epoch
        self.partitions = partitions
        self.supervisor = supervisor or Supervisor()
        self.runtime = Runtime(
            settings, health=self.health, alert_partitions=partitions[topics.ALERTS]
        )
        self.pricer = Pricer(settings.prices)
        self.detector = DetectStream(settings.detect)
        self.book = LedgerBook(
            {b.name: b for b in settings.budgets},
            LedgerStore(
                spend=lambda budget, start, end, since: self.runtime.read(
                    stored_spend, budget, start, end, burn_since=since
                ),
                announced=lambda name, since: self.runtime.read(announced_thresholds, name, since),
                override=lambda name, now: self.runtime.read(latest_override, name, now),
            ),
            clock=_now,
        )
        self.reports = ReportSchedule(settings, self.runtime)  # weekly and monthly reports
        self.hot: UsageLoop | None = None
        self.write_fault: Callable[[str], None] | None = None  # chaos tests inject failures
        self.last_heartbeat = datetime.min.replace(tzinfo=UTC)
        self.digest_day: date | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.app = app = faust.App(
            APP_ID,
            broker=[f"kafka://{hp.strip()}" for hp in settings.kafka.bootstrap_servers.split(",")],
            store="memory://",
            processing_guarantee="at_least_once",
            topic_partitions=settings.kafka.partitions,
            topic_allow_declare=False,  # the worker created every topic (streams.admin)
            web_enabled=False,
            broker_session_timeout=settings.kafka.session_timeout_ms / 1000,
            broker_heartbeat_interval=1.0,
            consumer_auto_offset_reset="earliest",
            stream_wait_empty=False,
            worker_redirect_stdouts=False,
            producer_linger=0.005,
        )
        # Faust reads the low-volume topics (deltas, control, alerts): a short fetch wait costs a
        # few empty fetches when idle and keeps each hop to a page short.
        use_fetch_wait(app, min(settings.kafka.fetch_max_wait_ms, 20))
        raw: dict[str, Any] = {
            "key_type": bytes,
            "value_type": bytes,
            "key_serializer": "raw",
            "value_serializer": "raw",
        }
        self.deltas_topic = app.topic(topics.BUDGET_DELTAS, **raw)
        self.alerts_topic = app.topic(topics.ALERTS, **raw)
        self.status_topic = app.topic(topics.BUDGET_STATUS, **raw)
        self.control_topic = app.topic(topics.CONTROL, **raw)
        self._register()

    # -- wiring --------------------------------------------------------------------------------
    def _register(self) -> None:
        app, guard = self.app, self.supervisor.guard

        def agent(topic: Any, name: str, fn: Any) -> None:
            async def run(stream: Any) -> None:
                await fn(self, stream)

            app.agent(topic, name=name)(guard(f"agent:{name}")(run))

        def timer(interval: float, name: str, fn: Any, **kwargs: Any) -> None:
            async def run() -> None:
                await fn(self)

            app.timer(interval, name=name, **kwargs)(guard(f"timer:{name}", loops=False)(run))

        def task(name: str, fn: Any) -> None:
            async def run() -> None:
                await fn(self)

            app.task(guard(f"task:{name}")(run))

        agent(self.deltas_topic, "budgets", budgets_agent.count_deltas)
        agent(self.control_topic, "control", control_agent.apply_overrides)
        agent(self.alerts_topic, "alerts", alerts_agent.deliver_alerts)
        task("clickhouse", lambda p: p.runtime.start())
        task("hot-path", hot_task.run_hot_path)
        timer(self.settings.worker.status_interval_s, "publish-status", status_timer.publish_status)
        timer(5.0, "detect-idle", detect_timer.tick)
        timer(1.0, "alert-tick", _alert_tick)
        timer(5.0, "health", _check_health)
        # One digest per group: only the leader sends it.
        timer(30.0, "digest", digest_timer.send_digest, on_leader=True)
        timer(60.0, "reports", lambda p: p.reports.tick(), on_leader=True)
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        app.on_before_shutdown.connect(self._on_shutdown)  # type: ignore[arg-type]

    async def _on_revoked(self, app: Any, revoked: Any, **kwargs: Any) -> None:
        """Stop delivering for alert partitions that may move, and drop the ledgers of the
        budgets whose ``budget-deltas`` partition is revoked (before the group rejoins).

        A budget this worker gets back is then seeded again from ClickHouse, like any budget
        it takes over: the group may have run a generation without this worker (a stall past
        the session timeout), in which another worker counted the budget's deltas and
        committed them, so the ledger kept from before would lack them for good."""
        self.runtime.alerts_rebalancing()
        await self.runtime.revoke_alerts(
            {tp.partition for tp in revoked if tp.topic == topics.ALERTS}
        )
        self.book.release(
            self._budgets_on({tp.partition for tp in revoked if tp.topic == topics.BUDGET_DELTAS})
        )

    async def _on_assigned(self, app: Any, assigned: Any, **kwargs: Any) -> None:
        """Own exactly the budgets whose ``budget-deltas`` partition this worker holds, and
        the alerts of the ``alerts`` partitions (the same numbers: co-partitioned)."""
        self.runtime.alerts_rebalancing()
        await self.runtime.assign_alerts(
            {tp.partition for tp in assigned if tp.topic == topics.ALERTS}
        )
        owned = self._budgets_on(
            {tp.partition for tp in assigned if tp.topic == topics.BUDGET_DELTAS}
        )
        self.book.release(self.book.owned - owned)
        for name in self.book.take(owned):
            task = asyncio.create_task(self._seed(name), name=f"seed-{name}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _budgets_on(self, partitions: set[int]) -> set[str]:
        """The budgets whose ``budget-deltas`` partition is one of ``partitions`` (key =
        budget name, the producers' partitioner)."""
        everything = list(range(self.partitions[topics.BUDGET_DELTAS]))
        return {
            name
            for name in self.book.budgets
            if _PARTITIONER(name.encode(), everything, everything) in partitions
        }

    async def _seed(self, name: str) -> None:
        await self.runtime.ready.wait()
        try:
            alerts = await self.book.seed(name)
        except asyncio.CancelledError:
            return  # the budget moved to another worker while seeding
        except Exception as exc:
            self.supervisor.crashed(f"seed:{name}", exc)
            return
        await self.raise_budget_alerts(alerts)

    async def epoch_changed(self, epoch: str) -> None:
        """The hot path adopted a new usage epoch (the embedded broker restarted empty); it
        calls this once the batches it wrote before are settled (sent and committed, or
        given up), and before it processes anything of the new epoch.

        Every owned ledger is seeded again from ClickHouse, exactly as at start-up: the
        snapshot holds every row written so far with its positions, so budget deltas the
        restart lost (sent to the stopped broker, or acknowledged and dropped by the fresh
        one) are counted from ClickHouse, and those still to come count once
        (docs/exactly-once.md, "A restarted broker")."""
        self.epoch = epoch
        await self.runtime.ready.wait()
        try:
            alerts = await self.book.reseed()
        except Exception as exc:
            self.supervisor.crashed("reseed", exc)
            return
        await self.raise_budget_alerts(alerts)

    async def _on_shutdown(self, app: Any, *args: Any, **kwargs: Any) -> None:
        if self.hot is not None:
            await self.hot.stop()
            try:
                await asyncio.wait_for(self.hot.stopped.wait(), 30.0)
            except TimeoutError:
                log.warning("the hot path did not finish its batch within 30 s")
        await self.runtime.stop()

    # -- helpers -------------------------------------------------------------------------------
    async def send_alert(self, alert: Alert) -> None:
        """Publish an alert; the alerts agent of its key records and delivers it."""
        await self.alerts_topic.send(key=alert.routing_key, value=alert.to_json())

    async def raise_budget_alerts(self, alerts: list[Alert]) -> None:
        """A ledger's new alerts: published (the durable copy) and handled here at once. The
        alerts topic is co-partitioned with the deltas, so the alerts agent of a budget's key
        runs on this very worker: it finds the copy already handled and drops it. One Kafka
        hop less between a crossing and the page."""
        if not alerts:
            return
        for alert in alerts:
            await self.send_alert(alert)
        if self.runtime.ready.is_set():
            await self.runtime.handle_alerts(alerts, _now(), first_copies=True)

    def health(self) -> dict[str, Any]:
        """What ``/health`` reports besides ClickHouse: every component's state, the hot
        path, the ledgers, the sinks."""
        body: dict[str, Any] = {
            "components": self.supervisor.as_dict(),
            "epoch": self.epoch,
        }
        if not self.supervisor.healthy:
            body["status"] = "crashed"
            body["reason"] = self.supervisor.crash_reason
        hot = self.hot
        if hot is not None:
            s = hot.stats
            body["hot_path"] = {
                "assigned": s.assigned,
                "batches": s.batches,
                "records": s.records,
                "rows": s.rows,
                "dead_letters": s.letters,
                "repeats": s.repeats,
                "replayed": s.replayed,
                "deltas": s.deltas,
                "commit_failures": s.commit_failures,
                "epochs": s.epochs,
                "epoch_forks": s.forks,
                "producers_replaced": s.producers,
                "write_retries": hot.writer.retries,
                "writer_error": hot.writer.last_error if hot.writer.consecutive_failures else None,
                "dedupe_ids": hot.builder.stored.size,
                "dedupe_covers_s": hot.builder.stored.covers_s(int(_now().timestamp() * 1e6)),
                "seconds": {k: round(v, 3) for k, v in s.seconds.items()},
            }
        book = self.book
        body["ledgers"] = {
            "owned": sorted(book.owned),
            "seeded": sorted(book.states),
            "seed_failures": book.seed_failures,
        }
        dispatcher = self.runtime.dispatcher
        if dispatcher is not None:
            body["alerting"] = {
                "alert_partitions": dispatcher.owned_partitions,
                "pending_jobs": dispatcher.pending_jobs,
                "dead_letters": len(dispatcher.dead_letters),
                "shared_log_write_failures": dispatcher.ledger.share_failures,
                "shared_log_read_failures": dispatcher.shared_read_failures,
            }
        body["sinks"] = {
            s.name: {
                "rows_written": s.stats.rows_written,
                "consecutive_failures": s.stats.consecutive_failures,
                "last_error": s.stats.last_error,
            }
            for s in self.runtime.sinks
        }
        return body


async def _alert_tick(pipeline: Pipeline) -> None:
    if pipeline.runtime.ready.is_set():
        await pipeline.runtime.tick(_now())


async def _check_health(pipeline: Pipeline) -> None:
    if pipeline.runtime.ready.is_set():
        await pipeline.runtime.check_health(_now())
