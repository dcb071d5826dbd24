"""Compile one genai-prices ``ModelPrice`` into exact integer rates per token field.

genai-prices prices a call by splitting the reported usage into *leaf* counts over the units
the model has a price for (``genai_prices.decompose.compute_leaf_values``): a unit's leaf count
is its reported count minus the leaf counts of its priced, more specific units. So for a model
pricing ``input_mtok``, ``cache_read_mtok`` and ``output_mtok``, uncached input is
``input_tokens - cache_read_tokens`` and cache writes (not priced separately) stay in the input
price; reasoning tokens stay in ``output_mtok`` unless the model prices ``output_reasoning_mtok``.

Every leaf count is a fixed linear combination of the five token fields of a usage event, so the
whole price is ``const + sum(rate[f] * tokens[f])`` over a common integer denominator, where
``const`` is the per-request fee (``requests_kcount``). The one non-linearity, tiered prices, is
a step function of ``input_tokens``; we precompute one rate vector per step.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from math import gcd, lcm
from typing import Final

from genai_prices.data_units import unit_data
from genai_prices.decompose import is_descendant_or_self
from genai_prices.types import ModelPrice, TieredPrices
from genai_prices.units import UnitDef, UnitRegistry
from genai_prices.validation import validate_priced_units

from schemas.events import TOKEN_FIELDS
from schemas.money import NANO_PER_USD
from streams.pricing.exact import decimal_places, round_half_even_div, scaled_int

# The genai-prices usage key each of the event's token fields (``TOKEN_FIELDS``, OpenTelemetry
# GenAI meaning) is reported as. input_tokens includes cache reads and writes and output_tokens
# includes reasoning, which is exactly genai-prices' hierarchy (cache_read_tokens is a
# descendant of input_tokens, output_reasoning_tokens of output_tokens), so the counts map one
# to one, never subtracted here.
USAGE_KEY_FOR_FIELD: Final[Mapping[str, str]] = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_tokens": "cache_read_tokens",
    "cache_write_tokens": "cache_write_tokens",
    "reasoning_tokens": "output_reasoning_tokens",
}
_FIELD_FOR_USAGE_KEY: Final = {key: field for field, key in USAGE_KEY_FOR_FIELD.items()}

Vector = dict[str, int]  # token field -> coefficient


@cache
def _registry() -> UnitRegistry:
    # Built from the same bundled unit data genai-prices builds its own registry from.
    return UnitRegistry(unit_data)


@dataclass(frozen=True, slots=True)
class Rates:
    """Integer rates for one price step: ``nusd = half_even((const + sum(rate*n)) / den)``."""

    const: int
    input: int
    output: int
    cache_read: int
    cache_write: int
    reasoning: int
    den: int

    def cost_nusd(
        self, inp: int, out: int, cache_read: int, cache_write: int, reasoning: int
    ) -> int:
        """Cost of one call in nano-USD, rounded once, half to even."""
        numerator = (
            self.const
            + self.input * inp
            + self.output * out
            + self.cache_read * cache_read
            + self.cache_write * cache_write
            + self.reasoning * reasoning
        )
        return round_half_even_div(numerator, self.den)


@dataclass(frozen=True, slots=True)
class CompiledPrice:
    """A model's price for one period: rate vectors per tier step of ``input_tokens``.

    ``starts`` are the distinct tier thresholds, ascending; ``steps[j]`` applies when exactly
    ``j`` thresholds are strictly below ``input_tokens`` (genai-prices: a tier applies when
    ``input_tokens > tier.start``). Untiered models have no starts and one step.
    """

    starts: tuple[int, ...]
    steps: tuple[Rates, ...]

    def rates_for(self, input_tokens: int) -> Rates:
        """The rates that apply to a call with ``input_tokens`` input tokens."""
        if not self.starts:
            return self.steps[0]
        return self.steps[bisect_left(self.starts, input_tokens)]


def _resolved_prices(model_price: ModelPrice) -> list[tuple[UnitDef, Decimal | TieredPrices]]:
    """The (unit, price) pairs genai-prices would use; unknown keys are skipped as it does."""
    registry = _registry()
    pairs: list[tuple[UnitDef, Decimal | TieredPrices]] = []
    for key, value in model_price.__dict__.items():
        if key.startswith("_") or value is None:
            continue
        try:
            unit = registry.unit_for_price_key(key)
        except KeyError:
            continue  # genai-prices warns and ignores price keys it does not know
        if not isinstance(value, Decimal | TieredPrices):
            raise ValueError(f"unsupported price value for {key}: {value!r}")
        pairs.append((unit, value))
    validate_priced_units(tuple(unit for unit, _ in pairs), registry)
    return pairs


def _leaf_vectors(units: list[UnitDef]) -> dict[str, Vector]:
    """Leaf count of each priced unit as a linear combination of the event's token fields.

    Mirrors ``genai_prices.decompose.compute_leaf_values``: most specific units first, each
    unit's count minus the leaf counts of its priced descendants. A unit the event does not
    report counts 0 (none of them has a reported descendant, so genai-prices infers 0 too).
    """
    ordered = sorted(units, key=lambda unit: (-len(unit.dimensions), unit.usage_key))
    leaves: dict[str, Vector] = {}
    for unit in ordered:
        field = _FIELD_FOR_USAGE_KEY.get(unit.usage_key)
        vector: Vector = {field: 1} if field else {}
        for other in ordered:
            if other is not unit and is_descendant_or_self(unit, other):
                for name, coef in leaves[other.usage_key].items():
                    vector[name] = vector.get(name, 0) - coef
        leaves[unit.usage_key] = vector
    return leaves


def _prices_in(value: Decimal | TieredPrices) -> Iterator[Decimal]:
    if isinstance(value, TieredPrices):
        yield value.base
        yield from (tier.price for tier in value.tiers)
    else:
        yield value


def _applicable(value: Decimal | TieredPrices, input_tokens: int) -> Decimal:
    """genai-prices' ``calc_unit_price`` tier rule: the highest tier whose start is exceeded."""
    if not isinstance(value, TieredPrices):
        return value
    for tier in reversed(value.tiers):
        if input_tokens > tier.start:
            return tier.price
    return value.base


