"""Agent ``budgets``: budget deltas -> the ledger book -> alerts."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec

from streams import faults
from streams.budgets.delta import decode_delta

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger("spendwatch.budgets")


async def count_deltas(pipeline: Pipeline, stream: Any) -> None:
    """Count each delta in its budget's ledger (seeded first if new here); send its alerts."""
    async for raw in stream:
        try:
            delta = decode_delta(raw)
        except msgspec.DecodeError as exc:
            log.error("ignoring a malformed budget delta (%s): %r", exc, bytes(raw[:200]))
            continue
        faults.point("agent.budgets")
        await pipeline.raise_budget_alerts(await pipeline.book.apply(delta))
