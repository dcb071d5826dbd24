"""``spendwatch.spans``: which spans are model calls and what their attributes become."""

from __future__ import annotations

import pytest
from spendwatch.spans import usage_fields

BASE = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.input_tokens": 10,
    "gen_ai.usage.output_tokens": 5,
}


def fields(attributes, **kw):
    return usage_fields(attributes, start_ns=1_000_000, end_ns=3_500_000, **kw)


def test_a_chat_span():
    assert fields(BASE) == {
        "operation": "chat",
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 10,
        "output_tokens": 5,
        "latency_ms": 2.5,
    }


@pytest.mark.parametrize(
    "attributes",
    [
        {**BASE, "gen_ai.operation.name": "invoke_agent"},  # its usage sums the inner calls
        {**BASE, "gen_ai.operation.name": "execute_tool"},
        {**BASE, "spendwatch.recorded": True},  # recorded by instrument() already
        {"http.method": "POST"},
        {"gen_ai.provider.name": "openai"},  # no operation, no usage
    ],
)
def test_not_a_model_call(attributes):
    assert fields(attributes) is None


def test_old_attribute_names_and_no_operation():
    old = {
        "gen_ai.system": "openai",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.prompt_tokens": 7,
        "gen_ai.usage.completion_tokens": 3,
    }
    assert fields(old) == {
        "operation": "chat",
        "provider": "openai",
        "model": "gpt-4o-2024-08-06",
        "response_model": "gpt-4o-2024-08-06",
        "input_tokens": 7,
        "output_tokens": 3,
        "latency_ms": 2.5,
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("openai.RateLimitError", "RateLimitError"),
        ("<class 'openai.APITimeoutError'>", "APITimeoutError"),
        ("500", "500"),
        ("timeout", "timeout"),
    ],
)
def test_error_type(value, expected):
    result = fields({**BASE, "error.type": value})
    assert result is not None
    assert (result["status"], result["error_type"]) == ("error", expected)


def test_reasoning_reported_outside_output_is_added():
    result = fields({**BASE, "gen_ai.usage.reasoning.output_tokens": 8})
    assert result is not None
    assert (result["output_tokens"], result["reasoning_tokens"]) == (13, 8)


def test_tokens_without_a_model_are_dropped_and_latency_is_bounded():
    no_model = {k: v for k, v in BASE.items() if k != "gen_ai.request.model"}
    result = usage_fields(no_model, start_ns=0, end_ns=2 * 86_400 * 10**9)
    assert result == {"operation": "chat", "provider": "openai", "latency_ms": 86_400_000.0}