def compile_model_price(model_price: ModelPrice) -> CompiledPrice:
    """Integer rates reproducing ``model_price.calc_price`` for any usage event, exactly.

    Raises ``ValueError`` when genai-prices itself would refuse the price (missing ancestor or
    join prices, invalid values) -- the caller reports such a model as unpriced.
    """
    pairs = _resolved_prices(model_price)
    token_units = [unit for unit, _ in pairs if unit.usage_key != "requests"]
    leaves = _leaf_vectors(token_units)

    places = max((decimal_places(p) for _, v in pairs for p in _prices_in(v)), default=0)
    per_lcm = lcm(*(unit.per for unit, _ in pairs)) if pairs else 1
    # nusd = sum(price * leaf / per) * 1e9 = sum(price*10^places * per_lcm/per * 1e9 * leaf) / den
    den = 10**places * per_lcm

    starts = tuple(
        sorted({t.start for _, v in pairs if isinstance(v, TieredPrices) for t in v.tiers})
    )
    # One representative input count per step: 0 below every threshold, start+1 just above one.
    representatives = (0, *(start + 1 for start in starts))
    steps = tuple(_step_rates(pairs, leaves, rep, places, per_lcm, den) for rep in representatives)
    return CompiledPrice(starts=starts, steps=steps)


def _step_rates(
    pairs: list[tuple[UnitDef, Decimal | TieredPrices]],
    leaves: dict[str, Vector],
    input_tokens: int,
    places: int,
    per_lcm: int,
    den: int,
) -> Rates:
    const = 0
    totals: Vector = dict.fromkeys(TOKEN_FIELDS, 0)
    for unit, value in pairs:
        weight = scaled_int(_applicable(value, input_tokens), places) * (per_lcm // unit.per)
        weight *= NANO_PER_USD
        if unit.usage_key == "requests":
            const += weight  # genai-prices counts every call as one request
            continue
        for name, coef in leaves[unit.usage_key].items():
            totals[name] += weight * coef
    # Reduce the fraction so the per-event arithmetic stays on small ints.
    divisor = gcd(den, const, *totals.values())
    return Rates(
        const=const // divisor,
        input=totals["input_tokens"] // divisor,
        output=totals["output_tokens"] // divisor,
        cache_read=totals["cache_read_tokens"] // divisor,
        cache_write=totals["cache_write_tokens"] // divisor,
        reasoning=totals["reasoning_tokens"] // divisor,
        den=den // divisor,
    )
