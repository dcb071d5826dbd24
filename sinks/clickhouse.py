"""``ClickHouseSink``: column-oriented batch inserts into one table, safe to replay.

One sink per table. ``write_batch`` pivots the rows to columns and inserts them with a reused
insert context, in a worker thread (``asyncio.to_thread``: the chDB engine and the HTTP client
are blocking; chDB releases the GIL, so the event loop keeps serving). Each batch goes as one
Native block, which ClickHouse writes atomically.

Failures, sorted by :func:`sinks.errors.classify`:

* transient -> retry the same rows with capped exponential backoff (``retry_initial_s``
  doubling up to ``retry_max_s``); for ever when ``retry_deadline_s`` is 0, so the worker's
  ``add`` waits (backpressure); otherwise :class:`SinkUnavailableError` after the deadline.
* data -> split the batch in halves until each refused row stands alone; refused rows go to
  the dead-letter hook with ClickHouse's reason, the others are written.
* fatal -> :class:`SinkFatalError`; unwritten rows stay buffered.

Rows already older than the table's TTL (``ttl_column`` + ``ttl_days``) would vanish on insert
(ClickHouse applies the TTL while writing the part), so they are dead-lettered instead with
reason code ``expired``.

Replay safety for tables feeding materialized views (``dedupe_column``, e.g. ``event_id``):
repeats within a batch and across the last ``recent_keys`` written keys are dropped, and
before every insert attempt the keys already in the table are skipped - so a batch replayed
after a crash, or retried after a lost reply, is not counted twice by the rollups.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver import Client
from clickhouse_connect.driver.insert import InsertContext
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

from sinks.batching import BatchingSink, DeadLetter, DeadLetterHook
from sinks.errors import (
    DATA,
    TRANSIENT,
    SinkFatalError,
    SinkUnavailableError,
    classify,
    error_code,
)
from sinks.identifiers import check_identifier, quote_identifier
from sinks.rows import Row, TableSpec
from sinks.settings import ClickHouseSettings

log = logging.getLogger(__name__)

INSERT_REFUSED = "insert_refused"  # dead-letter reason code: ClickHouse refused the row
EXPIRED = "expired"  # dead-letter reason code: older than the table's TTL
LOOKUP_CHUNK = 2000  # keys per "already written?" query (~90 KB of SQL for UUIDs)


class ClickHouseSink(BatchingSink):
    """Batching writer for one ClickHouse table (see the module docstring)."""

    def __init__(
        self,
        client: Client,
        table: str,
        columns: Sequence[str],
        *,
        batch_rows: int = 5000,
        flush_interval_s: float = 1.0,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 30.0,
        retry_deadline_s: float = 0.0,
        dedupe_column: str | None = None,
        prune_column: str | None = None,
        recent_keys: int = 100_000,
        ttl_column: str | None = None,
        ttl_days: int | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_dead_letter: DeadLetterHook | None = None,
        insert_settings: dict[str, Any] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(
            name=f"clickhouse:{table}",
            batch_rows=batch_rows,
            flush_interval_s=flush_interval_s,
            on_dead_letter=on_dead_letter,
        )
        self.client = client
        # Names go into SQL text (the "already written?" lookup): refuse anything but plain ones.
        for name in (table, dedupe_column, prune_column):
            if name is not None:
                check_identifier(name)
        self.table = table
        self.columns = tuple(columns)
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.retry_deadline_s = retry_deadline_s
        self.insert_settings = dict(insert_settings or {})
        self._key_index = self.columns.index(dedupe_column) if dedupe_column else None
        self._prune_index = self.columns.index(prune_column) if prune_column else None
        self.dedupe_column = dedupe_column
        self.prune_column = prune_column
        self._ttl_index = self.columns.index(ttl_column) if ttl_column and ttl_days else None
        self.ttl_days = ttl_days
        self._clock = clock
        self._recent: OrderedDict[Any, None] = OrderedDict()
        self._recent_max = recent_keys
        self._ctx: InsertContext | None = None
        self._sleep = sleep

    @classmethod
    def for_table(
        cls,
        client: Client,
        spec: TableSpec,
        settings: ClickHouseSettings,
        *,
        on_dead_letter: DeadLetterHook | None = None,
        **overrides: Any,
    ) -> ClickHouseSink:
        """A sink for one of :data:`sinks.rows.TABLES`, configured from ``settings``."""
        kwargs: dict[str, Any] = {
            "batch_rows": settings.batch_rows,
            "flush_interval_s": settings.flush_interval_s,
            "retry_initial_s": settings.retry_initial_s,
            "retry_max_s": settings.retry_max_s,
            "retry_deadline_s": settings.retry_deadline_s,
            "dedupe_column": spec.dedupe_column,
            "prune_column": spec.prune_column,
            "ttl_column": spec.ttl_column,
            "ttl_days": settings.ttl_days,
            "on_dead_letter": on_dead_letter,
        }
        kwargs.update(overrides)
        return cls(client, spec.table, spec.columns, **kwargs)

    # -- BatchingSink -------------------------------------------------------------------------

    async def write_batch(self, batch: list[Row]) -> list[DeadLetter]:
        rows, rejected = self._drop_expired(self._drop_repeats(batch))
        # Work stack of row slices; a data error replaces a slice by its two halves.
        stack: list[list[Row]] = [rows] if rows else []
        started = time.monotonic()
        while stack:
            piece = stack[-1]
            try:
                piece = await self._write_retrying(piece, started)
            except Exception as exc:
                kind = classify(exc)
                if kind == DATA:
                    stack.pop()
                    if len(piece) == 1:
                        rejected.append(self._dead_letter(piece[0], exc))
                    else:
                        mid = len(piece) // 2
                        stack.append(piece[mid:])
                        stack.append(piece[:mid])
                    continue
                pending = [r for part in stack for r in part] + [d.row for d in rejected]
                if kind == TRANSIENT:  # the retry deadline has passed
                    elapsed = time.monotonic() - started
                    raise SinkUnavailableError(
                        f"{self.name}: ClickHouse unavailable for {elapsed:.1f}s: {exc}",
                        pending=pending,
                    ) from exc
                raise SinkFatalError(
                    f"{self.name}: {type(exc).__name__}: {exc}", pending=pending
                ) from exc
            stack.pop()
            self.stats.rows_written += len(piece)
            self._remember(piece)
        return rejected

    async def _write_retrying(self, piece: list[Row], started: float) -> list[Row]:
        """Write ``piece`` (minus rows already in the table); transient errors are retried
        with capped exponential backoff until ``retry_deadline_s`` after ``started`` (for ever
        when 0). Returns the rows written; raises the last error otherwise."""

        def past_deadline(_: RetryCallState) -> bool:
            deadline = self.retry_deadline_s
            return bool(deadline) and time.monotonic() - started >= deadline

        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda exc: classify(exc) == TRANSIENT),
            wait=wait_exponential(multiplier=self.retry_initial_s, max=self.retry_max_s),
            stop=past_deadline,
            sleep=self._sleep,
            after=self._count_transient,
            before_sleep=self._log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if self._key_index is not None:
                    piece = await asyncio.to_thread(self._without_existing, piece)
                if piece:
                    await asyncio.to_thread(self._insert, piece)
        return piece

    def _count_transient(self, state: RetryCallState) -> None:
        self.stats.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None:
            self.stats.last_error = f"{type(exc).__name__}: {exc}"[:500]

    def _log_retry(self, state: RetryCallState) -> None:
        log.warning(
            "%s: transient error (attempt %d, retry in %.2fs): %s",
            self.name,
            state.attempt_number,
            state.next_action.sleep if state.next_action else 0.0,
            state.outcome.exception() if state.outcome else None,
        )

    async def on_close(self) -> None:
        self._ctx = None  # the client belongs to the caller; it closes it

    # -- blocking helpers (run in a worker thread) ------------------------------------------

    def _insert(self, rows: list[Row]) -> None:
        if self._ctx is None:
            self._ctx = self.client.create_insert_context(
                self.table,
                list(self.columns),
                column_oriented=True,
                settings=self.insert_settings or None,
            )
        ctx = self._ctx
        # One Native block per batch: ClickHouse writes a block atomically.
        ctx.req_block_size = len(rows)
        ctx.data = [list(col) for col in zip(*rows, strict=True)]
        try:
            self.client.insert(context=ctx)
        finally:
            ctx.data = None

    def _without_existing(self, rows: list[Row]) -> list[Row]:
        """``rows`` minus those whose dedupe key is already in the table."""
        assert self._key_index is not None and self.dedupe_column is not None
        column = quote_identifier(self.dedupe_column)
        existing: set[Any] = set()
        # Chunked: clickhouse-connect writes the bound key list into the SQL text, which
        # ClickHouse caps (max_query_size).
        for start in range(0, len(rows), LOOKUP_CHUNK):
            chunk = rows[start : start + LOOKUP_CHUNK]
            params: dict[str, Any] = {"keys": tuple(r[self._key_index] for r in chunk)}
            where = f"{column} IN %(keys)s"
            if self._prune_index is not None and self.prune_column is not None:
                stamps = [r[self._prune_index] for r in chunk]
                low, high = _bound("low", min(stamps), params), _bound("high", max(stamps), params)
                where += f" AND {quote_identifier(self.prune_column)} BETWEEN {low} AND {high}"
            result = self.client.query(
                f"SELECT DISTINCT {column} FROM {quote_identifier(self.table)} WHERE {where}",
                parameters=params,
            )
            existing.update(row[0] for row in result.result_rows)
        if not existing:
            return rows
        kept = [r for r in rows if r[self._key_index] not in existing]
        self.stats.rows_skipped_duplicate += len(rows) - len(kept)
        log.info("%s: skipped %d row(s) already written", self.name, len(rows) - len(kept))
        return kept

    # -- bookkeeping --------------------------------------------------------------------------

    def _drop_repeats(self, batch: list[Row]) -> list[Row]:
        if self._key_index is None:
            return batch
        seen: set[Any] = set()
        kept: list[Row] = []
        for row in batch:
            key = row[self._key_index]
            if key in seen or key in self._recent:
                continue
            seen.add(key)
            kept.append(row)
        self.stats.rows_skipped_duplicate += len(batch) - len(kept)
        return kept

    def _drop_expired(self, rows: list[Row]) -> tuple[list[Row], list[DeadLetter]]:
        """Dead-letter rows already past the table TTL: ClickHouse would drop them silently
        on insert (e.g. a replay of old events, or test data with fixed old timestamps)."""
        if self._ttl_index is None or self.ttl_days is None:
            return rows, []
        cutoff = self._clock() - timedelta(days=self.ttl_days)
        kept: list[Row] = []
        expired: list[DeadLetter] = []
        for row in rows:
            stamp = row[self._ttl_index]
            if isinstance(stamp, datetime) and stamp < cutoff:
                reason = (
                    f"{self.columns[self._ttl_index]} {stamp.isoformat()} is older than the "
                    f"{self.ttl_days}-day retention of {self.table} (cutoff {cutoff.isoformat()})"
                )
                expired.append(DeadLetter(self.table, self.columns, row, EXPIRED, reason))
            else:
                kept.append(row)
        return kept, expired

    def _remember(self, rows: list[Row]) -> None:
        if self._key_index is None:
            return
        for row in rows:
            self._recent[row[self._key_index]] = None
        while len(self._recent) > self._recent_max:
            self._recent.popitem(last=False)

    def _dead_letter(self, row: Row, exc: Exception) -> DeadLetter:
        code = error_code(exc)
        name = getattr(exc, "name", None)
        label = f" [{name or code}]" if (name or code) else ""
        reason = f"{type(exc).__name__}{label}: {exc}"[:2000]
        log.warning("%s: row refused: %s", self.name, reason)
        return DeadLetter(self.table, self.columns, row, INSERT_REFUSED, reason)


def _bound(name: str, value: Any, params: dict[str, Any]) -> str:
    """Bind a prune bound as ``%(name)s``; an aware datetime exactly to the microsecond (as a
    UTC ``DateTime64(6)``: clickhouse-connect's own datetime literal drops the fraction)."""
    if isinstance(value, datetime):
        params[name] = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return f"toDateTime64(%({name})s, 6, 'UTC')"
    params[name] = value
    return f"%({name})s"
