"""Percent text and the usage analysis shared by the budget alerts.

Figures are strings: percent floored to two decimals (``"99.99"`` until the limit is really
reached); money as :func:`schemas.money.usd_text` writes it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Final

from schemas.alerts import Contributor
from streams.budgets.ledger import OTHER, LedgerState

TOP_PER_DIMENSION: Final = 5
TOP_PER_TAG: Final = 3


def percent_text(spent_nusd: int, limit_nusd: int) -> str:
    """``spent / limit`` in percent, floored to two decimals."""
    if limit_nusd <= 0:
        return "0.00"
    hundredths = spent_nusd * 10_000 // limit_nusd
    return format(Decimal(hundredths).scaleb(-2).quantize(Decimal("0.01")), "f")


def fraction_text(spent_nusd: int, limit_nusd: int, places: int = 6) -> str:
    """``spent / limit`` as a decimal fraction string, floored to ``places`` decimals."""
    if limit_nusd <= 0:
        return "0"
    scale = 10**places
    return format(Decimal(spent_nusd * scale // limit_nusd).scaleb(-places), "f")


def share_text(part_nusd: int, total_nusd: int) -> str:
    """``part / total`` as a fraction with four decimals (``"0.6200"``)."""
    if total_nusd <= 0:
        return "0.0000"
    return format(
        Decimal(part_nusd * 10_000 // total_nusd).scaleb(-4).quantize(Decimal("0.0001")), "f"
    )


def local_text(ts: datetime, tz: object) -> str:
    """``2024-03-10 00:00 EST``: a reset time as the budget's owner reads it."""
    local = ts.astimezone(tz)  # type: ignore[arg-type]
    return local.strftime("%Y-%m-%d %H:%M %Z")


def usage_analysis(state: LedgerState) -> tuple[Contributor, ...]:
    """Top services, models, providers and tag values of the period, with cost and share.

    Ordered by dimension (service, model, provider, then tags by key) and by cost within each;
    ``(other)`` (names past the tally bound) is listed when it is among the top.
    """
    total = state.spent_nusd
    result: list[Contributor] = []

    def top(dimension: str, limit: int) -> None:
        names = state.tallies.get(dimension) or {}
        ranked = sorted(names.items(), key=lambda kv: (-kv[1], kv[0] == OTHER, kv[0]))
        for name, cost in ranked[:limit]:
            if cost > 0:
                result.append(Contributor(dimension, name, cost, share_text(cost, total)))

    top("service", TOP_PER_DIMENSION)
    top("model", TOP_PER_DIMENSION)
    top("provider", TOP_PER_TAG)
    for dimension in sorted(d for d in state.tallies if d.startswith("tag:")):
        top(dimension, TOP_PER_TAG)
    return tuple(result)
