"""Exact integer arithmetic for money: scaled decimals and one half-even rounding."""

from __future__ import annotations

from decimal import Decimal


def round_half_even_div(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half-to-even to an integer.

    Both must be non-negative and ``denominator`` positive; the result is exact (no floats).
    """
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient & 1):
        quotient += 1
    return quotient


def decimal_places(value: Decimal) -> int:
    """How many decimal places ``value`` needs to be an integer (0 for whole numbers)."""
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        raise ValueError(f"not a finite decimal: {value!r}")
    return max(0, -exponent)


def scaled_int(value: Decimal, places: int) -> int:
    """``value * 10**places`` as an int; raises ``ValueError`` if that is not a whole number."""
    scaled = value.scaleb(places)
    as_int = int(scaled)
    if Decimal(as_int) != scaled:
        raise ValueError(f"{value} has more than {places} decimal places")
    return as_int


def quantity_nanos(quantity: str) -> int:
    """A non-negative decimal string (``"2.5"``) as an exact integer count of 1e-9 units.

    Raises ``ValueError`` for anything else or for more than nine decimal places.
    """
    whole, dot, frac = quantity.partition(".")
    if not whole.isdigit() or (dot and (not frac.isdigit() or len(frac) > 9)):
        raise ValueError(f"not a non-negative decimal with at most 9 places: {quantity!r}")
    return int(whole) * 1_000_000_000 + (int(frac.ljust(9, "0")) if frac else 0)
