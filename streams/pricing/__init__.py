"""Pricing: usage events -> exact integer nano-USD.

LLM tokens are priced from genai-prices through cached integer rates (``catalog``/``rates``),
other metered units from the user's ``[[prices]]`` table (``table``); ``Pricer`` applies the
rules. See ``pricer`` for the order in which they apply.
"""

from streams.pricing.catalog import OTEL_PROVIDER_ALIASES, Catalog, ModelPrices
from streams.pricing.pricer import Pricer
from streams.pricing.rates import CompiledPrice, Rates, compile_model_price
from streams.pricing.result import (
    CATALOG,
    PRICE_TABLE,
    SOURCES,
    SUPPLIED,
    UNPRICED,
    PriceResult,
)
from streams.pricing.table import PriceTable, UnitPrice

__all__ = [
    "CATALOG",
    "OTEL_PROVIDER_ALIASES",
    "PRICE_TABLE",
    "SOURCES",
    "SUPPLIED",
    "UNPRICED",
    "Catalog",
    "CompiledPrice",
    "ModelPrices",
    "PriceResult",
    "PriceTable",
    "Pricer",
    "Rates",
    "UnitPrice",
    "compile_model_price",
]
