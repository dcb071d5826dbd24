"""Budgets: config, periods, the spend ledger, threshold/forecast/quota alerts, status, overrides.

Pure maths with explicit timestamps; the Faust worker keeps one :class:`LedgerState` per budget
(``to_dict`` / ``from_dict``) and calls :func:`apply_spend` for each (event, matching budget).
"""

from streams.budgets.config import load_budgets
from streams.budgets.control import OverrideCommand, parse_duration
from streams.budgets.forecast import FORECAST_WINDOW_S, MIN_FORECAST_WINDOW_S, BurnRate, burn_rate
from streams.budgets.ledger import LedgerState
from streams.budgets.model import Budget, Match, Threshold, matching
from streams.budgets.override import apply_override
from streams.budgets.periods import period_bounds
from streams.budgets.spend import apply_spend, current_state, threshold_alert_id
from streams.budgets.status import status_of

__all__ = [
    "FORECAST_WINDOW_S",
    "MIN_FORECAST_WINDOW_S",
    "Budget",
    "BurnRate",
    "LedgerState",
    "Match",
    "OverrideCommand",
    "Threshold",
    "apply_override",
    "apply_spend",
    "burn_rate",
    "current_state",
    "load_budgets",
    "matching",
    "parse_duration",
    "period_bounds",
    "status_of",
    "threshold_alert_id",
]
