"""The alert dispatcher: policy in, notifications out, exactly once per receiver.

Three parts: the pure policy (``alerting.policy.engine.PolicyState``: alerts and ``now`` ->
notifications and decisions), the delivery queue (``alerting.queue.DeliveryQueue``: jobs,
pacing, sends), and this module, which joins them to the delivery ledger (what was accepted
and sent, durable) and the recorder, and owns the retry / dead-letter / failure-alert rules.

The worker's alerts agent drives it::

    dispatcher = AlertDispatcher(settings, notifiers, log, silences, recorder)
    await dispatcher.submit(alert, now)   # per alert consumed from spendwatch.alerts.v1
    await dispatcher.tick(now)            # about every second
    await dispatcher.send_digest(summary, now)   # once a day
    await dispatcher.send_report(report, receivers, now)   # weekly / monthly
    await dispatcher.close()

Guarantees:

- **Once per (receiver, alert_id, status).** Before anything is queued the ledger is asked
  what the receiver already got; after the destination accepts a notification the
  delivery log is fsync'd before the dispatcher moves on. A replayed alert, a restart, or a
  second route to the same receiver sends nothing twice. (Reminders for alerts still firing
  are the deliberate exception: the n-th reminder is key ``alert_id:firing:n``, itself sent
  once.) A crash between the destination accepting and the log write can repeat that one
  notification: at-least-once at that single point, as with any external side effect.
- **Nothing lost on restart.** ``submit`` logs each new (alert_id, status) durably before
  returning, so the Kafka offset may be committed right after; on start the dispatcher
  re-queues accepted alerts that are not settled and dead letters that are not delivered.
- **Several workers as one.** With a ``shared`` log (the group's delivery-log topic) each
  entry also goes to the shared partition of its alert, and the dispatcher works only for
  the alert partitions given to :meth:`assign`: it reads a gained partition of the shared log
  before re-queueing its unsettled alerts, and drops its work for a lost one. A new owner
  (rebalance, lost state dir) so neither repeats nor loses a notification; a digest or report
  is checked against the shared log before it is queued (the leader may change on its day).
- **Retries.** Transient failures (connection, timeout, 5xx, 429) retry with exponential
  backoff; a 429's ``Retry-After`` delays that destination at least that long. Slack (any
  notifier with ``pace_key``/``min_interval_s``) gets at most one message per interval.
- **Dead letters.** After ``retry.max_attempts`` (or a permanent failure) the notification is
  kept as a dead letter (persisted), retried every ``retry.dead_letter_retry_s``, and a
  ``pipeline`` alert goes to the *other* receivers; when the dead letter finally gets through,
  that pipeline alert is resolved.
- **Every decision is recorded.** ``recorder`` gets an ``AlertRecord`` for each newly accepted
  (alert_id, status) and a ``DeliveryRecord`` per alert per attempt, silence, inhibition and
  drop. A failing recorder is logged and counted (``recorder_errors``), never fatal.

``submit`` and ``tick`` take ``now`` explicitly (timezone-aware). ``tick`` returns when the
due sends finished (each bounded by its notifier's timeout and ``send_timeout_s``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta

from alerting.config import AlertingSettings
from alerting.deliverylog import DeliveryLog, FileDeliveryLog, Ledger, SharedLog
from alerting.digest import DigestSummary
from alerting.notification import Notification
from alerting.notifiers.base import Notifier, close_notifier
from alerting.policy.engine import UNDELIVERABLE, Decision, PolicyState, is_failure_notice
from alerting.policy.routing import RouteTarget
from alerting.policy.silences import silenced_by
from alerting.queue import Attempt, DeliveryQueue, Job
from alerting.records import AlertRecord, DeliveryRecord, Outcome, Record
from alerting.report import ReportMessage
from alerting.silence_store import FileSilenceStore, MemorySilenceStore, SilenceStore
from alerting.state import DELIVERY_LOG_FILE, SILENCES_FILE
from alerting.state import state_dir as resolve_state_dir
from schemas.alerts import Alert, alert_id_for

log = logging.getLogger(__name__)

Recorder = Callable[[Record], Awaitable[object]]
__all__ = ["UNDELIVERABLE", "AlertDispatcher", "Recorder"]


class AlertDispatcher:
    """Routes, groups, mutes and delivers alerts; see the module docstring for guarantees.

    ``notifiers`` maps receiver name -> notifier and must cover every configured receiver
    (``ValueError`` otherwise). ``silences`` defaults to an empty in-memory store.
    ``retention_s`` is how long the delivery log remembers deliveries (the replay horizon).

    ``shared``: the group's shared delivery log (``alerting.deliverylog.shared``). With it
    the dispatcher owns no alert partition until :meth:`assign`: what was accepted and not
    settled is re-queued by the owner of its partition, which reads that partition of the
    shared log first, so N workers deliver what one would, once.
    """

    def __init__(
        self,
        settings: AlertingSettings,
        notifiers: Mapping[str, Notifier],
        log: DeliveryLog,
        silences: SilenceStore | None = None,
        recorder: Recorder | None = None,
        *,
        retention_s: float = 35 * 86400.0,
        send_timeout_s: float = 60.0,
        shared: SharedLog | None = None,
    ) -> None:
        missing = [r for r in settings.receiver_names if r not in notifiers]
        if missing:
            raise ValueError(f"no notifier for receivers {missing}")
        self.settings = settings
        self.notifiers = dict(notifiers)
        self.ledger = Ledger(log, shared)
        # Alert partitions this dispatcher re-queues and keeps work for; None: all of them.
        self._owned: set[int] | None = None if shared is None else set()
        self.silences: SilenceStore = silences if silences is not None else MemorySilenceStore()
        self.recorder = recorder
        self.retention_s = retention_s
        self.send_timeout_s = send_timeout_s
        self.recorder_errors = 0
        self.shared_read_failures = 0
        self._types = {r.name: r.type for r in settings.receivers}
        self._started = False
        self._closed = False
        self._lock = asyncio.Lock()
        self._tick_lock = asyncio.Lock()
        self.policy = PolicyState(settings)
        self.queue = DeliveryQueue(self.notifiers, self._lock, send_timeout_s)

    @classmethod
    def from_settings(
        cls,
        settings: AlertingSettings,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        recorder: Recorder | None = None,
        notifiers: Mapping[str, Notifier] | None = None,
        shared: SharedLog | None = None,
    ) -> AlertDispatcher:
        """The production wiring: notifiers built from the settings (unless given), the
        fsync'd ``<state_dir>/alert-delivery-log.jsonl`` and ``<state_dir>/silences.json``
        (``state_dir``: argument, else ``SPENDWATCH_STATE_DIR``, else ``./.spendwatch``)."""
        from alerting.notifiers.factory import build_notifiers

        root = resolve_state_dir(state_dir)
        return cls(
            settings,
            notifiers if notifiers is not None else build_notifiers(settings),
            FileDeliveryLog(root / DELIVERY_LOG_FILE),
            FileSilenceStore(root / SILENCES_FILE),
            recorder,
            shared=shared,
        )

    # ------------------------------------------------------------------ public

    async def submit(self, alert: Alert, now: datetime) -> None:
        """Take in one alert (firing or resolved). Durable when it returns: the alert is in
        the delivery log, so the caller may commit its Kafka offset. Sends happen in
        ``tick``. A replay of an already accepted (alert_id, status) is recognised and adds
        nothing; a firing copy arriving after its resolution is ignored as stale."""
        self._check_now(now)
        async with self._lock:
            await self._ensure_started(now)
            targets = self.policy.targets(alert)
            new = await self.ledger.accept(alert, now)
            if new:
                muted = silenced_by(alert, self.silences.current(), now)
                receivers = tuple(t.receiver for t in targets)
                await self._record(AlertRecord.of(alert, now, receivers, muted))
            self._track(alert, now, targets)

    async def tick(self, now: datetime) -> None:
        """Flush due groups (new alerts, resolutions, reminders), then send what is due:
        first attempts, retries, paced messages and slow dead-letter retries."""
        self._check_now(now)
        async with self._tick_lock:
            async with self._lock:
                await self._ensure_started(now)
                self.policy.expire(now)
                notifications, decisions = self.policy.flush_due(
                    now, self.silences.current(), self.ledger, self.queue.in_flight
                )
                for decision in decisions:
                    await self._note(decision, now)
                for n in notifications:
                    self.queue.add(n, now)
            await self.queue.run(now, self._book)

    async def send_digest(self, summary: DigestSummary, now: datetime) -> None:
        """Queue the daily digest for every digest receiver (once per receiver and day,
        across restarts) and send it now."""
        self._check_now(now)
        async with self._tick_lock:
            async with self._lock:
                await self._ensure_started(now)
                for receiver in self.settings.digest_receivers:
                    n = Notification(
                        receiver=receiver,
                        group_key=f"digest:{summary.day.isoformat()}",
                        created_at=now,
                        kind="digest",
                        digest=summary,
                    )
                    await self._queue_once(n, now)
            await self.queue.run(now, self._book)

    async def send_report(
        self, report: ReportMessage, receivers: Iterable[str] | None, now: datetime
    ) -> None:
        """Queue a periodic report for ``receivers`` (default: the digest receivers), once
        per receiver and ``report.key`` across restarts, and send it now."""
        self._check_now(now)
        names = tuple(receivers) if receivers is not None else self.settings.digest_receivers
        disabled = {d.name for d in self.settings.disabled}
        names = tuple(r for r in names if r not in disabled)  # a secret is missing: skipped
        unknown = [r for r in names if r not in self.notifiers]
        if unknown:
            raise ValueError(f"no notifier for report receivers {unknown}")
        async with self._tick_lock:
            async with self._lock:
                await self._ensure_started(now)
                for receiver in names:
                    n = Notification(
                        receiver=receiver,
                        group_key=f"report:{report.key}",
                        created_at=now,
                        kind="report",
                        report=report,
                    )
                    await self._queue_once(n, now)
            await self.queue.run(now, self._book)

    async def _queue_once(self, n: Notification, now: datetime) -> None:
        """Queue a digest or report unless it is queued or was sent, by this worker or (from
        the shared log, read now) another: the leader that sends it may change on its day."""
        if self.queue.queued(n.notification_id):
            return
        partition = self.ledger.partition_of_key(n.group_key)
        if partition is not None and not self.ledger.all_sent(n):
            try:
                await self.ledger.merge({partition})
            except Exception as exc:
                self.shared_read_failures += 1
                log.error("cannot read the shared delivery log for %s: %s", n.group_key, exc)
        if not self.ledger.all_sent(n):
            self.queue.add(n, now)

    async def assign(self, partitions: Iterable[int], now: datetime) -> None:
        """Own exactly ``partitions`` of the alerts topic (called at every rebalance).

        Partitions no longer owned are released (their groups and queued jobs dropped: the
        new owner re-queues them). For each gained partition the shared log is read first,
        then its accepted alerts that are not settled and its dead letters are re-queued.
        Without a shared log this does nothing (one worker owns everything)."""
        self._check_now(now)
        wanted = set(partitions)
        async with self._lock:
            await self._ensure_started(now)
            if self._owned is None:
                return
            self._release(self._owned - wanted)
            gained = wanted - self._owned
            if gained:
                try:
                    read = await self.ledger.merge(gained)
                except Exception as exc:  # broker away: better a repeat than a lost page
                    self.shared_read_failures += 1
                    log.error(
                        "cannot read the shared delivery log of partitions %s (%s): "
                        "working from this worker's own log",
                        sorted(gained),
                        exc,
                    )
                    read = 0
                self._owned |= gained
                self._restore(now, gained)
                log.info("alert partitions %s gained (%d shared log entries)", sorted(gained), read)

    async def release(self, partitions: Iterable[int]) -> None:
        """Stop working for ``partitions`` (revoked at a rebalance): see :meth:`assign`."""
        async with self._lock:
            if self._owned is not None:
                self._release(set(partitions) & self._owned)

    async def close(self) -> None:
        """Close notifiers and the log. Queued work is not lost: accepted alerts and dead
        letters are re-queued from the delivery log by the next dispatcher."""
        if self._closed:
            return
        self._closed = True
        async with self._tick_lock, self._lock:
            for notifier in self.notifiers.values():
                try:
                    await close_notifier(notifier)
                except Exception:  # closing must reach every notifier
                    log.exception("closing notifier %s failed", notifier.name)
            self.ledger.log.close()
            if self.ledger.shared is not None:
                try:
                    await self.ledger.shared.close()
                except Exception:
                    log.exception("closing the shared delivery log failed")

    # ------------------------------------------------------------- inspection

    @property
    def dead_letters(self) -> tuple[Notification, ...]:
        """Notifications that exhausted their retries and are not delivered yet."""
        return tuple(d.notification for d in self.ledger.dead.values())

    @property
    def owned_partitions(self) -> list[int] | None:
        """The alert partitions this dispatcher works for (None: all, no shared log)."""
        return None if self._owned is None else sorted(self._owned)

    @property
    def pending_jobs(self) -> int:
        return len(self.queue.jobs)

    @property
    def open_groups(self) -> tuple[str, ...]:
        return tuple(self.policy.groups)

    # ---------------------------------------------------------------- internals

    def _check_now(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if self._closed:
            raise RuntimeError("dispatcher is closed")

    async def _ensure_started(self, now: datetime) -> None:
        if self._started:
            return
        if self._closed:
            raise RuntimeError("dispatcher is closed")
        self._started = True
        self.ledger.load()
        self.ledger.compact(now, self.retention_s)
        if self._owned is None:
            self._restore(now, None)

    def _mine(self, alert: Alert, partitions: set[int] | None) -> bool:
        p = self.ledger.partition_of_alert(alert)
        return partitions is None or p is None or p in partitions

    def _released(self, alert: Alert, partitions: set[int]) -> bool:
        return self.ledger.partition_of_alert(alert) in partitions

    def _restore(self, now: datetime, partitions: set[int] | None) -> None:
        """Re-queue the dead letters and track the recent accepted alerts of ``partitions``
        (None: all) from the ledger."""
        for dead in self.ledger.dead.values():
            n = dead.notification
            if self.queue.queued(n.notification_id) or not self._mine(n.alerts[0], partitions):
                continue
            if n.receiver not in self.notifiers:
                log.error(
                    "dead letter %s for unknown receiver %s kept", n.notification_id, n.receiver
                )
                continue
            # Retried promptly after a restart: the operator may just have fixed the receiver.
            self.queue.add(n, now, dead=True)
        horizon = now - timedelta(seconds=self.settings.active_ttl_s)
        latest: dict[str, Alert] = {}
        for (aid, status), acc in sorted(self.ledger.accepted.items(), key=lambda i: i[1].at):
            if acc.at < horizon or not self._mine(acc.alert, partitions):
                continue
            if status == "resolved" or aid not in latest:
                latest[aid] = acc.alert
        for alert in latest.values():
            self._track(alert, now, self.policy.targets(alert))

    def _release(self, partitions: set[int]) -> None:
        """Forget the groups, active alerts and queued jobs of ``partitions``."""
        if not partitions or self._owned is None:
            return
        self._owned -= partitions
        self.policy.forget_where(lambda alert: self._released(alert, partitions))
        self.queue.cancel_where(
            lambda job: (
                job.notification.kind == "alerts"
                and self._released(job.notification.alerts[0], partitions)
            )
        )
        log.info("alert partitions %s released", sorted(partitions))

    def _track(self, alert: Alert, now: datetime, targets: Iterable[RouteTarget]) -> None:
        resolved_before = (alert.alert_id, "resolved") in self.ledger.accepted
        self.policy.track(alert, now, targets, resolved_before=resolved_before)

    async def _note(self, d: Decision, now: datetime) -> None:
        """Record a policy decision that sent nothing (the policy reports each once)."""
        await self._record(
            DeliveryRecord(
                notification_id="",
                receiver=d.receiver,
                receiver_type=self._type(d.receiver),
                alert_id=d.alert.alert_id,
                alert_status=d.alert.status,
                seq=0,
                attempt=0,
                outcome=d.outcome,
                attempted_at=now,
                group_key=d.group_key,
                error=d.why,
            )
        )

    def _type(self, receiver: str) -> str:
        return self._types.get(receiver) or type(self.notifiers[receiver]).__name__

    # ----------------------------------------------------------------- delivery

    async def _book(self, result: Attempt, now: datetime, ready_at: datetime) -> None:
        """Book the outcome of one attempt (called by the queue under the lock);
        ``ready_at`` is when the destination's pace allows the next request."""
        job, n = result.job, result.job.notification
        policy = self.settings.retry
        if result.error is None:
            await self.ledger.mark_sent(n, now)
            self.queue.done(job)
            await self._record_attempt(job, now, "sent")
            if job.dead:
                await self._resolve_failure(n, now)
            return
        error = f"{type(result.error).__name__}: {result.error}"
        job.last_error = error
        if job.dead:
            job.next_attempt_at = now + timedelta(seconds=policy.dead_letter_retry_s)
            await self._record_attempt(job, now, "dead_letter", error)
            return
        if result.transient and not policy.exhausted(job.attempts):
            retry_at = policy.next_attempt_at(now, job.attempts, result.retry_after_s)
            job.next_attempt_at = max(retry_at, ready_at)
            await self._record_attempt(job, now, "retry", error)
            return
        job.dead = True
        job.next_attempt_at = now + timedelta(seconds=policy.dead_letter_retry_s)
        await self.ledger.mark_dead(n, now)
        await self._record_attempt(job, now, "dead_letter", error)
        log.error("dead letter for %s after %d attempts: %s", n.receiver, job.attempts, error)
        if not is_failure_notice(n):
            await self._raise_failure(job, now, error)

    async def _record_attempt(
        self, job: Job, now: datetime, outcome: Outcome, error: str = ""
    ) -> None:
        n = job.notification
        nxt = None if outcome == "sent" else job.next_attempt_at
        rows: list[tuple[str, str, int]] = [
            (a.alert_id, a.status, s) for a, s in zip(n.alerts, n.seqs, strict=True)
        ]
        if n.kind == "digest":
            rows = [(f"digest:{n.group_key.removeprefix('digest:')}", "digest", 0)]
        elif n.kind == "report":
            rows = [(n.group_key, "report", 0)]
        for alert_id, status, seq in rows:
            await self._record(
                DeliveryRecord(
                    notification_id=n.notification_id,
                    receiver=n.receiver,
                    receiver_type=self._type(n.receiver),
                    alert_id=alert_id,
                    alert_status=status,
                    seq=seq,
                    attempt=job.attempts,
                    outcome=outcome,
                    attempted_at=now,
                    group_key=n.group_key,
                    error=error,
                    next_attempt_at=nxt,
                )
            )

    def _failure_alert(self, n: Notification, now: datetime, error: str, attempts: int) -> Alert:
        retry_s = self.settings.retry.dead_letter_retry_s
        what = {"alerts": f"{len(n.alerts)} alert(s)", "digest": "the daily digest"}.get(
            n.kind, "a periodic report"
        )
        return Alert(
            alert_id=alert_id_for("pipeline", UNDELIVERABLE, n.receiver, n.notification_id),
            kind="pipeline",
            severity="critical",
            title=f"alerts undeliverable to {n.receiver}",
            summary=(
                f"{what} could not be delivered to receiver {n.receiver} after {attempts} "
                f"attempt(s): {error}. Kept as a dead letter and retried every {retry_s:g} s."
            ),
            fired_at=now,
            labels={
                "component": "alerting",
                "reason": UNDELIVERABLE,
                "receiver": n.receiver,
                "notification_id": n.notification_id,
            },
            figures={"attempts": str(attempts), "alerts": str(len(n.alerts))},
        )

    async def _raise_failure(self, job: Job, now: datetime, error: str) -> None:
        alert = self._failure_alert(job.notification, now, error, job.attempts)
        targets = self.policy.targets(alert)
        if not targets:
            log.error("no other receiver to tell that %s is undeliverable", job.receiver)
        if await self.ledger.accept(alert, now):
            receivers = tuple(t.receiver for t in targets)
            await self._record(AlertRecord.of(alert, now, receivers))
        self._track(alert, now, targets)

    async def _resolve_failure(self, n: Notification, now: datetime) -> None:
        aid = alert_id_for("pipeline", UNDELIVERABLE, n.receiver, n.notification_id)
        accepted = self.ledger.accepted.get((aid, "firing"))
        if accepted is None:
            return
        a = accepted.alert
        resolved = Alert(
            alert_id=aid,
            kind=a.kind,
            severity=a.severity,
            title=f"alerts delivered to {n.receiver} again",
            summary=f"The dead letter for receiver {n.receiver} was delivered.",
            fired_at=a.fired_at,
            status="resolved",
            labels=dict(a.labels),
            figures=dict(a.figures),
        )
        targets = self.policy.targets(resolved)
        if await self.ledger.accept(resolved, now):
            await self._record(AlertRecord.of(resolved, now, tuple(t.receiver for t in targets)))
        self._track(resolved, now, targets)

    async def _record(self, row: Record) -> None:
        if self.recorder is None:
            return
        try:
            await self.recorder(row)
        except Exception:
            self.recorder_errors += 1
            log.exception("alert recorder failed (%d so far)", self.recorder_errors)
