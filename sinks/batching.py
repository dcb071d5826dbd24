"""``BatchingSink``: the ``open / add / flush / close`` contract every sink implements.

A concrete sink only writes :meth:`BatchingSink.write_batch`. The base buffers rows, flushes
when ``batch_rows`` are buffered (size trigger) or ``flush_interval_s`` after the last flush
(time trigger, a background task), serialises flushes with a lock, and hands rows the sink
refused to a dead-letter hook.

Guarantees to the caller (the Faust worker):

* ``await add(row)`` never loses a row. When the buffer is full it flushes first, so while the
  target is down ``add`` waits (backpressure) instead of dropping or growing without bound:
  at most ``batch_rows`` rows wait in the buffer plus one batch in flight.
* ``await flush()`` returns only once every row added before the call is durably written or
  has been handed to the dead-letter hook. Commit consumer offsets after it, never before.
  If it raises (target unavailable past the deadline, or a fatal error) the unwritten rows
  stay buffered and a later ``flush`` retries them.
* ``await close()`` flushes and stops the timer; idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sinks.errors import SinkClosedError, SinkError
from sinks.rows import Row

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A row the target refused, with why. ``reason_code`` is short and stable
    (``insert_refused``); ``reason`` is the target's message."""

    table: str
    columns: tuple[str, ...]
    row: Row
    reason_code: str
    reason: str


DeadLetterHook = Callable[[Sequence[DeadLetter]], Awaitable[None]]


@dataclass(slots=True)
class SinkStats:
    """Counters for health checks and the pipeline-health alert (read, don't write)."""

    rows_added: int = 0
    rows_written: int = 0
    rows_skipped_duplicate: int = 0
    rows_dead_lettered: int = 0
    batches_written: int = 0
    retries: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    last_flush_monotonic: float | None = None
    errors: list[str] = field(default_factory=list)


class BatchingSink(ABC):
    """Buffering base class; see the module docstring for the contract."""

    def __init__(
        self,
        *,
        name: str,
        batch_rows: int = 5000,
        flush_interval_s: float = 1.0,
        on_dead_letter: DeadLetterHook | None = None,
    ) -> None:
        if batch_rows < 1:
            raise ValueError("batch_rows must be >= 1")
        if flush_interval_s <= 0:
            raise ValueError("flush_interval_s must be > 0")
        self.name = name
        self.batch_rows = batch_rows
        self.flush_interval_s = flush_interval_s
        self.on_dead_letter = on_dead_letter
        self.stats = SinkStats()
        # Dead letters nobody took: kept so nothing is dropped silently.
        self.dead_letters: list[DeadLetter] = []
        self._buffer: list[Row] = []
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        self._opened = False
        self._closed = False

    # -- subclass API -----------------------------------------------------------------------

    @abstractmethod
    async def write_batch(self, batch: list[Row]) -> list[DeadLetter]:
        """Write ``batch`` durably; return the rows refused as data errors (dead letters).

        Return only when every other row is written. Raise a :class:`SinkError` whose
        ``pending`` lists the unwritten rows to keep only those buffered (any other exception
        keeps the whole batch).
        """

    async def on_open(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Hook: prepare the target (called once by :meth:`open`)."""

    async def on_close(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Hook: release the target (called once by :meth:`close`, after the last flush)."""

    # -- public API -------------------------------------------------------------------------

    @property
    def pending_rows(self) -> int:
        """Rows added but not yet written (buffered)."""
        return len(self._buffer)

    async def open(self) -> None:
        """Start the time trigger. Idempotent. ``add`` opens the sink if needed."""
        if self._closed:
            raise SinkClosedError(f"{self.name}: open after close")
        if self._opened:
            return
        self._opened = True
        await self.on_open()
        self._timer = asyncio.create_task(self._flush_periodically(), name=f"{self.name}-flush")

    async def add(self, row: Row) -> None:
        """Buffer one row; flush first if the buffer holds ``batch_rows`` (may wait)."""
        if self._closed:
            raise SinkClosedError(f"{self.name}: add after close")
        if not self._opened:
            await self.open()
        self._buffer.append(row)
        self.stats.rows_added += 1
        if len(self._buffer) >= self.batch_rows:
            await self.flush()

    async def add_many(self, rows: Iterable[Row]) -> None:
        """``add`` each row in order."""
        for row in rows:
            await self.add(row)

    async def flush(self) -> None:
        """Write everything buffered; see the module docstring for the guarantee."""
        if self._closed and self._buffer:
            raise SinkClosedError(f"{self.name}: flush after close")
        async with self._lock:
            while self._buffer:
                batch = self._buffer[: self.batch_rows]
                del self._buffer[: len(batch)]
                try:
                    rejected = await self.write_batch(batch)
                except SinkError as exc:
                    self._buffer[0:0] = batch if exc.pending is None else exc.pending
                    self._record_failure(exc)
                    raise
                except BaseException as exc:
                    self._buffer[0:0] = batch
                    if isinstance(exc, Exception):
                        self._record_failure(exc)
                    raise
                self.stats.consecutive_failures = 0
                self.stats.batches_written += 1
                self.stats.last_flush_monotonic = time.monotonic()
                if rejected:
                    await self._hand_over(rejected)

    async def close(self) -> None:
        """Flush what is buffered, stop the timer, release the target. Idempotent.

        If the final flush raises, the sink stays open (so the caller may retry ``close``).
        """
        if self._closed:
            return
        if self._opened:
            await self.flush()
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        if self._opened:
            await self.on_close()

    async def __aenter__(self) -> BatchingSink:
        await self.open()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- internals --------------------------------------------------------------------------

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            if not self._buffer or self._lock.locked():
                continue
            try:
                await self.flush()
            except SinkError as exc:
                # Rows stay buffered; the next add/flush/timer tick retries and the caller
                # sees the error from its own flush.
                log.warning("%s: background flush failed: %s", self.name, exc)
            except Exception:
                log.exception("%s: background flush failed", self.name)

    async def _hand_over(self, rejected: list[DeadLetter]) -> None:
        self.stats.rows_dead_lettered += len(rejected)
        if self.on_dead_letter is None:
            log.error(
                "%s: %d row(s) refused, kept in sink.dead_letters: %s",
                self.name,
                len(rejected),
                rejected[0].reason,
            )
            self.dead_letters.extend(rejected)
            return
        try:
            await self.on_dead_letter(rejected)
        except BaseException:
            self.dead_letters.extend(rejected)
            raise

    def _record_failure(self, exc: Exception) -> None:
        self.stats.consecutive_failures += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"[:500]
        self.stats.errors = ([*self.stats.errors, self.stats.last_error])[-20:]
