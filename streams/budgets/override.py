"""Operator override: raise (or lower) a budget's limit for a while, announced as an alert.

After an override, the thresholds the current spend has already crossed *at the new limit*
are marked as announced (the override alert states the spend), so only the ones crossed
afterwards fire - once each per (period, effective limit). When the override expires the
configured limit applies again, and thresholds already fired at it stay fired. Alert ids carry
the effective limit, so a replay of the same events and commands yields the same ids.
"""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.alerts import Alert, alert_id_for
from schemas.money import format_usd as money
from schemas.money import usd_text
from streams.budgets.ledger import LedgerState
from streams.budgets.model import Budget
from streams.budgets.render import local_text, percent_text
from streams.budgets.spend import current_state, threshold_key


def apply_override(
    budget: Budget,
    state: LedgerState | None,
    limit_nusd: int,
    until: datetime,
    now: datetime,
    *,
    reason: str = "",
    by: str = "",
) -> tuple[LedgerState, Alert]:
    """Set the effective limit of ``budget`` to ``limit_nusd`` from ``now`` until ``until``.

    Called by the worker for each command on ``spendwatch.control.v1`` (``now`` = the
    command's ``at``). A later override replaces an earlier one. The override outlives a
    period rollover while ``until`` is ahead. Returns the updated ledger (in place, or a new
    one if ``now`` is past the period) and the ``override`` alert announcing it; its id is
    ``alert_id_for("override", budget.name, now.isoformat(), limit_nusd, until.isoformat())``.

    Raises ``ValueError`` for naive datetimes, a non-positive limit or ``until <= now``.
    """
    for value in (until, now):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("until and now must be timezone-aware")
    if isinstance(limit_nusd, bool) or not isinstance(limit_nusd, int) or limit_nusd <= 0:
        raise ValueError(f"limit_nusd must be a positive integer, got {limit_nusd!r}")
    now = now.astimezone(UTC)
    until = until.astimezone(UTC)
    if until <= now:
        raise ValueError(f"override until {until.isoformat()} is not after {now.isoformat()}")
    state = current_state(budget, state, now)
    previous = state.effective_limit(budget.limit_nusd, now)
    state.override_limit_nusd = limit_nusd
    state.override_until = until
    state.override_reason = reason
    state.override_by = by
    for threshold in budget.thresholds:
        key = threshold_key(threshold, limit_nusd)
        if threshold.crossed(state.spent_nusd, limit_nusd) and key not in state.fired:
            state.fired.append(key)

    labels = budget.alert_labels
    labels["period"] = state.period_start.isoformat()
    figures = {
        "spent_usd": usd_text(state.spent_nusd),
        "limit_usd": usd_text(limit_nusd),
        "previous_limit_usd": usd_text(previous),
        "configured_limit_usd": usd_text(budget.limit_nusd),
        "percent": percent_text(state.spent_nusd, limit_nusd),
        "override_until": until.isoformat(),
        "reason": reason,
        "by": by,
    }
    who = f" by {by}" if by else ""
    why = f" Reason: {reason}." if reason else ""
    alert = Alert(
        alert_id=alert_id_for(
            "override", budget.name, now.isoformat(), limit_nusd, until.isoformat()
        ),
        kind="override",
        severity="warning",
        title=(
            f"Budget {budget.name} limit set to {money(limit_nusd)} until "
            f"{local_text(until, budget.tz)}{who}"
        ),
        summary=(
            f"Limit {money(previous)} -> {money(limit_nusd)} "
            f"(configured {money(budget.limit_nusd)}) "
            f"until {local_text(until, budget.tz)}; spent {money(state.spent_nusd)} "
            f"({figures['percent']}% of the new limit).{why}"
        ),
        fired_at=now,
        labels=labels,
        figures=figures,
    )
    return state, alert
