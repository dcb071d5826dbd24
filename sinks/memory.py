"""``MemorySink``: the batching contract with a list as the target, for tests and demos.

Like OpenTelemetry's ``InMemorySpanExporter``: same ``open / add / flush / close`` behaviour as
the ClickHouse sink (size and time triggers, dead letters), rows kept in :attr:`rows` and each
written batch in :attr:`batches`. ``refuse`` lets a test play a target that refuses some rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sinks.batching import BatchingSink, DeadLetter, DeadLetterHook
from sinks.rows import Row


class MemorySink(BatchingSink):
    """Writes to memory. ``refuse(row)`` returns a reason to dead-letter that row, or ``None``."""

    def __init__(
        self,
        *,
        table: str = "memory",
        columns: Sequence[str] = (),
        batch_rows: int = 5000,
        flush_interval_s: float = 1.0,
        on_dead_letter: DeadLetterHook | None = None,
        refuse: Callable[[Row], str | None] | None = None,
    ) -> None:
        super().__init__(
            name=f"memory:{table}",
            batch_rows=batch_rows,
            flush_interval_s=flush_interval_s,
            on_dead_letter=on_dead_letter,
        )
        self.table = table
        self.columns = tuple(columns)
        self.refuse = refuse
        self.rows: list[Row] = []
        self.batches: list[list[Row]] = []

    async def write_batch(self, batch: list[Row]) -> list[DeadLetter]:
        rejected: list[DeadLetter] = []
        written: list[Row] = []
        for row in batch:
            reason = self.refuse(row) if self.refuse else None
            if reason is None:
                written.append(row)
            else:
                rejected.append(DeadLetter(self.table, self.columns, row, "refused", reason))
        self.rows.extend(written)
        self.batches.append(written)
        self.stats.rows_written += len(written)
        return rejected
