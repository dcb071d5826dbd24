"""What a report holds: exact figures (integer nano-USD), current period against the previous.

Built by :func:`streams.report.build.build_report`, rendered by :mod:`streams.report.render`
and charted by :mod:`streams.report.chart`. Pure values: rendering twice gives the same text.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.report.periods import ReportSpan


@dataclass(frozen=True, slots=True)
class Line:
    """Spend of one service, model, tag value or tier: now and in the previous period."""

    name: str
    cost_nusd: int
    calls: int
    previous_nusd: int = 0
    previous_calls: int = 0

    @property
    def delta_nusd(self) -> int:
        return self.cost_nusd - self.previous_nusd


@dataclass(frozen=True, slots=True)
class Mover:
    """A service or model whose spend changed most against the previous period."""

    dimension: str  # "service" | "model"
    line: Line


@dataclass(frozen=True, slots=True)
class BudgetUse:
    """A budget's spend in its own period as of the report's end (limit as configured), and
    its threshold alerts during the reported span."""

    name: str
    period: str
    spent_nusd: int
    limit_nusd: int
    alerts: int


@dataclass(frozen=True, slots=True)
class UnitCost:
    """Cost per unit: per call, or per distinct value of a unit tag (a lead, a call id)."""

    unit: str
    units: int
    cost_nusd: int
    previous_units: int = 0
    previous_nusd: int = 0


@dataclass(frozen=True, slots=True)
class Report:
    span: ReportSpan
    tag: str
    total: Line
    by_service: tuple[Line, ...]
    by_model: tuple[Line, ...]
    by_tag: tuple[Line, ...]
    movers: tuple[Mover, ...]
    budgets: tuple[BudgetUse, ...]
    cache_hits: int
    avoided_nusd: int
    previous_cache_hits: int
    previous_avoided_nusd: int
    tiers: tuple[Line, ...]
    units: tuple[UnitCost, ...]
    # (bucket label, {service: cost}) in time order: hours of a day, days of a week or month
    series: tuple[tuple[str, tuple[tuple[str, int], ...]], ...]
    bucket: str  # "hour" | "day"

    @property
    def title(self) -> str:
        return f"spendwatch {self.span.period}ly report: {self.span.current.label}".replace(
            "dayly", "daily"
        )
