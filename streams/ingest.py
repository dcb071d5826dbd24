"""Ingest: raw bytes from the usage topic → a priced event, or a dead letter with its reason.

Pure functions of ``(raw, now)``; the agent in ``streams.app`` only moves their results to
topics. Nothing here touches the network or the clock.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.alerts import Alert, alert_id_for
from schemas.events import Rejection, validate_event
from streams.pricing import Pricer


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event the pipeline refused, with the reason and the original bytes (never dropped)."""

    reason_code: str
    reason: str
    original: bytes
    topic: str
    partition: int
    offset: int
    key: bytes | None
    received_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "reason_code": self.reason_code,
            "reason": self.reason,
            "original_b64": base64.b64encode(self.original).decode(),
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key.decode("utf-8", "replace") if self.key is not None else None,
            "received_at": self.received_at.isoformat(),
        }


def price_event(
    raw: bytes, pricer: Pricer, now: datetime
) -> tuple[dict[str, Any] | None, Rejection | None]:
    """Validate and price one raw usage event.

    Returns ``(priced_event_dict, None)`` or ``(None, rejection)``. The priced dict is the
    original event plus ``cost_nusd``, ``avoided_cost_nusd``, ``cost_source``,
    ``unpriced_reason`` and ``ingested_at`` (the ``PricedEvent`` record's fields).
    """
    event, rejection = validate_event(raw)
    if event is None:
        return None, rejection
    result = pricer.price(event)
    event["cost_nusd"] = result.cost_nusd
    event["avoided_cost_nusd"] = result.avoided_cost_nusd
    event["cost_source"] = result.source
    event["unpriced_reason"] = result.unpriced_reason
    event["ingested_at"] = now.isoformat()
    return event, None


def unpriced_alert(event: dict[str, Any], now: datetime) -> Alert:
    """The alert for usage that could not be priced: one per service/provider/model/unit a day.

    Its id is deterministic, so the dispatcher's delivery log keeps it to one notification a
    day however many unpriced events arrive.
    """
    what = event.get("model") or event.get("unit") or "?"
    provider = event.get("provider") or "?"
    day = now.date().isoformat()
    return Alert(
        alert_id=alert_id_for("unpriced", event["service"], provider, what, day),
        kind="unpriced",
        severity="warning",
        title=f"Unpriced usage from {event['service']}: {provider}/{what}",
        summary=(
            f"{event['service']} reported usage of {provider}/{what} that has no price: "
            f"{event.get('unpriced_reason') or 'unknown reason'}. It is stored with cost 0; "
            "add a [[prices]] entry or pass cost_usd."
        ),
        fired_at=now,
        labels={"service": event["service"], "provider": provider, "model": str(what)},
        figures={"day": day},
    )
