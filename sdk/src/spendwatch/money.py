"""Exact money and name patterns, as the pipeline reads them.

The SDK may not import the pipeline, so these are the SDK's copies of ``schemas/money.py``
and of the budget scope patterns in ``streams/budgets/model.py``; ``tests/sdk/test_sdk_parity.py``
checks that both give the same answers.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Final

NANO_PER_USD: Final = 1_000_000_000
_NANO: Final = Decimal("1e-9")


def usd_to_nusd(value: Decimal | str | int) -> int:
    """USD to integer nano-USD, rounding half-to-even at the ninth decimal; ``ValueError``
    for anything that is not a finite decimal (floats are refused: convert with ``str``)."""
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


def pattern_matches(patterns: tuple[str, ...], value: object) -> bool:
    """``value`` equals one pattern, or starts with the prefix of a pattern ending in ``*``."""
    if not isinstance(value, str):
        return False
    return any(value.startswith(p[:-1]) if p.endswith("*") else value == p for p in patterns)
