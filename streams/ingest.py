"""What the hot path publishes besides rows and deltas: dead letters and unpriced alerts.

Pure functions of their inputs; nothing here touches the network or the clock.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Protocol

import orjson

from schemas.alerts import Alert, alert_id_for


class LetterLike(Protocol):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    reason_code: str
    reason: str
    original: bytes


def dead_letter_message(letter: LetterLike, received_at: datetime) -> bytes:
    """The ``spendwatch.deadletter.v1`` message of a refused record: the reason and the
    original bytes (base64), so nothing is dropped silently."""
    return orjson.dumps(
        {
            "schema_version": 1,
            "reason_code": letter.reason_code,
            "reason": letter.reason,
            "original_b64": base64.b64encode(letter.original).decode(),
            "topic": letter.topic,
            "partition": letter.partition,
            "offset": letter.offset,
            "key": letter.key.decode("utf-8", "replace") if letter.key is not None else None,
            "received_at": received_at.isoformat(),
        }
    )


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
