"""The outcome of pricing one event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

SUPPLIED: Final = "supplied"  # the event carried ``cost_usd``
CATALOG: Final = "catalog"  # LLM tokens priced from genai-prices
PRICE_TABLE: Final = "price_table"  # ``unit`` x ``quantity`` priced from ``[[prices]]``
UNPRICED: Final = "unpriced"  # no price could be found; cost 0 and ``unpriced_reason`` says why
SOURCES: Final = (SUPPLIED, CATALOG, PRICE_TABLE, UNPRICED)


@dataclass(frozen=True, slots=True)
class PriceResult:
    """Price of one usage event, in integer nano-USD.

    ``cost_nusd`` is what the call cost: 0 for a cache hit and 0 when unpriced.
    ``avoided_cost_nusd`` is, for a ``cache_hit`` event only, what the call would have cost.
    ``source`` is one of ``SOURCES``; ``unpriced_reason`` is set exactly when it is ``unpriced``.
    """

    cost_nusd: int
    avoided_cost_nusd: int
    source: str
    unpriced_reason: str | None = None

    @classmethod
    def priced(cls, nusd: int, source: str, *, cache_hit: bool) -> PriceResult:
        """A priced result: a cache hit moves the price from cost to avoided cost."""
        return cls(0, nusd, source) if cache_hit else cls(nusd, 0, source)

    @classmethod
    def unpriced(cls, reason: str) -> PriceResult:
        """An event with no price: cost 0, the reason kept for the unpriced alert."""
        return cls(0, 0, UNPRICED, reason)
