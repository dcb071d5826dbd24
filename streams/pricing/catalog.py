"""LLM prices from genai-prices, resolved once per (provider, model, price period).

``calc_price`` costs ~90-140 µs a call (model lookup, unit validation, Decimal maths). A stream
prices the same few models over and over, so ``Catalog`` looks each (provider, model) up once,
compiles each of its price periods into integer rates once (``rates.compile_model_price``) and
then prices an event with a handful of int multiplications.

Price periods follow ``ModelInfo.get_prices`` exactly: a model has one ``ModelPrice`` or a list
of ``ConditionalPrice``; the last one whose constraint is active at the request time wins, the
first one when none is. Start-date constraints depend on the UTC date only, so such models cache
the chosen period per UTC date; time-of-day constraints (off-peak prices) are evaluated per event
with genai-prices' own ``active``. Price variants apply only with a price context, which usage
events do not carry, so the standard prices are used, as ``calc_price`` does without one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Final

from genai_prices import data_snapshot
from genai_prices.types import ConditionalPrice, ModelInfo, ModelPrice, StartDateConstraint

from schemas.events import parse_ts
from streams.pricing.rates import CompiledPrice, compile_model_price

# OpenTelemetry ``gen_ai.provider.name`` values genai-prices does not resolve (or resolves to the
# wrong vendor: "azure.ai.openai" contains "openai") mapped to genai-prices provider ids. Others
# ("openai", "anthropic", "gcp.gemini", "gcp.vertex_ai", "aws.bedrock", "mistral_ai", ...) are
# matched by genai-prices itself.
OTEL_PROVIDER_ALIASES: Final = {
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "gcp.gen_ai": "google",
    "x_ai": "x-ai",
}
# Unknown (provider, model) pairs are cached too; a stream of ever-new names must not grow the
# cache without bound, so it is emptied when it reaches this size.
MAX_CACHED_MODELS: Final = 4096


def utc_date(ts: str) -> date:
    """The UTC calendar date of an RFC 3339 timestamp; cheap for ``Z`` / ``+00:00`` stamps."""
    if ts.endswith(("Z", "+00:00")):
        return date(int(ts[0:4]), int(ts[5:7]), int(ts[8:10]))
    return parse_ts(ts).date()


class ModelPrices:
    """Compiled prices of one catalog model, per price period.

    Built once per model; ``compiled_for(ts)`` is called per event and raises ``ValueError``
    if genai-prices itself cannot price the model in that period.
    """

    __slots__ = ("_by_date", "_by_index", "_conditions", "_fixed", "_needs_time", "name")

    def __init__(self, provider_id: str, model: ModelInfo) -> None:
        self.name = f"{provider_id}/{model.id}"
        self._fixed: CompiledPrice | None = None
        self._conditions: list[ConditionalPrice] = []
        self._by_index: dict[int, CompiledPrice] = {}
        self._by_date: dict[date, CompiledPrice] = {}
        if isinstance(model.prices, ModelPrice):
            self._fixed = compile_model_price(model.prices)
        else:
            self._conditions = list(model.prices)
        self._needs_time = any(
            c.constraint is not None and not isinstance(c.constraint, StartDateConstraint)
            for c in self._conditions
        )

    @property
    def fixed(self) -> CompiledPrice | None:
        """The one compiled price of a model without price periods (None when it has them)."""
        return self._fixed

    def compiled_for(self, ts: str) -> CompiledPrice:
        """The compiled price in force at event time ``ts`` (RFC 3339 string)."""
        if self._fixed is not None:
            return self._fixed
        if self._needs_time:
            return self._compiled_index(self._active_index(parse_ts(ts)))
        day = utc_date(ts)
        compiled = self._by_date.get(day)
        if compiled is None:
            # Start-date constraints compare the UTC date only: any instant of the day will do.
            compiled = self._compiled_index(self._active_index(datetime.combine(day, time(), UTC)))
            self._by_date[day] = compiled
        return compiled

    def _active_index(self, at: datetime) -> int:
        # ModelInfo.get_prices: last active conditional price wins, else the first one.
        for index in range(len(self._conditions) - 1, -1, -1):
            constraint = self._conditions[index].constraint
            if constraint is None or constraint.active(at):
                return index
        return 0

    def _compiled_index(self, index: int) -> CompiledPrice:
        compiled = self._by_index.get(index)
        if compiled is None:
            compiled = compile_model_price(self._conditions[index].prices)
            self._by_index[index] = compiled
        return compiled


class Catalog:
    """Finds and caches ``ModelPrices`` per (provider, model) as reported on events.

    Bound to genai-prices' current data snapshot; if that changes (``UpdatePrices``), every
    cached price is dropped and looked up again.
    """

    def __init__(self) -> None:
        self._snapshot = data_snapshot.get_snapshot()
        self._entries: dict[tuple[str | None, str], ModelPrices | str] = {}
        self._models: dict[tuple[str, str], ModelPrices] = {}

    def lookup(self, provider: str | None, model: str) -> ModelPrices | str:
        """The model's prices, or a reason string naming provider and model when unknown."""
        snapshot = data_snapshot.get_snapshot()
        if snapshot is not self._snapshot:
            self._snapshot = snapshot
            self._entries.clear()
            self._models.clear()
        key = (provider, model)
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= MAX_CACHED_MODELS:
                self._entries.clear()
            entry = self._entries[key] = self._resolve(provider, model)
        return entry

    def _resolve(self, provider: str | None, model: str) -> ModelPrices | str:
        provider_id = OTEL_PROVIDER_ALIASES.get(provider.lower(), provider) if provider else None
        try:
            found_provider, info = self._snapshot.find_provider_model(
                model, None, provider_id, None
            )
        except LookupError:
            if provider is None:
                return f"unknown model '{model}' (no provider given, none matches it)"
            try:
                self._snapshot.find_provider(model.lower(), provider_id, None)
            except LookupError:
                return f"unknown provider '{provider}' (model '{model}')"
            return f"unknown model '{model}' of provider '{provider}'"
        # Aliases of one model (dated names, provider spellings) share compiled prices.
        model_key = (found_provider.id, info.id)
        prices = self._models.get(model_key)
        if prices is None:
            try:
                prices = ModelPrices(found_provider.id, info)
            except ValueError as exc:
                return f"genai-prices cannot price model '{model}' of provider '{provider}': {exc}"
            self._models[model_key] = prices
        return prices
