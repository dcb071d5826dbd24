"""A budget's state as the SDK guard sees it: :func:`status_of` -> ``BudgetStatus``."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.alerts import SEVERITY_RANK
from schemas.budget_status import BudgetState, BudgetStatus
from streams.budgets.forecast import burn_rate
from streams.budgets.ledger import LedgerState
from streams.budgets.model import Budget
from streams.budgets.render import fraction_text
from streams.budgets.spend import current_state


def status_of(budget: Budget, state: LedgerState | None, now: datetime) -> BudgetStatus:
    """The status of ``budget`` at ``now`` (pure; ``state`` is not modified).

    If ``now`` is past the ledger's period (or there is no ledger yet) the status is that of
    the new, empty period. ``state`` is ``exhausted`` when spent >= the effective limit (an
    override counts until it expires at ``override_until``); otherwise the highest crossed
    threshold's severity decides: warning -> ``warning``, critical or emergency ->
    ``critical``, info or none -> ``ok``. ``projected_runout_at`` is set when the recent burn
    rate is reliable (see ``streams.budgets.forecast``).

    Raises ``ValueError`` for a naive ``now``.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    if state is None or now >= state.period_end:
        # Do not let current_state mutate or share the caller's ledger.
        state = current_state(
            budget, LedgerState.from_dict(state.to_dict()) if state else None, now
        )
    limit = state.effective_limit(budget.limit_nusd, now)
    spent = state.spent_nusd
    level: BudgetState = "ok"
    if spent >= limit:
        level = "exhausted"
    else:
        rank = -1
        for threshold in budget.thresholds:
            if threshold.crossed(spent, limit):
                rank = SEVERITY_RANK[threshold.severity]
        if rank >= SEVERITY_RANK["critical"]:
            level = "critical"
        elif rank == SEVERITY_RANK["warning"]:
            level = "warning"
    runout = None
    if spent < limit:
        rate = burn_rate(state, now)
        if rate.reliable:
            runout = rate.runout_at(limit - spent)
    override_until = state.override_until if limit != budget.limit_nusd else None
    return BudgetStatus(
        budget=budget.name,
        period_start=state.period_start,
        reset_at=state.period_end,
        spent_nusd=spent,
        limit_nusd=limit,
        fraction=fraction_text(spent, limit),
        state=level,
        updated_at=now,
        projected_runout_at=runout,
        per_request_limit_nusd=budget.per_request_limit_nusd,
        override_until=override_until,
        on_exhausted=budget.on_exhausted,
        degrade_to=dict(budget.degrade_to) or None,
    )
