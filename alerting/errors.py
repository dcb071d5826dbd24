"""Delivery errors, sorted by whether a retry can help.

A notifier raises exactly one of these from ``send``; the dispatcher owns the retry policy
(backoff, ``Retry-After``, dead letters), so notifiers never retry on their own.
"""

from __future__ import annotations


class DeliveryError(Exception):
    """Base of every delivery failure. ``receiver`` names the configured receiver."""

    def __init__(self, receiver: str, message: str) -> None:
        self.receiver = receiver
        self.message = message
        super().__init__(f"{receiver}: {message}")


class TransientDeliveryError(DeliveryError):
    """A retry can help: connection refused/reset, timeout, HTTP 5xx, SMTP 4xx, HTTP 429.

    ``retry_after_s`` is the server's own hint (HTTP ``Retry-After``); when set the dispatcher
    waits at least that long before the next attempt to the same destination.
    """

    def __init__(self, receiver: str, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(receiver, message)
        self.retry_after_s = retry_after_s


class PermanentDeliveryError(DeliveryError):
    """Retrying the same message cannot help: HTTP 4xx (not 429), invalid token, unknown
    channel, SMTP 5xx. The dispatcher dead-letters the message at once (kept, retried at the
    slow dead-letter cadence in case an operator fixes the receiver) and raises a
    ``pipeline`` alert to the other receivers."""
