"""Rows handed to the dispatcher's ``recorder`` (the worker writes them to ClickHouse).

``AlertRecord`` -> ``alerts`` table, once per (alert_id, status) first accepted;
``DeliveryRecord`` -> ``alert_deliveries`` table, one row per alert per delivery attempt
and per policy decision (silenced, inhibited, dropped). ``to_row()`` gives column -> value
with timezone-aware datetimes, maps as ``dict[str, str]`` and tuples as lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from schemas.alerts import Alert

Outcome = Literal[
    "sent",  # the destination accepted it
    "retry",  # transient failure; next_attempt_at says when
    "dead_letter",  # retries exhausted or permanent failure; kept, retried slowly
    "silenced",  # matched an active silence (silence ids in error)
    "inhibited",  # muted by a firing higher alert (its alert id in error)
    "dropped",  # resolved before any firing notice reached this receiver
]


@dataclass(frozen=True, slots=True)
class AlertRecord:
    alert_id: str
    status: str
    kind: str
    severity: str
    title: str
    summary: str
    fired_at: datetime
    received_at: datetime
    labels: dict[str, str]
    figures: dict[str, str]
    contributors_json: str
    receivers: tuple[str, ...]
    silenced_by: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        alert: Alert,
        received_at: datetime,
        receivers: tuple[str, ...],
        silenced_by: tuple[str, ...] = (),
    ) -> AlertRecord:
        contributors = orjson.dumps(alert.contributors).decode()  # orjson encodes dataclasses
        return cls(
            alert_id=alert.alert_id,
            status=alert.status,
            kind=alert.kind,
            severity=alert.severity,
            title=alert.title,
            summary=alert.summary,
            fired_at=alert.fired_at,
            received_at=received_at,
            labels=dict(alert.labels),
            figures=dict(alert.figures),
            contributors_json=contributors,
            receivers=receivers,
            silenced_by=silenced_by,
        )

    def to_row(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "status": self.status,
            "kind": self.kind,
            "severity": self.severity,
            "title": self.title,
            "summary": self.summary,
            "fired_at": self.fired_at,
            "received_at": self.received_at,
            "labels": dict(self.labels),
            "figures": dict(self.figures),
            "contributors": self.contributors_json,
            "receivers": list(self.receivers),
            "silenced_by": list(self.silenced_by),
        }


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    notification_id: str
    receiver: str
    receiver_type: str
    alert_id: str
    alert_status: str
    seq: int
    attempt: int
    outcome: Outcome
    attempted_at: datetime
    group_key: str = ""
    error: str = ""
    next_attempt_at: datetime | None = None

    def to_row(self) -> dict[str, Any]:
        return {
            "notification_id": self.notification_id,
            "receiver": self.receiver,
            "receiver_type": self.receiver_type,
            "alert_id": self.alert_id,
            "alert_status": self.alert_status,
            "seq": self.seq,
            "attempt": self.attempt,
            "outcome": self.outcome,
            "attempted_at": self.attempted_at,
            "group_key": self.group_key,
            "error": self.error,
            "next_attempt_at": self.next_attempt_at,
        }


Record = AlertRecord | DeliveryRecord
