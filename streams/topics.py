"""Topic names. One place, so the SDK docs, the worker and the tests agree."""

from __future__ import annotations

from typing import Final

USAGE: Final = "spendwatch.usage.v1"  # key = service, raw JSON usage events from the SDK
PRICED: Final = "spendwatch.priced.v1"  # key = service, PricedEvent JSON
DEADLETTER: Final = "spendwatch.deadletter.v1"  # key = None, {reason, original(base64), ...}
BUDGET_SPEND: Final = "spendwatch.budget-spend.v1"  # key = budget, one row per (event, budget)
ALERTS: Final = "spendwatch.alerts.v1"  # key = alert_id, Alert JSON
BUDGET_STATUS: Final = "spendwatch.budget-status.v1"  # key = budget, BudgetStatus JSON
CONTROL: Final = "spendwatch.control.v1"  # key = budget, operator overrides

ALL: Final = (USAGE, PRICED, DEADLETTER, BUDGET_SPEND, ALERTS, BUDGET_STATUS, CONTROL)

# Per-topic settings used when spendwatch creates the topics. The status topic keeps only the
# latest record per budget on a broker that compacts (Kafka); Tansu accepts and ignores it.
TOPIC_CONFIGS: Final[dict[str, dict[str, str]]] = {
    BUDGET_STATUS: {"cleanup.policy": "compact"},
}
