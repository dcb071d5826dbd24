"""The alert policy as one pure state machine: alerts and ``now`` in, notifications out.

``PolicyState`` holds what Alertmanager holds between flushes: the active alerts (latest
state per ``alert_id``), the open groups, and which policy decisions were already recorded.
It routes an alert to its receivers (``targets``), groups it (``track``), forgets what went
quiet (``expire``), and at a flush (``flush_due``) decides per alert and receiver from what
was sent (a :class:`~alerting.policy.grouping.SentView`) and what is in flight: send (in a
notification), wait, settled, dropped, inhibited or silenced. No I/O and no clock: the
delivery queue (``alerting.queue``) sends what it returns, the dispatcher
(``alerting.delivery``) records and persists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from alerting.config import AlertingSettings
from alerting.notification import Notification
from alerting.policy.grouping import Group, SentView, due_for, group_key
from alerting.policy.inhibition import inhibited_by
from alerting.policy.routing import GroupParams, RouteTarget, route_alert
from alerting.policy.silences import Silence, silenced_by
from alerting.records import Outcome
from schemas.alerts import Alert

UNDELIVERABLE: Final = "undeliverable"


def is_failure_notice(n: Notification) -> bool:
    """A notification that only says other notifications are undeliverable."""
    return bool(n.alerts) and all(
        a.kind == "pipeline" and a.labels.get("reason") == UNDELIVERABLE for a in n.alerts
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """A policy decision that sends nothing, to be recorded once: ``outcome`` is
    ``dropped``, ``inhibited`` or ``silenced``; ``why`` names the cause."""

    alert: Alert
    receiver: str
    group_key: str
    outcome: Outcome
    why: str


class PolicyState:
    """Routing, grouping, inhibition and silences over time, for one dispatcher."""

    def __init__(self, settings: AlertingSettings) -> None:
        self.settings = settings
        self.groups: dict[str, Group] = {}
        self.active: dict[str, Alert] = {}
        self._last_seen: dict[str, datetime] = {}
        self._noted: set[tuple[str, str, str]] = set()

    def targets(self, alert: Alert) -> tuple[RouteTarget, ...]:
        """The receivers of ``alert`` with their grouping parameters. An "undeliverable"
        pipeline alert goes to the failure receivers other than the failing one."""
        s = self.settings
        if alert.kind == "pipeline" and alert.labels.get("reason") == UNDELIVERABLE:
            failing = alert.labels.get("receiver", "")
            chosen = s.failure_receivers
            names = chosen if chosen is not None else s.receiver_names
            params = GroupParams(
                ("receiver",), 0.0, s.defaults.group_interval_s, s.defaults.repeat_interval_s
            )
            return tuple(RouteTarget(r, params, "failure") for r in names if r != failing)
        return route_alert(alert, s.routes, s.escalations, s.default_receivers, s.defaults)

    def track(
        self,
        alert: Alert,
        now: datetime,
        targets: Iterable[RouteTarget],
        *,
        resolved_before: bool = False,
    ) -> None:
        """Keep ``alert`` as the latest state of its id and add it to its groups.
        ``resolved_before``: its resolution was already accepted, so a firing copy is a
        stale replay and is ignored."""
        aid = alert.alert_id
        if alert.status == "firing" and resolved_before:
            return
        current = self.active.get(aid)
        if current is not None and current.status == "resolved" and alert.status == "firing":
            return
        self.active[aid] = alert
        self._last_seen[aid] = now
        for t in targets:
            key = group_key(t.receiver, t.params, alert)
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = Group.start(key, t.receiver, t.params, now)
            group.add(alert)

    def expire(self, now: datetime) -> None:
        """Forget alerts not seen for ``active_ttl_s``."""
        horizon = now - timedelta(seconds=self.settings.active_ttl_s)
        self.forget([aid for aid, seen in self._last_seen.items() if seen < horizon])

    def forget(self, alert_ids: Iterable[str]) -> None:
        """Drop these alerts from the active set and every group (empty groups close)."""
        gone = set(alert_ids)
        if not gone:
            return
        for aid in gone:
            self.active.pop(aid, None)
            self._last_seen.pop(aid, None)
        self._noted = {m for m in self._noted if m[1].split(":", 1)[0] not in gone}
        for group in self.groups.values():
            group.remove(gone)
        for key in [k for k, g in self.groups.items() if not g.alerts]:
            del self.groups[key]

    def forget_where(self, predicate: Callable[[Alert], bool]) -> None:
        self.forget([aid for aid, alert in self.active.items() if predicate(alert)])

    def inhibition_sources(self) -> list[Alert]:
        """Firing alerts that match some rule's source side."""
        rules = self.settings.inhibit_rules
        return [
            a
            for a in self.active.values()
            if a.status == "firing" and any(r.source.matches(a) for r in rules)
        ]

    def flush_due(
        self,
        now: datetime,
        silences: tuple[Silence, ...],
        sent: SentView,
        in_flight: Mapping[str, set[str]],
    ) -> tuple[list[Notification], list[Decision]]:
        """Flush every group that is due at ``now``: the notifications to queue (at most one
        per group) and the decisions to record (each at most once per receiver, alert
        status and outcome)."""
        due = [g for g in self.groups.values() if g.is_due(now)]
        if not due:
            return [], []
        sources = self.inhibition_sources()
        notifications: list[Notification] = []
        decisions: list[Decision] = []
        # What this flush queues counts as in flight for the groups flushed after it.
        busy = {receiver: set(keys) for receiver, keys in in_flight.items()}
        for group in due:
            n = self._flush(group, now, silences, sources, sent, busy, decisions)
            if n is not None:
                notifications.append(n)
                busy.setdefault(n.receiver, set()).update(n.delivery_keys)
        return notifications, decisions

    def _flush(
        self,
        group: Group,
        now: datetime,
        silences: tuple[Silence, ...],
        sources: list[Alert],
        sent: SentView,
        in_flight: Mapping[str, set[str]],
        decisions: list[Decision],
    ) -> Notification | None:
        receiver = group.receiver
        busy = in_flight.get(receiver, set())
        rules = self.settings.inhibit_rules
        chosen: list[tuple[Alert, int]] = []
        settled: list[str] = []

        def note(alert: Alert, outcome: Outcome, why: str) -> None:
            mark = (receiver, f"{alert.alert_id}:{alert.status}", outcome)
            if mark not in self._noted:
                self._noted.add(mark)
                decisions.append(Decision(alert, receiver, group.key, outcome, why))

        for alert in list(group.alerts.values()):
            due = due_for(alert, receiver, now, group.params.repeat_interval_s, sent, busy)
            if due.decision in ("done", "drop"):
                settled.append(alert.alert_id)
                if due.decision == "drop":
                    note(alert, "dropped", "resolved before notified")
                continue
            if due.decision == "wait":
                continue
            source = inhibited_by(alert, sources, rules)
            if source is not None:
                note(alert, "inhibited", source.alert_id)
                continue
            muted = silenced_by(alert, silences, now)
            if muted:
                note(alert, "silenced", ",".join(muted))
                continue
            chosen.append((alert, due.seq))
        group.remove(settled)
        n = None
        if chosen:
            n = Notification(
                receiver=receiver,
                group_key=group.key,
                created_at=now,
                alerts=tuple(a for a, _ in chosen),
                seqs=tuple(s for _, s in chosen),
            )
        group.flushed(now)
        if not group.alerts:
            del self.groups[group.key]
        return n
