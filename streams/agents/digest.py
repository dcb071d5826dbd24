"""Timer ``digest`` (leader only): yesterday's digest once ``alerting.digest_at`` has passed."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from alerting.digest import BudgetLine
from streams.budgets import period_bounds, status_of
from streams.budgets.stored import seeded_state, stored_spend
from streams.digest import digest_day_due

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger("spendwatch.worker")


async def send_digest(pipeline: Pipeline) -> None:
    alerting = pipeline.settings.alerting
    runtime = pipeline.runtime
    if alerting.digest_at is None or not runtime.ready.is_set():
        return
    now = datetime.now(UTC)
    day = digest_day_due(now, alerting.digest_at, alerting.digest_timezone, pipeline.digest_day)
    if day is None:
        return
    lines = []
    book = pipeline.book
    for name, budget in sorted(book.budgets.items()):
        state = book.states.get(name)
        if state is None:  # owned by another worker: its spend as ClickHouse has it
            start, end = period_bounds(budget, now)
            try:
                stored = await runtime.read(stored_spend, budget, start, end)
            except Exception:
                log.exception("budget %s: cannot read stored spend for the digest", name)
                stored = None
            state = seeded_state(budget, stored, start, end) if stored else None
        status = status_of(budget, state, now)
        lines.append(
            BudgetLine(
                name, status.spent_nusd, status.limit_nusd, status.period_start.date().isoformat()
            )
        )
    await runtime.send_digest(day, alerting.digest_timezone, tuple(lines), now)
    pipeline.digest_day = day
