"""Budgets: config, periods, the spend ledger, threshold/forecast/quota alerts, status, overrides.

Pure maths with explicit timestamps; the worker keeps one :class:`LedgerState` per budget it
owns (in :class:`streams.budgets.book.LedgerBook`) and calls :func:`apply_delta` for each
budget delta the hot path sends.
"""

from streams.budgets.config import load_budgets
from streams.budgets.control import OverrideCommand, parse_duration
from streams.budgets.delta import BudgetDelta, DeltaBuilder
from streams.budgets.forecast import FORECAST_WINDOW_S, MIN_FORECAST_WINDOW_S, BurnRate, burn_rate
from streams.budgets.ledger import LedgerState
from streams.budgets.model import Budget, Match, Threshold, matching
from streams.budgets.override import apply_override
from streams.budgets.periods import period_bounds
from streams.budgets.spend import (
    apply_delta,
    apply_spend,
    current_state,
    per_request_alert,
    threshold_alert_id,
)
from streams.budgets.status import status_of

__all__ = [
    "FORECAST_WINDOW_S",
    "MIN_FORECAST_WINDOW_S",
    "Budget",
    "BudgetDelta",
    "BurnRate",
    "DeltaBuilder",
    "LedgerState",
    "Match",
    "OverrideCommand",
    "Threshold",
    "apply_delta",
    "apply_override",
    "apply_spend",
    "burn_rate",
    "current_state",
    "load_budgets",
    "matching",
    "parse_duration",
    "per_request_alert",
    "period_bounds",
    "status_of",
    "threshold_alert_id",
]
