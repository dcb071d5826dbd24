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
from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

from genai_prices import data_snapshot

from schemas.events import UsageEvent, has_tokens
from schemas.money import usd_to_nusd
from streams.pricing.catalog import MAX_CACHED_MODELS, Catalog
from streams.pricing.result import CATALOG, PRICE_TABLE, SUPPLIED, PriceResult
from streams.pricing.table import PriceTable

log = logging.getLogger(__name__)
_FIELDS = frozenset(UsageEvent.__struct_fields__)


class Pricer:
    """Prices events; holds the compiled-price caches, so build one per worker and reuse it.

    Not thread-safe (caches are plain dicts); one per event loop.
    """

    def __init__(self, table: PriceTable | None = None) -> None:
        self.table = table if table is not None else PriceTable()
        self.catalog = Catalog()
        # (provider, model) -> the catalog's answer, for genai-prices' current data snapshot.
        self._models: dict[tuple[str | None, str], Any] = {}
        self._snapshot: object = None

    def refresh(self) -> None:
        """Drop cached catalog answers if genai-prices' data changed (``UpdatePrices``)."""
        snapshot = data_snapshot.get_snapshot()
        if snapshot is not self._snapshot:
            self._snapshot = snapshot
            self._models.clear()

    def price(self, event: UsageEvent | Mapping[str, Any]) -> PriceResult:
        """Price one valid event: a :class:`UsageEvent`, or the dict ``validate_event``
        returns.

        Never raises for a valid event: anything that cannot be priced comes back ``unpriced``
        with its reason (and an unexpected failure is logged, not raised), so no event is lost.
        """
        try:
            if not isinstance(event, UsageEvent):
                # A struct's constructor does not validate: a dict prices as it is.
                event = UsageEvent(**{k: v for k, v in event.items() if k in _FIELDS})
            return self._price(event)
        except Exception as exc:  # a bug or an invalid event must not stop the stream
            log.exception("pricing failed for event %s", getattr(event, "event_id", "?"))
            return PriceResult.unpriced(f"pricing failed: {type(exc).__name__}: {exc}"[:300])

    def price_llm_fast(self, event: UsageEvent) -> int | None:
        """The cost of a plain LLM call (tokens, a model with one price period, no supplied
        cost, not a cache hit, not an error without tokens) from the cached integer rates;
        ``None`` for anything else, which :meth:`price` handles. The hot path's fast lane:
        the same rates and rounding as :meth:`price`, without its objects."""
        model = event.model
        if not model or event.cost_usd or event.cache_hit is True:
            return None
        if data_snapshot.get_snapshot() is not self._snapshot:
            self.refresh()
        prices = self._models.get((event.provider or None, model))
        if prices is None or isinstance(prices, str):
            return None
        compiled = prices.fixed
        if compiled is None:
            return None
        inp = event.input_tokens or 0
        out = event.output_tokens or 0
        if not (inp or out):
            return None
        cache_read = event.cache_read_tokens or 0
        cache_write = event.cache_write_tokens or 0
        reasoning = event.reasoning_tokens or 0
        r = (
            compiled.steps[bisect_left(compiled.starts, inp)]
            if compiled.starts
            else compiled.steps[0]
        )
        q, rem = divmod(
            r.const
            + r.input * inp
            + r.output * out
            + r.cache_read * cache_read
            + r.cache_write * cache_write
            + r.reasoning * reasoning,
            r.den,
        )
        twice = 2 * rem
        if twice > r.den or (twice == r.den and q & 1):
            q += 1
        return q

    def _price(self, event: UsageEvent) -> PriceResult:
        cache_hit = event.cache_hit is True
        if event.cost_usd:
            return PriceResult.priced(usd_to_nusd(event.cost_usd), SUPPLIED, cache_hit=cache_hit)
        model = event.model
        unit = event.unit
        tokens = has_tokens(event)
        if model and (tokens or not unit):
            return self._price_llm(event, model, cache_hit)
        if unit:
            return self._price_unit(event, unit, cache_hit)
        if tokens:
            return PriceResult.unpriced("token counts without a model")
        return PriceResult.unpriced("no cost_usd, model or unit to price")

    def _price_llm(self, event: UsageEvent, model: str, cache_hit: bool) -> PriceResult:
        if data_snapshot.get_snapshot() is not self._snapshot:
            self.refresh()
        key = (event.provider or None, model)
        prices = self._models.get(key)
        if prices is None:
            if len(self._models) >= MAX_CACHED_MODELS:
                self._models.clear()
            prices = self._models[key] = self.catalog.lookup(*key)
        if isinstance(prices, str):
            return PriceResult.unpriced(prices)
        inp = event.input_tokens or 0
        out = event.output_tokens or 0
        cache_read = event.cache_read_tokens or 0
        cache_write = event.cache_write_tokens or 0
        reasoning = event.reasoning_tokens or 0
        if cache_read + cache_write > inp or reasoning > out:
            # genai-prices refuses such usage too; decoding rejects it before us.
            return PriceResult.unpriced("inconsistent token counts for the catalog price")
        if not (inp or out) and event.status == "error":
            return PriceResult.priced(0, CATALOG, cache_hit=cache_hit)
        ts = event.ts
        try:
            compiled = prices.compiled_for(ts)
        except ValueError as exc:  # a bad timestamp, or a period genai-prices cannot price
            return PriceResult.unpriced(f"cannot price {prices.name} at {ts!r}: {exc}"[:300])
        nusd = compiled.rates_for(inp).cost_nusd(inp, out, cache_read, cache_write, reasoning)
        return PriceResult(0, nusd, CATALOG) if cache_hit else PriceResult(nusd, 0, CATALOG)

    def _price_unit(self, event: UsageEvent, unit: str, cache_hit: bool) -> PriceResult:
        provider = event.provider or None
        service = event.service
        entry = self.table.find(unit, provider, service)
        if entry is None:
            if provider is not None:
                return PriceResult.unpriced(f"no price for unit '{unit}' of provider '{provider}'")
            return PriceResult.unpriced(f"no price for unit '{unit}' of service '{service}'")
        nusd = entry.cost_nusd(event.quantity or "1")
        return PriceResult.priced(nusd, PRICE_TABLE, cache_hit=cache_hit)
