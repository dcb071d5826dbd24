"""The alert contract: what every detector emits and every notifier renders.

Alerts travel on ``spendwatch.alerts.v1`` as JSON (``Alert.to_json``) and land in the
ClickHouse ``alerts`` table. An alert id is deterministic (``alert_id_for``), so a restart or
a replay that re-emits an alert produces the same id and the delivery log drops the repeat.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

import orjson

from schemas.events import parse_ts

SCHEMA_VERSION: Final = 1

Severity = Literal["info", "warning", "critical", "emergency"]
SEVERITIES: Final[tuple[Severity, ...]] = ("info", "warning", "critical", "emergency")
SEVERITY_RANK: Final[dict[str, int]] = {s: i for i, s in enumerate(SEVERITIES)}

AlertKind = Literal[
    "threshold",  # budget crossed 50/80/95/100 % (or configured) of its limit
    "forecast",  # burn rate says the budget runs out before the period ends
    "per_request",  # one request cost more than the budget's per-request limit
    "quota",  # request / token quota per minute or day exceeded
    "spike",  # spend / requests / tokens / model-mix anomaly
    "failure",  # error-rate spike, provider outage, traffic drop to zero
    "unpriced",  # usage that could not be priced
    "pipeline",  # spendwatch's own health: sink failures, lag, undeliverable alerts
    "override",  # an operator raised a budget limit
]
AlertStatus = Literal["firing", "resolved"]

_NAMESPACE: Final = uuid.UUID("8a0c3d4e-5f61-4a7b-9c8d-0e1f2a3b4c5d")


def alert_id_for(*parts: object) -> str:
    """Deterministic alert id from its identifying parts, e.g. (kind, budget, period, threshold).

    The same parts always give the same id, across processes and restarts.
    """
    return str(uuid.uuid5(_NAMESPACE, "|".join(str(p) for p in parts)))


@dataclass(frozen=True, slots=True)
class Contributor:
    """One of the top contributors named in an alert: ``dimension`` is service/model/tag:team..."""

    dimension: str
    name: str
    cost_nusd: int = 0
    share: str = ""  # decimal fraction as a string, e.g. "0.62"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert (or its resolution: same ``alert_id``, ``status='resolved'``).

    ``labels`` are what routing, grouping, inhibition and silences match on (service, budget,
    team, provider, model, period ...). ``figures`` are display values as strings (money as
    decimal USD strings, never floats): spent_usd, limit_usd, percent, burn_rate_usd_per_h,
    runout_at, observed, baseline, cost_usd ...
    """

    alert_id: str
    kind: AlertKind
    severity: Severity
    title: str
    summary: str
    fired_at: datetime
    status: AlertStatus = "firing"
    labels: dict[str, str] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)
    contributors: tuple[Contributor, ...] = ()
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.fired_at.tzinfo is None:
            raise ValueError("Alert.fired_at must be timezone-aware")

    @property
    def routing_key(self) -> bytes:
        """The alerts topic key: what must meet in one place. A budget's alerts (50/80/95/100 %,
        forecast, overrides) share the budget, so grouping and inhibition see all of them on one
        worker; a service's detector alerts share the service."""
        key = self.labels.get("budget") or self.labels.get("service") or self.alert_id
        return key.encode()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fired_at"] = self.fired_at.isoformat()
        data["contributors"] = [asdict(c) for c in self.contributors]
        return data

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        return cls(
            alert_id=data["alert_id"],
            kind=data["kind"],
            severity=data["severity"],
            title=data["title"],
            summary=data["summary"],
            fired_at=parse_ts(data["fired_at"]),
            status=data.get("status", "firing"),
            labels=dict(data.get("labels") or {}),
            figures=dict(data.get("figures") or {}),
            contributors=tuple(Contributor(**c) for c in data.get("contributors") or ()),
            schema_version=data.get("schema_version", SCHEMA_VERSION),
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Alert:
        return cls.from_dict(orjson.loads(raw))
