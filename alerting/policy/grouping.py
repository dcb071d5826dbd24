"""Grouping and what a group flush sends (Alertmanager timing, explicit ``now``).

A group is (receiver, values of the ``group_by`` labels). Its first notification waits
``group_wait_s`` after the first alert, so alerts arriving together go out together; later
flushes happen every ``group_interval_s`` and send only what changed (new alerts, resolved
ones) plus reminders for alerts still firing once ``repeat_interval_s`` has passed since
they were last sent to this receiver.

``select_due`` decides, per alert, from what the delivery ledger says was already sent.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

from alerting.policy.matchers import alert_value
from alerting.policy.routing import GroupParams
from schemas.alerts import Alert


def group_key(receiver: str, params: GroupParams, alert: Alert) -> str:
    """``receiver{budget="fleet-daily",kind="threshold"}`` (missing labels count as "")."""
    inner = ",".join(f'{k}="{alert_value(alert, k)}"' for k in params.group_by)
    return f"{receiver}{{{inner}}}"


class SentView(Protocol):
    """What ``select_due`` needs from the delivery ledger."""

    def sent_at(self, receiver: str, alert_id: str, status: str, seq: int) -> datetime | None:
        """When that notice was delivered to that receiver, or None."""
        ...

    def last_seq(self, receiver: str, alert_id: str, status: str) -> int | None:
        """Highest seq delivered for (receiver, alert_id, status), or None."""
        ...


Decision = Literal["send", "wait", "done", "drop"]


@dataclass(frozen=True, slots=True)
class Due:
    """``send``: notify now with ``seq``; ``wait``: nothing yet; ``done``: settled (resolved
    notice sent, or superseded); ``drop``: resolved before any firing notice reached this
    receiver, so there is nothing to resolve."""

    decision: Decision
    seq: int = 0


def due_for(
    alert: Alert,
    receiver: str,
    now: datetime,
    repeat_interval_s: float,
    sent: SentView,
    in_flight: Collection[str],
) -> Due:
    """What to do with ``alert`` (its latest state) for ``receiver`` at a flush at ``now``.

    ``in_flight`` holds the ``alert_id:status:seq`` keys already queued or retrying for this
    receiver: those are never queued twice.
    """
    aid = alert.alert_id
    if sent.sent_at(receiver, aid, "resolved", 0) is not None:
        return Due("done")
    firing_last = sent.last_seq(receiver, aid, "firing")
    # The only firing notice that can be on its way is the next one after the last sent.
    next_seq = 0 if firing_last is None else firing_last + 1
    firing_busy = f"{aid}:firing:{next_seq}" in in_flight
    if alert.status == "resolved":
        if f"{aid}:resolved:0" in in_flight or firing_busy:
            return Due("wait")
        return Due("send") if firing_last is not None else Due("drop")
    if firing_busy:
        return Due("wait")
    if firing_last is None:
        return Due("send", 0)
    last_at = sent.sent_at(receiver, aid, "firing", firing_last)
    if last_at is not None and now - last_at >= timedelta(seconds=repeat_interval_s):
        return Due("send", firing_last + 1)
    return Due("wait")


@dataclass
class Group:
    """Alerts batched for one receiver. Mutable state, driven with explicit times."""

    key: str
    receiver: str
    params: GroupParams
    created_at: datetime
    next_flush_at: datetime
    alerts: dict[str, Alert] = field(default_factory=dict)
    flushed_once: bool = False

    @classmethod
    def start(cls, key: str, receiver: str, params: GroupParams, now: datetime) -> Group:
        wait = timedelta(seconds=params.group_wait_s)
        return cls(key, receiver, params, created_at=now, next_flush_at=now + wait)

    def add(self, alert: Alert) -> None:
        """Keep the alert's latest state. A firing copy never replaces a resolved one (a
        replay of the firing event after its resolution is stale)."""
        current = self.alerts.get(alert.alert_id)
        if current is not None and current.status == "resolved" and alert.status == "firing":
            return
        self.alerts[alert.alert_id] = alert

    def is_due(self, now: datetime) -> bool:
        return now >= self.next_flush_at

    def flushed(self, now: datetime) -> None:
        """Schedule the next look at this group one ``group_interval_s`` later."""
        self.flushed_once = True
        self.next_flush_at = now + timedelta(seconds=self.params.group_interval_s)

    def remove(self, alert_ids: Iterable[str]) -> None:
        for aid in alert_ids:
            self.alerts.pop(aid, None)
