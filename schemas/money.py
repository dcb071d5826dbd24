"""Exact money: integer nano-USD (1e-9 USD) everywhere money moves; ``Decimal`` at the edges."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

NANO_PER_USD = 1_000_000_000
_NANO = Decimal("1e-9")


def usd_to_nusd(value: Decimal | str | int) -> int:
    """Convert a USD amount to integer nano-USD, rounding half-to-even at the ninth decimal.

    Raises ``ValueError`` for anything that is not a finite decimal number (floats are
    refused: they cannot carry money exactly).
    """
    if isinstance(value, float):
        raise ValueError("money must be a Decimal, int or decimal string, never a float")
    try:
        dec = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal number: {value!r}") from exc
    if not dec.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    return int(dec.quantize(_NANO, rounding=ROUND_HALF_EVEN).scaleb(9))


def nusd_to_usd(nusd: int) -> Decimal:
    """Integer nano-USD to an exact ``Decimal`` USD amount with nine decimals."""
    return Decimal(nusd).scaleb(-9).quantize(_NANO)


def format_usd(nusd: int, places: int = 2) -> str:
    """Human display, e.g. ``$1,234.57``; never used for arithmetic."""
    q = Decimal(1).scaleb(-places)
    return f"${nusd_to_usd(nusd).quantize(q, rounding=ROUND_HALF_EVEN):,}"


def usd_text(nusd: int) -> str:
    """Exact decimal USD for alert figures: at least two decimals, more when the amount has
    them (``"12.50"``, ``"0.000123"``); no sign of rounding, never a ``$``."""
    value = nusd_to_usd(nusd).normalize()
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        value = value.quantize(Decimal("0.01"))
    return format(value, "f")
