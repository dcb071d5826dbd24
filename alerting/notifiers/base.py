"""The one contract every notifier implements.

Required: ``name`` (the receiver name from the config) and ``async send(message)``.
Optional, read with defaults by the dispatcher: ``pace_key`` (destination sharing a rate
limit, e.g. one Slack webhook or channel; default: none), ``min_interval_s`` (least time
between two messages to that destination; default 0) and ``async close()``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from alerting.notification import Notification


@runtime_checkable
class Notifier(Protocol):
    """Sends one notification to one destination.

    ``send`` returns when the destination accepted the message. It raises
    ``TransientDeliveryError`` when a retry can help (connection, timeout, 5xx, 429 with
    ``retry_after_s``) and ``PermanentDeliveryError`` when it cannot. It never retries by
    itself: the dispatcher owns retries, pacing and dead letters.
    """

    name: str

    async def send(self, message: Notification) -> None: ...


async def close_notifier(notifier: Notifier) -> None:
    """Call the notifier's optional ``close()``."""
    close = getattr(notifier, "close", None)
    if close is not None:
        await close()


def pace_of(notifier: Notifier) -> tuple[str | None, float]:
    """(pace key, minimum interval in seconds) of a notifier, defaults applied."""
    return getattr(notifier, "pace_key", None), float(getattr(notifier, "min_interval_s", 0.0))
