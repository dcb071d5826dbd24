"""Pricer rules with exact figures, on events as validate_event returns them.

Catalog figures are computed by hand from the genai-prices prices that ``catalog_price``
first checks are still the ones bundled, so a data update fails loudly here, not silently.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import orjson
import pytest
from genai_prices import data_snapshot
from genai_prices.types import ClauseEquals, ModelInfo, ModelPrice, Provider

from schemas.events import validate_event
from streams.pricing import (
    CATALOG,
    PRICE_TABLE,
    SUPPLIED,
    UNPRICED,
    Pricer,
    PriceResult,
    PriceTable,
)

TS = "2025-09-01T12:00:00Z"


def event(**fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "ts": TS,
        "service": "chat-api",
        "operation": "chat",
        "status": "ok",
        **fields,
    }
    valid, rejection = validate_event(orjson.dumps(raw))
    assert rejection is None, rejection
    assert valid is not None
    return valid


def catalog_price(provider: str | None, model: str, ts: str = TS) -> dict[str, Decimal]:
    """The bundled flat prices of a model (USD per MTok / per K), to pin the hand figures."""
    from datetime import datetime

    _, info = data_snapshot.get_snapshot().find_provider_model(model, None, provider, None)
    at = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    prices = info.get_prices(at)
    return {k: v for k, v in prices.__dict__.items() if v is not None and "searches" not in k}


@pytest.fixture(scope="module")
def pricer() -> Pricer:
    table = PriceTable.from_config(
        [
            {"provider": "twilio", "unit": "minute", "usd_per_unit": "0.0085"},
            {"service": "mailer", "unit": "email", "usd_per_unit": "0.0001"},
        ]
    )
    return Pricer(table)


GPT4O = {"provider": "openai", "model": "gpt-4o"}
GPT4O_USAGE = {"input_tokens": 1200, "cache_read_tokens": 200, "output_tokens": 300}


def test_llm_tokens_priced_from_the_catalog(pricer: Pricer) -> None:
    assert catalog_price("openai", "gpt-4o") == {
        "input_mtok": Decimal("2.5"),
        "cache_read_mtok": Decimal("1.25"),
        "output_mtok": Decimal("10"),
    }
    # 1000 uncached * 2.5 + 200 cached * 1.25 + 300 output * 10 = 5750 USD/M
    result = pricer.price(event(**GPT4O, **GPT4O_USAGE, reasoning_tokens=100))
    assert result == PriceResult(5_750_000, 0, CATALOG, None)


def test_cache_hit_costs_nothing_and_records_the_avoided_cost(pricer: Pricer) -> None:
    result = pricer.price(event(**GPT4O, **GPT4O_USAGE, cache_hit=True))
    assert result == PriceResult(0, 5_750_000, CATALOG, None)


def test_supplied_cost_wins_over_the_catalog(pricer: Pricer) -> None:
    assert pricer.price(event(**GPT4O, **GPT4O_USAGE, cost_usd="0.0123")) == PriceResult(
        12_300_000, 0, SUPPLIED, None
    )
    assert pricer.price(event(**GPT4O, **GPT4O_USAGE, cost_usd="0.0123", cache_hit=True)) == (
        PriceResult(0, 12_300_000, SUPPLIED, None)
    )
    assert pricer.price(event(unit="minute", quantity="3", cost_usd="0.000000001")).cost_nusd == 1
    assert pricer.price(event(cost_usd="2")) == PriceResult(2_000_000_000, 0, SUPPLIED, None)


def test_cache_write_tokens(pricer: Pricer) -> None:
    assert catalog_price("anthropic", "claude-3-5-haiku-latest") == {
        "input_mtok": Decimal("0.8"),
        "cache_read_mtok": Decimal("0.08"),
        "cache_write_mtok": Decimal("1"),
        "cache_write_1h_mtok": Decimal("1.6"),
        "output_mtok": Decimal("4"),
    }
    e = event(
        provider="anthropic",
        model="claude-3-5-haiku-latest",
        input_tokens=10_000,
        cache_read_tokens=3000,
        cache_write_tokens=2000,
        output_tokens=500,
    )
    # 5000*0.8 + 3000*0.08 + 2000*1 + 500*4 = 8240 USD/M
    assert pricer.price(e) == PriceResult(8_240_000, 0, CATALOG, None)


def test_reasoning_tokens_priced_at_their_own_rate(pricer: Pricer) -> None:
    assert catalog_price("perplexity", "sonar-deep-research") == {
        "input_mtok": Decimal("2"),
        "output_mtok": Decimal("8"),
        "output_reasoning_mtok": Decimal("3"),
        "output_citation_mtok": Decimal("2"),
    }
    e = event(
        provider="perplexity",
        model="sonar-deep-research",
        input_tokens=1000,
        output_tokens=2000,
        reasoning_tokens=500,
    )
    # 1000*2 + 1500*8 + 500*3 = 15500 USD/M
    assert pricer.price(e).cost_nusd == 15_500_000


def test_tier_chosen_by_input_tokens(pricer: Pricer) -> None:
    def cost(inp: int) -> int:
        return pricer.price(
            event(provider="google", model="gemini-2.5-pro", input_tokens=inp, output_tokens=1000)
        ).cost_nusd

    assert cost(200_000) == 260_000_000  # 200000*1.25 + 1000*10
    assert cost(200_001) == 515_002_500  # 200001*2.5 + 1000*15 (all tokens at the tier price)


def test_price_change_mid_stream_is_honoured(pricer: Pricer) -> None:
    usage = {"provider": "openai", "model": "o3", "input_tokens": 1000, "output_tokens": 1000}
    assert catalog_price("openai", "o3", "2025-06-09T00:00:00Z")["input_mtok"] == Decimal(10)
    assert catalog_price("openai", "o3", "2025-06-10T00:00:00Z")["input_mtok"] == Decimal(2)

    def cost(ts: str) -> int:
        return pricer.price(event(ts=ts, **usage)).cost_nusd

    assert cost("2025-06-09T23:59:59.999999999Z") == 50_000_000  # 1000*10 + 1000*40
    assert cost("2025-06-10T00:00:00Z") == 10_000_000  # 1000*2 + 1000*8
    assert cost("2025-06-09T23:30:00-01:00") == 10_000_000  # 00:30 UTC on the 10th
    assert cost("2025-06-10T00:30:00+02:00") == 50_000_000  # 22:30 UTC on the 9th
    assert cost("2025-06-09T12:00:00+00:00") == 50_000_000


def test_time_of_day_prices(pricer: Pricer) -> None:
    usage = {"model": "deepseek-chat", "input_tokens": 1_000_000, "output_tokens": 1_000_000}
    day = pricer.price(event(ts="2025-09-01T12:00:00Z", provider="deepseek", **usage))
    night = pricer.price(event(ts="2025-09-01T20:00:00Z", provider="deepseek", **usage))
    edge = pricer.price(event(ts="2025-09-01T02:29:59+02:00", provider="deepseek", **usage))
    assert day.cost_nusd == 1_370_000_000  # 0.27 + 1.10
    assert night.cost_nusd == 685_000_000  # 0.135 + 0.55 off-peak
    assert edge.cost_nusd == 685_000_000  # 00:29:59 UTC is still off-peak


def test_provider_inferred_when_absent(pricer: Pricer) -> None:
    e = event(model="claude-3-5-haiku-latest", input_tokens=1000, output_tokens=1000)
    assert pricer.price(e) == PriceResult(4_800_000, 0, CATALOG, None)  # 1000*0.8 + 1000*4


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("azure.ai.openai", "gpt-4o"),
        ("Azure", "gpt-4o"),
        ("x_ai", "grok-3"),
        ("gcp.gemini", "gemini-2.0-flash"),
    ],
)
def test_opentelemetry_provider_names(pricer: Pricer, provider: str, model: str) -> None:
    result = pricer.price(event(provider=provider, model=model, input_tokens=1_000_000))
    assert result.source == CATALOG
    expected = {"gpt-4o": 2_500_000_000, "grok-3": 3_000_000_000, "gemini-2.0-flash": 100_000_000}
    assert result.cost_nusd == expected[model]


def test_unknown_model_and_provider_are_unpriced(pricer: Pricer) -> None:
    assert pricer.price(event(provider="openai", model="gpt-nope", input_tokens=5)) == (
        PriceResult(0, 0, UNPRICED, "unknown model 'gpt-nope' of provider 'openai'")
    )
    assert pricer.price(event(provider="acme", model="gpt-4o", input_tokens=5)) == PriceResult(
        0, 0, UNPRICED, "unknown provider 'acme' (model 'gpt-4o')"
    )
    assert pricer.price(event(model="zz-model", output_tokens=5, cache_hit=True)) == PriceResult(
        0, 0, UNPRICED, "unknown model 'zz-model' (no provider given, none matches it)"
    )


def test_failed_calls_without_tokens_cost_nothing(pricer: Pricer) -> None:
    assert pricer.price(event(status="error", **GPT4O)) == PriceResult(0, 0, CATALOG, None)
    assert pricer.price(event(status="error", **GPT4O, input_tokens=0)) == (
        PriceResult(0, 0, CATALOG, None)
    )
    # Even where genai-prices charges a per-request fee ($12 per 1000 requests for sonar) ...
    sonar = {"provider": "perplexity", "model": "sonar"}
    assert pricer.price(event(status="error", **sonar)).cost_nusd == 0
    assert pricer.price(event(**sonar)).cost_nusd == 12_000_000
    # ... while a failed call that did consume tokens pays for them.
    assert pricer.price(event(status="error", **GPT4O, input_tokens=1000)).cost_nusd == 2_500_000
    assert pricer.price(event(status="error", provider="openai", model="nope")).source == UNPRICED


def test_unit_events_priced_from_the_table(pricer: Pricer) -> None:
    voice = event(provider="twilio", unit="minute", quantity="2.5")
    assert pricer.price(voice) == PriceResult(21_250_000, 0, PRICE_TABLE, None)
    mail = event(service="mailer", unit="email", quantity="3")
    assert pricer.price(mail) == PriceResult(300_000, 0, PRICE_TABLE, None)
    assert pricer.price(event(service="mailer", unit="email")).cost_nusd == 100_000  # quantity 1
    hit = event(provider="twilio", unit="minute", quantity="1", cache_hit=True)
    assert pricer.price(hit) == PriceResult(0, 8_500_000, PRICE_TABLE, None)
    # a model on a unit event does not make it an LLM call
    whisper = event(provider="twilio", model="whisper-1", unit="minute", quantity="2")
    assert pricer.price(whisper).cost_nusd == 17_000_000


def test_unit_without_a_price_is_unpriced(pricer: Pricer) -> None:
    assert pricer.price(event(provider="vonage", unit="minute", quantity="1")) == PriceResult(
        0, 0, UNPRICED, "no price for unit 'minute' of provider 'vonage'"
    )
    assert pricer.price(event(unit="sms", quantity="1")).unpriced_reason == (
        "no price for unit 'sms' of service 'chat-api'"
    )
    assert Pricer().price(event(provider="twilio", unit="minute")).source == UNPRICED


def test_nothing_to_price(pricer: Pricer) -> None:
    assert pricer.price(event()) == PriceResult(
        0, 0, UNPRICED, "no cost_usd, model or unit to price"
    )


def test_never_raises_on_an_unvalidated_event(pricer: Pricer) -> None:
    bad_ts = {**event(provider="openai", model="o3", input_tokens=1), "ts": "yesterday"}
    result = pricer.price(bad_ts)
    assert result.source == UNPRICED
    assert result.unpriced_reason is not None
    assert result.unpriced_reason.startswith("cannot price openai/o3 at 'yesterday'")
    over = {**event(**GPT4O, input_tokens=1), "cache_read_tokens": 2}
    assert pricer.price(over).unpriced_reason == "inconsistent token counts for the catalog price"
    broken = {**event(**GPT4O), "input_tokens": "many"}
    assert pricer.price(broken).unpriced_reason == (
        "pricing failed: TypeError: '>' not supported between instances of 'int' and 'str'"
    )


def test_a_new_genai_prices_snapshot_replaces_cached_prices() -> None:
    pricer = Pricer()
    e = event(provider="openai", model="gpt-4o", input_tokens=1_000_000)
    assert pricer.price(e).cost_nusd == 2_500_000_000
    custom = Provider(
        id="openai",
        name="OpenAI",
        api_pattern="",
        models=[
            ModelInfo(
                id="gpt-4o",
                match=ClauseEquals(equals="gpt-4o"),
                prices=ModelPrice(input_mtok=Decimal("7"), output_mtok=Decimal("9")),
            )
        ],
    )
    data_snapshot.set_custom_snapshot(
        data_snapshot.DataSnapshot(providers=[custom], from_auto_update=True)
    )
    try:
        assert pricer.price(e).cost_nusd == 7_000_000_000
    finally:
        data_snapshot.set_custom_snapshot(None)
    assert pricer.price(e).cost_nusd == 2_500_000_000
