"""The bounded hand-off between instrumented calls and the sender thread.

``put`` never blocks and never raises: when ``capacity`` events are waiting, the oldest one is
dropped and counted, like OpenTelemetry's batch span processor. Every accepted event gets a
sequence number; an event is *resolved* once it is sent, dropped or failed, which is what
``flush`` waits for. Events the sender took but could not deliver come back to the front
(they are older than anything waiting), again within ``capacity``.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Stats:
    """Counters since ``configure()`` (per process: a forked child starts at zero).

    ``sent``: acknowledged by the broker. ``queued``: waiting or in flight. ``dropped``:
    evicted, oldest first, because the queue was full. ``failed``: refused by the broker for
    good (e.g. too large). ``rejected``: never queued (SDK not configured or shut down, or an
    instrumented response gave unusable usage data). ``connected``: the sender currently has
    a working producer (False before the first event and while the broker is unreachable).
    """

    sent: int = 0
    queued: int = 0
    dropped: int = 0
    failed: int = 0
    rejected: int = 0
    connected: bool = False


# A queue item is ``[seq, payload]``: payload is the built dict until the sender encodes it,
# then its bytes (kept across retries so the event_id never changes).
Item = list[Any]


class EventQueue:
    """Thread-safe bounded FIFO with drop-oldest, in-flight tracking and flush waiting."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[Item] = deque()
        self._in_flight: list[Item] = []
        # Reentrant: a stream garbage-collected while this thread is inside put() records its
        # partial event from the collector, i.e. re-enters put() on the same thread.
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._next_seq = 0
        self.sent = 0
        self.dropped = 0
        self.failed = 0
        self.rejected = 0
        # Set by the sender while it sleeps on an empty queue; ``put`` calls ``wake`` then.
        self.sleeping = False
        self.wake: Callable[[], None] | None = None

    def put(self, payload: dict[str, Any]) -> None:
        """Enqueue one event; drops (and counts) the oldest waiting one if full."""
        items = self._items
        with self._lock:
            if len(items) >= self.capacity:
                items.popleft()
                self.dropped += 1
            seq = self._next_seq
            self._next_seq = seq + 1
            items.append([seq, payload])
        if self.sleeping:
            self.sleeping = False
            wake = self.wake
            if wake is not None:
                # The sender's loop may be closing; it drains on its own then.
                with contextlib.suppress(Exception):
                    wake()

    def take(self, limit: int) -> list[Item]:
        """Move up to ``limit`` of the oldest events to in-flight and return them."""
        with self._cond:
            count = min(limit, len(self._items))
            batch = [self._items.popleft() for _ in range(count)]
            self._in_flight = batch
            return batch

    def settle(self, sent: int, retry: list[Item], failed: int) -> None:
        """End the in-flight batch: ``sent`` delivered, ``failed`` refused for good, ``retry``
        (in send order) back to the front, newest first, dropping what no longer fits."""
        with self._cond:
            self.sent += sent
            self.failed += failed
            room = self.capacity - len(self._items)
            if len(retry) > room:
                self.dropped += len(retry) - room
                retry = retry[len(retry) - room :] if room > 0 else []
            self._items.extendleft(reversed(retry))
            self._in_flight = []
            self._cond.notify_all()

    def empty(self) -> bool:
        return not self._items

    def reject(self) -> None:
        """Count an event that was never queued."""
        with self._cond:
            self.rejected += 1

    def stats(self, *, connected: bool = False) -> Stats:
        with self._cond:
            return Stats(
                sent=self.sent,
                queued=len(self._items) + len(self._in_flight),
                dropped=self.dropped,
                failed=self.failed,
                rejected=self.rejected,
                connected=connected,
            )

    def _oldest_unresolved(self) -> int | None:
        if self._in_flight:
            return int(self._in_flight[0][0])
        if self._items:
            return int(self._items[0][0])
        return None

    def wait_resolved(self, timeout_s: float) -> bool:
        """Block until every event accepted before this call is resolved, or ``timeout_s``."""
        with self._cond:
            target = self._next_seq
            return self._cond.wait_for(
                lambda: (oldest := self._oldest_unresolved()) is None or oldest >= target,
                timeout=max(timeout_s, 0.0),
            )

    def discard_all(self) -> int:
        """Forget every waiting event (a forked child drops its parent's copy); returns how many."""
        with self._cond:
            count = len(self._items)
            self._items.clear()
            self._in_flight = []
            return count
