"""Parity: cached integer pricing == genai-prices ``calc_price`` rounded half-even to nano-USD.

The reference maps the event onto ``genai_prices.Usage`` the documented way: OpenTelemetry
input_tokens (cached included) -> input_tokens, cache reads/writes -> cache_read_tokens /
cache_write_tokens, output_tokens (reasoning included) -> output_tokens, reasoning_tokens ->
output_reasoning_tokens.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
from genai_prices import Usage, calc_price
from genai_prices.data_snapshot import get_snapshot

from schemas.events import parse_ts
from streams.pricing import CATALOG, ModelPrices, Pricer


def to_nusd(usd: Decimal) -> int:
    return int(usd.quantize(Decimal("1e-9"), rounding=ROUND_HALF_EVEN).scaleb(9))


def reference_nusd(provider: str | None, model: str, ts: str, tokens: dict[str, int]) -> int:
    usage = Usage(
        input_tokens=tokens.get("input_tokens", 0),
        output_tokens=tokens.get("output_tokens", 0),
        cache_read_tokens=tokens.get("cache_read_tokens", 0),
        cache_write_tokens=tokens.get("cache_write_tokens", 0),
        output_reasoning_tokens=tokens.get("reasoning_tokens", 0),
    )
    calc = calc_price(usage, model, provider_id=provider, genai_request_timestamp=parse_ts(ts))
    return to_nusd(calc.total_price)


def make_event(provider: str | None, model: str, ts: str, tokens: dict[str, int]) -> dict[str, Any]:
    event: dict[str, Any] = {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "ts": ts,
        "service": "svc",
        "operation": "chat",
        "status": "ok",
        "model": model,
        **tokens,
    }
    if provider is not None:
        event["provider"] = provider
    return event


T = "2025-10-01T09:30:00Z"
CASES: list[tuple[str | None, str, str, dict[str, int]]] = [
    # OpenAI: plain, cached read, reasoning (priced inside output), price change (o3)
    ("openai", "gpt-4o", T, {"input_tokens": 1234, "output_tokens": 567}),
    (
        "openai",
        "gpt-4o-mini",
        T,
        {"input_tokens": 10_001, "cache_read_tokens": 9_999, "output_tokens": 3},
    ),
    (
        "openai",
        "gpt-5",
        T,
        {"input_tokens": 777, "output_tokens": 9_000, "reasoning_tokens": 8_500},
    ),
    (
        "openai",
        "o4-mini",
        T,
        {"input_tokens": 3, "cache_read_tokens": 1, "output_tokens": 7, "reasoning_tokens": 5},
    ),
    ("openai", "o3", "2025-06-09T18:00:00Z", {"input_tokens": 50_000, "output_tokens": 20_000}),
    ("openai", "o3", "2025-06-10T06:00:00Z", {"input_tokens": 50_000, "output_tokens": 20_000}),
    # Anthropic: cache write and read, dated alias, provider inferred, tiered model
    (
        "anthropic",
        "claude-sonnet-4-20250514",
        T,
        {
            "input_tokens": 30_000,
            "cache_read_tokens": 20_000,
            "cache_write_tokens": 5_000,
            "output_tokens": 900,
        },
    ),
    (
        "anthropic",
        "claude-3-5-haiku-latest",
        T,
        {"input_tokens": 1, "cache_write_tokens": 1, "output_tokens": 1},
    ),
    (
        "anthropic",
        "claude-opus-4-1",
        T,
        {"input_tokens": 99_999, "cache_read_tokens": 12_345, "output_tokens": 4_321},
    ),
    (
        None,
        "claude-3-7-sonnet-latest",
        T,
        {"input_tokens": 2_000, "cache_write_tokens": 2_000, "output_tokens": 10},
    ),
    (
        "anthropic",
        "claude-sonnet-4-5",
        T,
        {
            "input_tokens": 250_000,
            "cache_read_tokens": 100_000,
            "cache_write_tokens": 50_000,
            "output_tokens": 2_000,
        },
    ),
    (
        "anthropic",
        "claude-sonnet-4-5",
        T,
        {
            "input_tokens": 200_000,
            "cache_read_tokens": 100_000,
            "cache_write_tokens": 50_000,
            "output_tokens": 2_000,
        },
    ),
    # Google: tiered Gemini under, at and over the threshold, cached read, audio-priced model
    (
        "google",
        "gemini-2.5-pro",
        T,
        {"input_tokens": 199_999, "output_tokens": 8_000, "reasoning_tokens": 6_000},
    ),
    (
        "google",
        "gemini-2.5-pro",
        T,
        {"input_tokens": 200_000, "cache_read_tokens": 150_000, "output_tokens": 1},
    ),
    (
        "google",
        "gemini-2.5-pro",
        T,
        {"input_tokens": 200_001, "cache_read_tokens": 150_000, "output_tokens": 1},
    ),
    ("google", "gemini-1.5-pro", T, {"input_tokens": 128_001, "output_tokens": 5_000}),
    (
        "google",
        "gemini-2.5-flash",
        T,
        {"input_tokens": 40_000, "cache_read_tokens": 39_000, "output_tokens": 100},
    ),
    ("gcp.gemini", "gemini-2.0-flash", T, {"input_tokens": 1_000_003, "output_tokens": 17}),
    # Others: DeepSeek off-peak and peak, Mistral, xAI, Groq, Bedrock, Azure, Perplexity fees
    (
        "deepseek",
        "deepseek-chat",
        "2025-09-01T17:00:00Z",
        {"input_tokens": 123_457, "cache_read_tokens": 100_000, "output_tokens": 999},
    ),
    (
        "deepseek",
        "deepseek-chat",
        "2025-09-01T08:00:00+05:00",
        {"input_tokens": 123_457, "cache_read_tokens": 100_000, "output_tokens": 999},
    ),
    ("mistral", "mistral-large-latest", T, {"input_tokens": 5_555, "output_tokens": 4_444}),
    ("x-ai", "grok-3", T, {"input_tokens": 8_000, "cache_read_tokens": 7_999, "output_tokens": 1}),
    ("groq", "llama-3.3-70b-versatile", T, {"input_tokens": 333, "output_tokens": 333}),
    (
        "aws",
        "amazon.nova-pro-v1:0",
        T,
        {"input_tokens": 1_000, "cache_read_tokens": 300, "output_tokens": 77},
    ),
    ("azure", "gpt-4o", T, {"input_tokens": 10, "output_tokens": 10}),
    ("perplexity", "sonar", T, {"input_tokens": 100, "output_tokens": 200}),
    (
        "perplexity",
        "sonar-deep-research",
        T,
        {"input_tokens": 1, "output_tokens": 300, "reasoning_tokens": 299},
    ),
    ("openai", "gpt-4o", T, {"input_tokens": 0, "output_tokens": 0}),
]


@pytest.fixture(scope="module")
def pricer() -> Pricer:
    return Pricer()


@pytest.mark.parametrize(("provider", "model", "ts", "tokens"), CASES)
def test_named_cases_match_calc_price(
    pricer: Pricer, provider: str | None, model: str, ts: str, tokens: dict[str, int]
) -> None:
    result = pricer.price(make_event(provider, model, ts, tokens))
    assert result.source == CATALOG
    assert result.cost_nusd == reference_nusd(provider, model, ts, tokens)


def random_tokens(rng: random.Random) -> dict[str, int]:
    inp = rng.choice([0, 1, rng.randrange(2_000), rng.randrange(400_000), rng.randrange(10**8)])
    cache_read = rng.choice([0, rng.randrange(inp + 1)])
    cache_write = rng.choice([0, rng.randrange(inp - cache_read + 1)])
    out = rng.choice([0, 1, rng.randrange(20_000), rng.randrange(10**8)])
    reasoning = rng.choice([0, rng.randrange(out + 1)])
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "reasoning_tokens": reasoning,
    }


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-5"),  # tiered, with cache write
        ("google", "gemini-2.5-pro"),  # tiered
        ("deepseek", "deepseek-chat"),  # time-of-day prices
        ("openai", "o3"),  # start-date price change
        ("perplexity", "sonar-reasoning-pro"),  # per-request fee
    ],
)
def test_many_token_counts_match_calc_price(pricer: Pricer, provider: str, model: str) -> None:
    rng = random.Random(f"{provider}/{model}")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for _ in range(300):
        ts = (start + timedelta(seconds=rng.randrange(365 * 86_400))).isoformat()
        tokens = random_tokens(rng)
        got = pricer.price(make_event(provider, model, ts, tokens)).cost_nusd
        assert got == reference_nusd(provider, model, ts, tokens), (ts, tokens)


def test_every_bundled_model_matches_model_calc_price() -> None:
    """Whole catalog, every price shape it has, at random dates (some models' ids are not
    matched by their own patterns, so this goes through ModelInfo, not the name lookup)."""
    rng = random.Random(7)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    checked = 0
    for provider in get_snapshot().providers:
        for model in provider.models:
            prices = ModelPrices(provider.id, model)
            for _ in range(2):
                at = start + timedelta(seconds=rng.randrange(3 * 365 * 86_400))
                t = random_tokens(rng)
                compiled = prices.compiled_for(at.isoformat())
                got = compiled.rates_for(t["input_tokens"]).cost_nusd(
                    t["input_tokens"],
                    t["output_tokens"],
                    t["cache_read_tokens"],
                    t["cache_write_tokens"],
                    t["reasoning_tokens"],
                )
                usage = Usage(
                    input_tokens=t["input_tokens"],
                    output_tokens=t["output_tokens"],
                    cache_read_tokens=t["cache_read_tokens"],
                    cache_write_tokens=t["cache_write_tokens"],
                    output_reasoning_tokens=t["reasoning_tokens"],
                )
                expected = model.calc_price(usage, provider, genai_request_timestamp=at)
                assert got == to_nusd(expected.total_price), (provider.id, model.id, at, t)
                checked += 1
    assert checked == 2 * sum(len(p.models) for p in get_snapshot().providers)
