"""Agent ``control``: operator overrides -> the ledger book -> override alerts."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from streams.budgets import OverrideCommand

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger("spendwatch.budgets")


async def apply_overrides(pipeline: Pipeline, stream: Any) -> None:
    """Apply each override to the ledger of the budget it names (the control topic is
    co-partitioned with the deltas, so it reaches the worker that owns the budget)."""
    async for raw in stream:
        try:
            command = OverrideCommand.from_json(raw)
        except (KeyError, ValueError) as exc:
            log.warning("ignoring control command %r: %s", bytes(raw[:200]), exc)
            continue
        if command.budget not in pipeline.book.budgets:
            log.warning("ignoring an override of unknown budget %r", command.budget)
            continue
        await pipeline.raise_budget_alerts(await pipeline.book.override(command))
