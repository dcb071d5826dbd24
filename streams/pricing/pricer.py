"""Price validated usage events into integer nano-USD.

Rules, in order:
1. ``cost_usd`` on the event wins -> ``supplied``.
2. An event with any token field is an LLM call -> genai-prices catalog (``catalog``), for its
   ``provider`` (absent: genai-prices infers it from the model) and ``model`` at its ``ts``.
3. Else an event with a ``unit`` -> the user's ``[[prices]]`` table (``price_table``);
   ``quantity`` defaults to ``"1"``.
4. Else an event with a ``model`` (no tokens, e.g. a failed call) -> catalog, usually 0.
5. Else ``unpriced``.
A ``cache_hit`` event costs 0 and records the price in ``avoided_cost_nusd``. A call with
``status: "error"`` and no tokens costs 0, even on a model with a per-request fee.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from schemas.money import usd_to_nusd
from streams.pricing.catalog import Catalog
from streams.pricing.rates import TOKEN_FIELDS
from streams.pricing.result import CATALOG, PRICE_TABLE, SUPPLIED, PriceResult
from streams.pricing.table import PriceTable

log = logging.getLogger(__name__)
_TOKEN_FIELDS: Final = frozenset(TOKEN_FIELDS)


class Pricer:
    """Prices events; holds the compiled-price caches, so build one per worker and reuse it.

    Not thread-safe (caches are plain dicts); one per event loop.
    """

    def __init__(self, table: PriceTable | None = None) -> None:
        self.table = table if table is not None else PriceTable()
        self.catalog = Catalog()

    def price(self, event: dict[str, Any]) -> PriceResult:
        """Price one event as returned by ``schemas.events.validate_event``.

        Never raises for a valid event: anything that cannot be priced comes back ``unpriced``
        with its reason (and an unexpected failure is logged, not raised), so no event is lost.
        """
        try:
            return self._price(event)
        except Exception as exc:  # a bug or an invalid event must not stop the stream
            log.exception("pricing failed for event %s", event.get("event_id"))
            return PriceResult.unpriced(f"pricing failed: {type(exc).__name__}: {exc}"[:300])

    def _price(self, event: dict[str, Any]) -> PriceResult:
        cache_hit = event.get("cache_hit", False) is True
        supplied = event.get("cost_usd")
        if supplied is not None:
            return PriceResult.priced(usd_to_nusd(supplied), SUPPLIED, cache_hit=cache_hit)
        model = event.get("model")
        unit = event.get("unit")
        has_tokens = not _TOKEN_FIELDS.isdisjoint(event)
        if model is not None and (has_tokens or unit is None):
            return self._price_llm(event, model, cache_hit)
        if unit is not None:
            return self._price_unit(event, unit, cache_hit)
        if has_tokens:
            return PriceResult.unpriced("token counts without a model")
        return PriceResult.unpriced("no cost_usd, model or unit to price")

    def _price_llm(self, event: dict[str, Any], model: str, cache_hit: bool) -> PriceResult:
        prices = self.catalog.lookup(event.get("provider"), model)
        if isinstance(prices, str):
            return PriceResult.unpriced(prices)
        get = event.get
        inp = get("input_tokens", 0)
        out = get("output_tokens", 0)
        cache_read = get("cache_read_tokens", 0)
        cache_write = get("cache_write_tokens", 0)
        reasoning = get("reasoning_tokens", 0)
        if cache_read + cache_write > inp or reasoning > out:
            # genai-prices refuses such usage too; validate_event rejects it before us.
            return PriceResult.unpriced("inconsistent token counts for the catalog price")
        if not (inp or out) and get("status") == "error":
            return PriceResult.priced(0, CATALOG, cache_hit=cache_hit)
        ts = event["ts"]
        try:
            compiled = prices.compiled_for(ts)
        except ValueError as exc:  # a bad timestamp, or a period genai-prices cannot price
            return PriceResult.unpriced(f"cannot price {prices.name} at {ts!r}: {exc}"[:300])
        nusd = compiled.rates_for(inp).cost_nusd(inp, out, cache_read, cache_write, reasoning)
        return PriceResult.priced(nusd, CATALOG, cache_hit=cache_hit)

    def _price_unit(self, event: dict[str, Any], unit: str, cache_hit: bool) -> PriceResult:
        provider = event.get("provider")
        service = event.get("service")
        entry = self.table.find(unit, provider, service)
        if entry is None:
            if provider is not None:
                return PriceResult.unpriced(f"no price for unit '{unit}' of provider '{provider}'")
            return PriceResult.unpriced(f"no price for unit '{unit}' of service '{service}'")
        nusd = entry.cost_nusd(event.get("quantity", "1"))
        return PriceResult.priced(nusd, PRICE_TABLE, cache_hit=cache_hit)
