"""Benchmark: cached integer pricing vs calling genai-prices ``calc_price`` per event.

Run: .venv/bin/python bench/bench_pricing.py [--events 20000] [--repeat 3]

Both pricers see the same realistic mix of validated events (LLM calls over a dozen models
incl. tiered, start-date and time-of-day priced ones, cache hits, supplied costs, metered units,
unknown models, failed calls) and must produce identical results; the figures are best-of-N.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from importlib.metadata import version
from typing import Any

import orjson
from genai_prices import Usage, calc_price

from schemas.events import Rejection, UsageEvent, decode_event, parse_ts
from streams.pricing import CATALOG, Pricer, PriceResult, PriceTable

MODELS = [  # (provider, model, weight)
    ("openai", "gpt-4o-mini", 20),
    ("openai", "gpt-4o", 10),
    ("openai", "gpt-5", 8),
    ("openai", "o3", 4),  # start-date price change
    ("anthropic", "claude-sonnet-4-5", 10),  # tiered
    ("anthropic", "claude-3-5-haiku-latest", 8),
    ("google", "gemini-2.5-pro", 6),  # tiered
    ("google", "gemini-2.5-flash", 8),
    ("deepseek", "deepseek-chat", 4),  # time-of-day
    ("mistral", "mistral-large-latest", 3),
    (None, "claude-3-7-sonnet-latest", 3),
    ("perplexity", "sonar", 2),  # per-request fee
    ("openai", "gpt-unknown-x", 1),  # unpriced
]
TABLE = PriceTable.from_config(
    [
        {"provider": "twilio", "unit": "minute", "usd_per_unit": "0.0085"},
        {"unit": "email", "usd_per_unit": "0.0001"},
        {"provider": "clearbit", "unit": "record", "usd_per_unit": "0.0123"},
    ]
)


def make_events(n: int, seed: int = 1) -> list[UsageEvent]:
    rng = random.Random(seed)
    start = datetime(2025, 6, 1, tzinfo=UTC)
    weights = [w for _, _, w in MODELS]
    events = []
    for _ in range(n):
        ts = (start + timedelta(seconds=rng.randrange(30 * 86_400))).isoformat()
        raw: dict[str, Any] = {
            "schema_version": 1,
            "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "ts": ts.replace("+00:00", "Z"),
            "service": rng.choice(["chat-api", "search", "support-bot"]),
            "operation": "call",
            "status": "ok",
        }
        kind = rng.random()
        if kind < 0.12:  # metered non-LLM API
            unit, vendor = rng.choice(
                [("minute", "twilio"), ("email", "ses"), ("record", "clearbit")]
            )
            quantity = str(Decimal(rng.randrange(1, 500)) / 4)
            raw |= {"provider": vendor, "unit": unit, "quantity": quantity}
        else:
            provider, model, _ = rng.choices(MODELS, weights)[0]
            inp = (
                rng.randrange(50, 30_000) if rng.random() < 0.9 else rng.randrange(30_000, 400_000)
            )
            cache_read = rng.randrange(inp) if rng.random() < 0.5 else 0
            out = rng.randrange(1, 4_000)
            raw |= {"model": model, "input_tokens": inp, "output_tokens": out}
            if provider:
                raw["provider"] = provider
            if cache_read:
                raw["cache_read_tokens"] = cache_read
            if rng.random() < 0.1:
                raw["cache_write_tokens"] = rng.randrange(inp - cache_read + 1)
            if rng.random() < 0.3:
                raw["reasoning_tokens"] = rng.randrange(out + 1)
            if kind > 0.97:
                raw |= {"status": "error", "input_tokens": 0, "output_tokens": 0}
                raw.pop("cache_read_tokens", None)
                raw.pop("cache_write_tokens", None)
                raw.pop("reasoning_tokens", None)
        if rng.random() < 0.08:
            raw["cache_hit"] = True
        if rng.random() < 0.05:
            raw["cost_usd"] = str(Decimal(rng.randrange(1, 10**6)).scaleb(-6))
        decoded = decode_event(orjson.dumps(raw))  # the worker prices decoded events
        assert not isinstance(decoded, Rejection), decoded
        events.append(decoded[0])
    return events


class CalcPricePerEvent(Pricer):
    """Same rules, but every LLM event goes through ``calc_price`` (the slow baseline)."""

    def _price_llm(self, event: UsageEvent, model: str, cache_hit: bool) -> PriceResult:
        provider = event.provider or None
        if event.status == "error" and not (event.input_tokens or event.output_tokens):
            try:
                calc_price(Usage(), model, provider_id=provider)
            except LookupError:
                return super()._price_llm(event, model, cache_hit)  # same unpriced reason
            return PriceResult.priced(0, CATALOG, cache_hit=cache_hit)
        usage = Usage(
            input_tokens=event.input_tokens or 0,
            output_tokens=event.output_tokens or 0,
            cache_read_tokens=event.cache_read_tokens or 0,
            cache_write_tokens=event.cache_write_tokens or 0,
            output_reasoning_tokens=event.reasoning_tokens or 0,
        )
        try:
            calc = calc_price(
                usage,
                model,
                provider_id=provider,
                genai_request_timestamp=parse_ts(event.ts),
            )
        except LookupError:
            return super()._price_llm(event, model, cache_hit)  # same unpriced reason
        usd = calc.total_price.quantize(Decimal("1e-9"), rounding=ROUND_HALF_EVEN)
        return PriceResult.priced(int(usd.scaleb(9)), CATALOG, cache_hit=cache_hit)


def run(pricer: Pricer, events: list[UsageEvent]) -> tuple[float, list[PriceResult]]:
    price = pricer.price
    t0 = time.perf_counter()
    results = [price(e) for e in events]
    return time.perf_counter() - t0, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, {platform.processor() or '?'}")
    print(f"python {sys.version.split()[0]}, genai-prices {version('genai-prices')}")
    events = make_events(args.events)
    llm = sum(1 for e in events if e.model and not e.unit)
    print(f"events: {len(events)} ({llm} LLM, {len(events) - llm} unit/other)")

    cold_s, cold_results = run(Pricer(TABLE), events)
    warm_pricer = Pricer(TABLE)
    run(warm_pricer, events)  # warm the caches
    cached_s = min(run(warm_pricer, events)[0] for _ in range(args.repeat))
    base_s, base_results = min(
        (run(CalcPricePerEvent(TABLE), events) for _ in range(args.repeat)), key=lambda r: r[0]
    )
    assert cold_results == base_results, "cached pricing differs from calc_price"
    total = sum(r.cost_nusd for r in cold_results)
    print(f"identical results; total cost {total} nUSD")

    n = len(events)
    print(f"{'pricer':<34}{'events/s':>12}{'us/event':>11}")
    for name, secs in [
        ("cached integer rates (warm)", cached_s),
        ("cached integer rates (cold, 1 run)", cold_s),
        ("calc_price per LLM event", base_s),
    ]:
        print(f"{name:<34}{n / secs:>12,.0f}{secs / n * 1e6:>11.2f}")
    print(f"speed-up (warm vs calc_price): {base_s / cached_s:.1f}x")


if __name__ == "__main__":
    main()
