"""HTTP status -> delivery error, shared by the Slack and webhook notifiers."""

from __future__ import annotations

from collections.abc import Mapping

from alerting.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds; None when absent or a date
    (the dispatcher's own backoff applies then)."""
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                seconds = float(value)
            except (TypeError, ValueError):
                return None
            return max(seconds, 0.0)
    return None


def error_for_status(
    receiver: str, status: int, body: str, headers: Mapping[str, str] | None
) -> DeliveryError | None:
    """None for 2xx; transient for 429 / 5xx / 408; permanent for any other status."""
    if 200 <= status < 300:
        return None
    snippet = " ".join(body.split())[:200]
    message = f"HTTP {status}: {snippet}" if snippet else f"HTTP {status}"
    if status == 429:
        return TransientDeliveryError(receiver, message, retry_after_s=retry_after_s(headers))
    if status >= 500 or status == 408:
        return TransientDeliveryError(receiver, message, retry_after_s=retry_after_s(headers))
    return PermanentDeliveryError(receiver, message)
