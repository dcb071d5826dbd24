"""Display of figures shared by the console and the reports (exact: integers and Decimal).

Money is integer nano-USD until it is shown; ratios are computed from integers with
``Decimal`` and rounded half-to-even, so a test can recompute every shown figure from SQL.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Final

from schemas.money import format_usd

_TEN_USD_NUSD: Final = 10_000_000_000
NONE_SHOWN: Final = "\u2014"  # an em dash: a ratio without a denominator


def usd(nusd: int) -> str:
    """``$1,234.57`` from $10 up, ``$0.0421`` (four places) below: small spend stays
    readable."""
    return format_usd(nusd, 2 if abs(nusd) >= _TEN_USD_NUSD else 4)


def per_unit_nusd(cost_nusd: int, units: int) -> int | None:
    """Cost per unit in nano-USD (half-to-even); None for no units."""
    if units <= 0:
        return None
    return int((Decimal(cost_nusd) / units).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def per_unit(cost_nusd: int, units: int) -> str:
    """Cost per unit for display (``$0.0042``), or an em dash for no units."""
    value = per_unit_nusd(cost_nusd, units)
    return NONE_SHOWN if value is None else usd(value)


def percent(part: int, whole: int, places: int = 1, *, floor: bool = False) -> str:
    """``part / whole`` in percent, half-to-even (``"12.5%"``), or floored (a budget at
    49.96 % shows 49.9 %, not a threshold it has not crossed); an em dash when whole is 0."""
    if whole <= 0:
        return NONE_SHOWN
    value = (Decimal(part) * 100 / Decimal(whole)).quantize(
        Decimal(1).scaleb(-places), rounding=ROUND_FLOOR if floor else ROUND_HALF_EVEN
    )
    return f"{value}%"


def change(current_nusd: int, previous_nusd: int) -> str:
    """Change against the previous period: ``+12.5%``, ``-3.0%``, ``new`` (nothing before),
    ``0.0%``."""
    if previous_nusd == 0:
        return "new" if current_nusd else "0.0%"
    value = percent(current_nusd - previous_nusd, previous_nusd)
    return value if value.startswith("-") else f"+{value}"
