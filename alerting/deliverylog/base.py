"""Storage contract of the delivery log.

Entries are JSON objects with a type tag ``t``:

- ``{"t": "accepted", "at": ISO, "alert": {...Alert.to_dict()}}`` — an alert (one per
  alert_id and status) was taken in; on restart, accepted alerts not yet settled are
  re-queued, so an alert consumed just before a crash is still delivered.
- ``{"t": "sent", "at": ISO, "receiver": NAME, "keys": ["alert_id:status:seq", ...],
  "nid": NOTIFICATION_ID}`` — a notification was delivered; these keys are never sent again
  to that receiver.
- ``{"t": "dead", "at": ISO, "receiver": NAME, "notification": {...}}`` — a notification
  exhausted its retries; kept and retried at the slow cadence until its keys are sent.
"""

from __future__ import annotations

from typing import Any, Protocol

LogEntry = dict[str, Any]


class DeliveryLog(Protocol):
    """Append-only entry storage."""

    def read(self) -> list[LogEntry]:
        """Every entry written so far, oldest first (a torn last line is skipped)."""
        ...

    def append(self, entry: LogEntry) -> None:
        """Store one entry; durable (fsync'd for the file log) when it returns."""
        ...

    def rewrite(self, entries: list[LogEntry]) -> None:
        """Atomically replace all entries (compaction)."""
        ...

    def close(self) -> None: ...
