"""Topic names and layout. One place, so the SDK docs, the worker and the tests agree.

The worker creates every topic it uses at start-up (``streams.admin.ensure_topics``) with
these settings and checks those that exist; auto-created topics are never relied on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

USAGE: Final = "spendwatch.usage.v1"  # key = service, raw JSON usage events from the SDK
DEADLETTER: Final = "spendwatch.deadletter.v1"  # key = None, {reason, original(base64), ...}
BUDGET_DELTAS: Final = "spendwatch.budget-deltas.v1"  # key = budget, one per (budget, batch)
ALERTS: Final = "spendwatch.alerts.v1"  # key = what must meet (budget, service), Alert JSON
BUDGET_STATUS: Final = "spendwatch.budget-status.v1"  # key = budget, BudgetStatus JSON
CONTROL: Final = "spendwatch.control.v1"  # key = budget, operator overrides
META: Final = "spendwatch.meta.v1"  # the usage epoch (see streams.epoch)
PRICED: Final = "spendwatch.priced.v1"  # key = service, priced events (optional export)
# key = one fact (accepted/sent/dead), partitioned like ALERTS: the shared delivery log
DELIVERIES: Final = "spendwatch.alert-deliveries.v1"
DELIVERIES_RETENTION_MS: Final = 35 * 86400 * 1000  # the dispatcher's replay horizon


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """How spendwatch creates a topic and what it needs of one that exists.

    ``partitions`` is a fixed count, or ``None`` for the configured ``[kafka] partitions``.
    Topics with the same ``group`` must have the same partition count: the worker's Faust
    consumer assigns partition *i* of each of them to one worker, which is how an override
    on ``control`` reaches the worker that holds the budget's ledger (``budget-deltas``).
    """

    name: str
    partitions: int | None = None
    configs: dict[str, str] = field(default_factory=dict)
    group: str | None = None


_COMPACT: Final = {"cleanup.policy": "compact"}

SPECS: Final[tuple[TopicSpec, ...]] = (
    TopicSpec(USAGE),
    TopicSpec(DEADLETTER),
    TopicSpec(BUDGET_DELTAS, group="budgets"),
    TopicSpec(CONTROL, group="budgets"),
    TopicSpec(ALERTS, group="budgets"),
    # The shared delivery log (alerting/deliverylog/topic.py): partition p is read by the
    # worker that gains alerts partition p. Compaction keeps each fact once; the retention
    # bounds it (Tansu accepts and ignores both).
    TopicSpec(
        DELIVERIES,
        configs={"cleanup.policy": "compact,delete", "retention.ms": str(DELIVERIES_RETENTION_MS)},
        group="budgets",
    ),
    # Only the latest record per budget matters; Tansu accepts and ignores compaction.
    TopicSpec(BUDGET_STATUS, configs=_COMPACT),
    TopicSpec(META, partitions=1, configs={**_COMPACT, "retention.ms": "-1"}),
)
EXPORT_SPECS: Final[tuple[TopicSpec, ...]] = (TopicSpec(PRICED),)

ALL: Final = tuple(spec.name for spec in SPECS)
