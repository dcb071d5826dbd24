"""``spendwatch.litellm``: real ``litellm.completion`` / ``acompletion`` calls (LiteLLM's
OpenAI provider pointed at a loopback server), the callback in ``litellm.callbacks``; events
read back from a real Tansu broker and priced by the worker's pricer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal

import litellm
import pytest
import spendwatch
from spendwatch.litellm import SpendwatchLogger

from streams.pricing import Pricer

pytestmark = pytest.mark.integration

CHAT = "/v1/chat/completions"
USAGE = {
    "prompt_tokens": 2006,
    "completion_tokens": 300,
    "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920},
    "completion_tokens_details": {"reasoning_tokens": 192},
}
BODY = {
    "id": "chatcmpl-lite-1",
    "object": "chat.completion",
    "created": 1767225600,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}
    ],
    "usage": USAGE,
}
# gpt-4o-mini, USD per million: input 0.15, cached input 0.075, output 0.60 (reasoning incl.):
# 86 x 0.15 + 1,920 x 0.075 + 300 x 0.60 = 336.9 -> $0.0003369.
COST_NUSD = int((86 * Decimal("0.15") + 1920 * Decimal("0.075") + 300 * Decimal("0.60")) * 1000)
EXPECTED = {
    "operation": "chat",
    "status": "ok",
    "provider": "openai",
    "model": "gpt-4o-mini",
    "response_model": "gpt-4o-mini-2024-07-18",
    "request_id": "chatcmpl-lite-1",
    "input_tokens": 2006,
    "output_tokens": 300,
    "cache_read_tokens": 1920,
    "reasoning_tokens": 192,
}
QUESTION = [{"role": "user", "content": "Capital of France?"}]


def chunk(content: str | None, *, usage: dict | None = None, finish: str | None = None):
    delta = {"index": 0, "delta": {"content": content}, "finish_reason": finish}
    choices = [] if usage else [delta]
    body = {
        "id": "chatcmpl-lite-1",
        "object": "chat.completion.chunk",
        "created": 1767225600,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": choices,
        "usage": usage,
    }
    return (None, body)


@pytest.fixture
def logged(broker, topic) -> Iterator[SpendwatchLogger]:
    spendwatch.configure(
        bootstrap_servers=broker.bootstrap_servers, service="lite-app", topic=topic
    )
    logger = SpendwatchLogger()
    litellm.callbacks = [logger]
    yield logger
    litellm.callbacks = []
    for name in ("input_callback", "success_callback", "failure_callback"):
        setattr(litellm, name, [])
    litellm._async_success_callback = []
    litellm._async_failure_callback = []


def core(event):
    keep = (
        "service", "operation", "status", "provider", "model", "response_model", "request_id",
        "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
        "reasoning_tokens", "error_type", "cost_usd",
    )  # fmt: skip
    return {k: event[k] for k in keep if k in event}


def call(llm, **kwargs):
    return litellm.completion(
        model="openai/gpt-4o-mini",
        api_base=f"{llm.base_url}/v1",
        api_key="sk-test",
        messages=QUESTION,
        **kwargs,
    )


def test_completion_stream_and_error(logged, llm, reply, consume):
    llm.script(
        CHAT,
        reply(body=BODY),
        reply(
            events=[
                chunk("Par"),
                chunk("is.", finish="stop"),
                chunk(None, usage=USAGE),
                (None, "[DONE]"),
            ]
        ),
        reply(status=429, body={"error": {"message": "slow down", "type": "rate_limit"}}),
    )
    assert call(llm).choices[0].message.content == "Paris."
    stream = call(llm, stream=True, stream_options={"include_usage": True})
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Paris."
    with pytest.raises(litellm.RateLimitError):
        call(llm, num_retries=0, max_retries=0)
    events = consume(3)  # logged from LiteLLM's thread pool: in any order
    plain_or_stream = sorted(
        (e for e in events if e["status"] == "ok"), key=lambda e: e["response_model"]
    )
    # LiteLLM names an assembled stream's model after the request.
    assert [core(e) for e in plain_or_stream] == [
        {"service": "lite-app", **EXPECTED, "response_model": "gpt-4o-mini"},
        {"service": "lite-app", **EXPECTED},
    ]
    (failed,) = [e for e in events if e["status"] == "error"]
    assert core(failed) == {
        "service": "lite-app",
        "operation": "chat",
        "status": "error",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "error_type": "RateLimitError",
    }
    pricer = Pricer()
    assert [pricer.price(e).cost_nusd for e in plain_or_stream] == [COST_NUSD] * 2
    assert COST_NUSD == 336_900 and pricer.price(failed).cost_nusd == 0


async def test_acompletion_counts_once_and_litellm_cost_when_asked(logged, llm, reply, consume):
    logged.use_litellm_cost = True
    llm.script(CHAT, reply(body=BODY))
    response = await litellm.acompletion(
        model="openai/gpt-4o-mini", api_base=f"{llm.base_url}/v1", api_key="k", messages=QUESTION
    )
    assert response.usage.prompt_tokens == 2006
    (event,) = await asyncio.to_thread(consume, 1, timeout_s=15)
    assert core(event) == {"service": "lite-app", **EXPECTED, "cost_usd": "0.0003369"}
    assert Pricer().price(event).cost_nusd == COST_NUSD  # supplied, and the same figure
