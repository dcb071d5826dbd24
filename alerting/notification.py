"""What a notifier is given: one message for one receiver.

A ``Notification`` carries the alerts of one group (usually one alert) that are due for this
receiver, or a daily digest. It is a frozen value: the dispatcher may hand the same
notification to ``send`` again after a transient failure, and notifiers must render it the
same way every time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from alerting.digest import DigestSummary
from alerting.report import ReportMessage
from schemas.alerts import SEVERITY_RANK, Alert, Severity
from schemas.events import parse_ts

_NAMESPACE: Final = uuid.UUID("5b3e2a51-8f0c-4d5e-a2c7-64e1b0f9d3a8")

NotificationKind = Literal["alerts", "digest", "report"]


def delivery_key(alert: Alert, seq: int = 0) -> str:
    """``alert_id:status:seq`` — the unit the delivery log de-duplicates per receiver.

    ``seq`` is 0 for the first notice of a status and n for the n-th repeat of a still
    firing alert.
    """
    return f"{alert.alert_id}:{alert.status}:{seq}"


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one receiver.

    ``alerts`` are the alerts this message announces (firing or resolved; never empty for
    ``kind='alerts'``); ``seqs`` gives, per alert (same order), 0 for a first notice or n for
    the n-th reminder of an alert still firing. ``digest`` is set for ``kind='digest'``,
    ``report`` for ``kind='report'`` (a weekly or monthly report).
    """

    receiver: str
    group_key: str
    created_at: datetime
    alerts: tuple[Alert, ...] = ()
    seqs: tuple[int, ...] = ()
    kind: NotificationKind = "alerts"
    digest: DigestSummary | None = None
    notification_id: str = field(default="")
    report: ReportMessage | None = None

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise ValueError("Notification.created_at must be timezone-aware")
        if not self.seqs and self.alerts:
            object.__setattr__(self, "seqs", tuple(0 for _ in self.alerts))
        if len(self.seqs) != len(self.alerts):
            raise ValueError("Notification.seqs must have one entry per alert")
        if self.kind == "alerts" and not self.alerts:
            raise ValueError("an alerts notification needs at least one alert")
        if self.kind == "digest" and self.digest is None:
            raise ValueError("a digest notification needs its digest")
        if self.kind == "report" and self.report is None:
            raise ValueError("a report notification needs its report")
        if not self.notification_id:
            parts = [self.receiver, self.kind, self.group_key, *self.delivery_keys]
            if self.digest is not None:
                parts.append(self.digest.day.isoformat())
            if self.report is not None:
                parts.append(self.report.key)
            nid = str(uuid.uuid5(_NAMESPACE, "|".join(parts)))
            object.__setattr__(self, "notification_id", nid)

    @property
    def delivery_keys(self) -> tuple[str, ...]:
        return tuple(delivery_key(a, s) for a, s in zip(self.alerts, self.seqs, strict=True))

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == "firing")

    @property
    def resolved(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == "resolved")

    @property
    def status(self) -> Literal["firing", "resolved"]:
        """``firing`` when any alert in it still fires, else ``resolved``."""
        return "firing" if self.firing else "resolved"

    @property
    def severity(self) -> Severity:
        """The highest severity among the alerts (``info`` for a digest)."""
        if not self.alerts:
            return "info"
        pool = self.firing or self.alerts
        return max(pool, key=lambda a: SEVERITY_RANK[a.severity]).severity

    def is_reminder(self, index: int) -> bool:
        return self.seqs[index] > 0


def notification_to_dict(message: Notification) -> dict[str, Any]:
    """JSON-ready form of an ``alerts`` notification (dead letters are persisted so)."""
    if message.kind != "alerts":
        raise ValueError("only alerts notifications are serialised")
    return {
        "notification_id": message.notification_id,
        "receiver": message.receiver,
        "group_key": message.group_key,
        "created_at": message.created_at.isoformat(),
        "alerts": [a.to_dict() for a in message.alerts],
        "seqs": list(message.seqs),
    }


def notification_from_dict(data: dict[str, Any]) -> Notification:
    return Notification(
        receiver=data["receiver"],
        group_key=data["group_key"],
        created_at=parse_ts(data["created_at"]),
        alerts=tuple(Alert.from_dict(a) for a in data["alerts"]),
        seqs=tuple(int(s) for s in data["seqs"]),
        notification_id=data.get("notification_id", ""),
    )
