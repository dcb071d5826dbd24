"""Which usage events are already stored: a window of event ids in memory, per partition.

A usage event can reach the worker twice: a retrying SDK, a replay after a crash. ClickHouse's
``usage_events`` collapses a repeated ``event_id`` only at merge time, while its rollups (and
the budget ledgers) count every inserted row, so the hot path must insert each event once.
Asking ClickHouse "already stored?" for every batch costs a third to a half of the insert; this
window answers from memory instead, exactly, for every event it covers.

Invariant (per partition): the window holds the id of every stored event whose stored ``ts``
is at or after ``horizon_us``. It is rebuilt from ClickHouse when the partition is assigned
and extended by every event the hot path stores; its oldest minutes are dropped when it holds
more than ``max_ids`` ids (the horizon moves up) or are older than ``window_s``.

A stored row's ``ts`` is the event's ``ts`` clamped to its ingest time, and a client's clock is
trusted to be at most ``skew_s`` fast. So an event whose own ``ts`` is at least
``horizon + skew_s`` cannot have been stored before the horizon: the window alone decides.
Older events (late arrivals, backlogs older than the window) are *unsure*: the caller asks
ClickHouse for those ids only.

Events of one service share a partition (the usage topic is keyed by service), so a
repeat always lands on the partition of its first copy.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

US_PER_MINUTE: Final = 60_000_000


def id_key(event_id: str) -> int:
    """The 128-bit integer of a (validated) UUID string: the window's key."""
    return int(event_id.replace("-", ""), 16)


@dataclass(slots=True)
class PartitionWindow:
    """The ids of one partition's stored events since ``horizon_us`` (see the module doc)."""

    horizon_us: int
    ids: set[int] = field(default_factory=set)
    # (minute, ids stored in that minute), oldest first; a minute may appear more than once
    minutes: deque[tuple[int, list[int]]] = field(default_factory=deque)

    def add(self, minute: int, keys: list[int]) -> None:
        self.ids.update(keys)
        if self.minutes and self.minutes[-1][0] == minute:
            self.minutes[-1][1].extend(keys)
        else:
            self.minutes.append((minute, list(keys)))

    def drop_before(self, minute: int) -> None:
        """Forget minutes before ``minute``; the horizon moves to its start."""
        kept: deque[tuple[int, list[int]]] = deque()
        for m, keys in self.minutes:
            if m < minute:
                self.ids.difference_update(keys)
            else:
                kept.append((m, keys))
        self.minutes = kept
        self.horizon_us = max(self.horizon_us, minute * US_PER_MINUTE)


class StoredIds:
    """The windows of every assigned partition. Not thread-safe (the hot path's loop only)."""

    def __init__(self, *, window_s: int, max_ids: int, skew_s: int) -> None:
        self.window_us = window_s * 1_000_000
        self.max_ids = max_ids
        self.skew_us = skew_s * 1_000_000
        self.partitions: dict[int, PartitionWindow] = {}

    @property
    def size(self) -> int:
        return sum(len(w.ids) for w in self.partitions.values())

    def covers_s(self, now_us: int) -> float | None:
        """How far back every window vouches for (None with no partition): below
        ``max_clock_skew_s`` every event is looked up in ClickHouse - raise ``dedupe_max_ids``."""
        if not self.partitions:
            return None
        horizon = max(w.horizon_us for w in self.partitions.values())
        return round((now_us - horizon) / 1e6, 1)

    def reset(self, partition: int, horizon_us: int, rows: list[tuple[int, int]]) -> None:
        """(Re)build a partition's window from ``rows`` of ``(ts_us, id_key)`` stored since
        ``horizon_us`` (read from ClickHouse at assignment)."""
        window = PartitionWindow(horizon_us)
        for ts_us, key in sorted(rows):
            window.add(ts_us // US_PER_MINUTE, [key])
        self.partitions[partition] = window

    def drop(self, partition: int) -> None:
        self.partitions.pop(partition, None)

    def is_sure(self, partition: int, ts_us: int) -> bool:
        """Whether the window alone can tell if an event with raw ``ts_us`` was stored."""
        window = self.partitions.get(partition)
        return window is not None and ts_us >= window.horizon_us + self.skew_us

    def seen(self, partition: int, key: int) -> bool:
        window = self.partitions.get(partition)
        return window is not None and key in window.ids

    def add(self, partition: int, stored: list[tuple[int, int]]) -> None:
        """Record ``(stored_ts_us, key)`` pairs just stored on ``partition``."""
        window = self.partitions.get(partition)
        if window is None or not stored:
            return
        by_minute: dict[int, list[int]] = {}
        for ts_us, key in stored:
            by_minute.setdefault(ts_us // US_PER_MINUTE, []).append(key)
        for minute in sorted(by_minute):
            window.add(minute, by_minute[minute])

    def trim(self, now_us: int) -> None:
        """Drop what is older than ``window_s`` and keep the total under ``max_ids``."""
        oldest = (now_us - self.window_us) // US_PER_MINUTE
        for window in self.partitions.values():
            if window.minutes and window.minutes[0][0] < oldest:
                window.drop_before(oldest)
        while self.size > self.max_ids:
            # Drop the oldest minute held anywhere.
            window = min(
                (w for w in self.partitions.values() if w.minutes),
                key=lambda w: w.minutes[0][0],
            )
            window.drop_before(window.minutes[0][0] + 1)
