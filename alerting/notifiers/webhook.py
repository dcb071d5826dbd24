"""Generic webhook notifier: one JSON POST per notification (aiohttp).

Body (``schema_version`` 1)::

    {"schema_version": 1, "receiver": "...", "notification_id": "...", "kind": "alerts",
     "status": "firing", "group_key": "...", "created_at": ISO,
     "alerts": [Alert.to_dict() + {"seq": n}, ...]}            # kind = "alerts"
     "digest": {...}                                          # kind = "digest"
     "report": {"key", "subject", "text", "summary"}          # kind = "report"

2xx is success; 429 / 5xx / 408 and connection errors are transient (``Retry-After``
honoured); any other status is permanent. ``notification_id`` lets the receiving side
de-duplicate a notification re-sent after an ambiguous failure.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import aiohttp
import orjson

from alerting.errors import TransientDeliveryError
from alerting.notification import Notification
from alerting.notifiers.http import error_for_status

SCHEMA_VERSION = 1


def payload(message: Notification) -> dict[str, Any]:
    """The JSON body for ``message`` (pure)."""
    body: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "receiver": message.receiver,
        "notification_id": message.notification_id,
        "kind": message.kind,
        "status": message.status,
        "group_key": message.group_key,
        "created_at": message.created_at.isoformat(),
    }
    if message.kind == "digest" and message.digest is not None:
        body["digest"] = dataclasses.asdict(message.digest)
    elif message.kind == "report" and message.report is not None:
        r = message.report
        body["report"] = {"key": r.key, "subject": r.subject, "text": r.text, "summary": r.summary}
    else:
        body["alerts"] = [
            {**a.to_dict(), "seq": s} for a, s in zip(message.alerts, message.seqs, strict=True)
        ]
    return body


class WebhookNotifier:
    """POSTs ``payload(message)`` to ``url`` with ``headers`` (e.g. an Authorization)."""

    def __init__(
        self,
        name: str,
        *,
        url: str,
        headers: dict[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self._url = url
        self._headers = dict(headers or {})
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"WebhookNotifier(name={self.name!r})"

    async def send(self, message: Notification) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        data = orjson.dumps(payload(message), option=orjson.OPT_NON_STR_KEYS)
        headers = {"Content-Type": "application/json", **self._headers}
        try:
            async with self._session.post(self._url, data=data, headers=headers) as resp:
                text = await resp.text()
                error = error_for_status(self.name, resp.status, text, dict(resp.headers))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise TransientDeliveryError(self.name, f"{type(exc).__name__}: {exc}") from None
        if error is not None:
            raise error

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
