"""Index over the delivery log: what was accepted, what each receiver got, dead letters.

The dispatcher asks the ledger before queueing anything and tells it after every
success, so each ``alert_id:status:seq`` reaches each receiver once, across restarts and
replays (the log is durable before ``mark_sent`` returns).

With a ``shared`` log (``alerting.deliverylog.shared``) every entry is also written to the
shared log's partition of what it is about (an alert's ``routing_key``; a digest's or
report's group key), and ``merge`` reads partitions of it in: that is how a worker that gains
alert partitions learns what other workers (or its own lost disk) accepted and sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from alerting.deliverylog.base import DeliveryLog, LogEntry
from alerting.deliverylog.shared import SharedLog, partition_for
from alerting.notification import Notification, notification_from_dict, notification_to_dict
from schemas.alerts import Alert
from schemas.events import parse_ts

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Accepted:
    alert: Alert
    at: datetime


@dataclass(frozen=True, slots=True)
class DeadLetter:
    notification: Notification
    at: datetime


class Ledger:
    """In-memory index, rebuilt from ``log.read()`` by ``load()``."""

    def __init__(self, log: DeliveryLog, shared: SharedLog | None = None) -> None:
        self.log = log
        self.shared = shared
        self.accepted: dict[tuple[str, str], Accepted] = {}
        self._sent: dict[tuple[str, str], datetime] = {}  # (receiver, key) -> at
        self._last_seq: dict[tuple[str, str, str], int] = {}
        self.dead: dict[str, DeadLetter] = {}  # notification_id -> dead letter
        self.loaded = False
        self.share_failures = 0
        self._unshared: list[tuple[int, str, LogEntry]] = []

    # -- loading and compaction

    def load(self) -> None:
        """Index every entry in the log. Unknown entry types are ignored (forward compat)."""
        for entry in self.log.read():
            self._apply(entry)
        self.loaded = True

    async def merge(self, partitions: set[int]) -> int:
        """Index the entries of those partitions of the shared log (nothing without one);
        returns how many were read. Entries already known change nothing."""
        if self.shared is None or not partitions:
            return 0
        entries = await self.shared.read(partitions)
        for entry in entries:
            self._apply(entry)
        return len(entries)

    def partition_of_alert(self, alert: Alert) -> int | None:
        """The shared-log (and alerts topic) partition of ``alert``; None without a shared
        log."""
        if self.shared is None:
            return None
        return partition_for(alert.routing_key, self.shared.partitions)

    def partition_of_key(self, key: str) -> int | None:
        if self.shared is None:
            return None
        return partition_for(key.encode(), self.shared.partitions)

    async def _share(self, partition: int | None, key: str, entry: LogEntry) -> None:
        """Append to the shared log. The local log already has the entry; a failing shared
        log (broker away) is logged and counted, and the entry is sent again before the next
        one, so the shared log only lags behind."""
        if self.shared is None or partition is None:
            return
        self._unshared.append((partition, key, entry))
        try:
            while self._unshared:
                p, k, e = self._unshared[0]
                await self.shared.append(p, k.encode(), e)
                self._unshared.pop(0)
        except Exception as exc:
            self.share_failures += 1
            log.warning(
                "shared delivery log unavailable (%d entries waiting): %s",
                len(self._unshared),
                exc,
            )

    def _apply(self, entry: LogEntry) -> None:
        kind = entry.get("t")
        at = parse_ts(entry["at"])
        if kind == "accepted":
            alert = Alert.from_dict(entry["alert"])
            self.accepted[(alert.alert_id, alert.status)] = Accepted(alert, at)
        elif kind == "sent":
            for key in entry["keys"]:
                self._index_sent(entry["receiver"], key, at)
            self.dead.pop(entry.get("nid", ""), None)
        elif kind == "dead":
            n = notification_from_dict(entry["notification"])
            if not self.all_sent(n):
                self.dead[n.notification_id] = DeadLetter(n, at)

    def _index_sent(self, receiver: str, key: str, at: datetime) -> None:
        self._sent[(receiver, key)] = at
        aid, _, rest = key.partition(":")
        status, _, seq = rest.partition(":")
        if seq.isdigit():
            k3 = (receiver, aid, status)
            self._last_seq[k3] = max(self._last_seq.get(k3, -1), int(seq))

    def compact(self, now: datetime, retention_s: float) -> int:
        """Rewrite the log keeping what still matters: sent and accepted entries younger
        than ``retention_s`` (the replay horizon: keep it above the alerts topic's
        retention) and every unsettled dead letter. Returns the number of entries kept."""
        horizon = now - timedelta(seconds=retention_s)
        keep: list[LogEntry] = []
        for entry in self.log.read():
            kind = entry.get("t")
            if kind == "dead":
                nid = entry["notification"].get("notification_id", "")
                if nid in self.dead:
                    keep.append(entry)
            elif parse_ts(entry["at"]) >= horizon:
                keep.append(entry)
        self.log.rewrite(keep)
        return len(keep)

    # -- queries (SentView for policy.grouping)

    def sent_at(self, receiver: str, alert_id: str, status: str, seq: int) -> datetime | None:
        return self._sent.get((receiver, f"{alert_id}:{status}:{seq}"))

    def last_seq(self, receiver: str, alert_id: str, status: str) -> int | None:
        return self._last_seq.get((receiver, alert_id, status))

    def key_sent(self, receiver: str, key: str) -> bool:
        return (receiver, key) in self._sent

    def all_sent(self, n: Notification) -> bool:
        keys = n.delivery_keys or (f"digest:{n.notification_id}",)
        return all(self.key_sent(n.receiver, k) for k in keys)

    def is_accepted(self, alert: Alert) -> bool:
        return (alert.alert_id, alert.status) in self.accepted

    # -- writes (durable before returning)

    async def accept(self, alert: Alert, now: datetime) -> bool:
        """Log a newly seen (alert_id, status); False when it was already accepted."""
        if self.is_accepted(alert):
            return False
        entry = {"t": "accepted", "at": now.isoformat(), "alert": alert.to_dict()}
        self.log.append(entry)
        self.accepted[(alert.alert_id, alert.status)] = Accepted(alert, now)
        key = f"accepted:{alert.alert_id}:{alert.status}"
        await self._share(self.partition_of_alert(alert), key, entry)
        return True

    async def mark_sent(self, n: Notification, now: datetime) -> None:
        keys = list(n.delivery_keys) or [f"digest:{n.notification_id}"]
        entry = {
            "t": "sent",
            "at": now.isoformat(),
            "receiver": n.receiver,
            "keys": keys,
            "nid": n.notification_id,
        }
        self.log.append(entry)
        for key in keys:
            self._index_sent(n.receiver, key, now)
        self.dead.pop(n.notification_id, None)
        # Shared: each partition gets the keys of its own alerts (a group may span several).
        fact = f"sent:{n.receiver}:{n.notification_id}"
        if n.kind != "alerts":
            await self._share(self.partition_of_key(n.group_key), fact, entry)
            return
        by_partition: dict[int | None, list[str]] = {}
        for alert, key in zip(n.alerts, n.delivery_keys, strict=True):
            by_partition.setdefault(self.partition_of_alert(alert), []).append(key)
        for partition, part_keys in by_partition.items():
            await self._share(partition, fact, {**entry, "keys": part_keys})

    async def mark_dead(self, n: Notification, now: datetime) -> None:
        """Persist an alerts notification as a dead letter (a digest stays in memory only:
        tomorrow's digest supersedes it)."""
        if n.kind == "alerts":
            entry = {
                "t": "dead",
                "at": now.isoformat(),
                "receiver": n.receiver,
                "notification": notification_to_dict(n),
            }
            self.log.append(entry)
            fact = f"dead:{n.notification_id}"
            await self._share(self.partition_of_alert(n.alerts[0]), fact, entry)
        self.dead[n.notification_id] = DeadLetter(n, now)
