"""Rebuild a budget's ledger from spend already stored (ClickHouse) when the stream has none.

The embedded broker keeps nothing across restarts, and a Kafka changelog can be lost: a
worker that finds no ledger for a budget would otherwise count its period from zero, and an
SDK guard would let an exhausted budget spend again. The worker hands this function the
period's stored spend, grouped by (service, provider, model, tags), and continues from there.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from streams.budgets.ledger import LedgerState
from streams.budgets.model import Budget
from streams.budgets.spend import _tally, current_state, threshold_key


def seed_state(
    budget: Budget, groups: Iterable[tuple[dict[str, Any], int, int]], now: datetime
) -> LedgerState:
    """The ledger of ``budget``'s period containing ``now``, holding ``groups``.

    ``groups`` are ``(dimensions, cost_nusd, events)`` with dimensions ``service``,
    ``provider``, ``model``, ``tags``; only groups the budget matches are counted. Thresholds
    the stored spend has already crossed are marked announced: the worker that saw them cross
    alerted then, so they do not fire again. No per-request, quota or forecast alert comes
    from seeding.
    """
    state = current_state(budget, None, now)
    for dimensions, cost_nusd, events in groups:
        if not budget.matches(dimensions):
            continue
        state.spent_nusd += cost_nusd
        state.events += events
        if cost_nusd:
            _tally(state, dimensions, cost_nusd)
    limit = budget.limit_nusd
    for threshold in budget.thresholds:
        if threshold.crossed(state.spent_nusd, limit):
            state.fired.append(threshold_key(threshold, limit))
    return state
