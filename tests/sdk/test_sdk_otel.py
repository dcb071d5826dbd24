"""``spendwatch.otel``: the real OpenTelemetry SDK and the real ``opentelemetry-instrumentation-
openai-v2`` package driving a real openai client against a loopback server; events read back
from a real Tansu broker and priced by the worker's own pricer, to the nano-dollar."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import openai
import pytest
import spendwatch
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from spendwatch.otel import SpendwatchSpanProcessor

from streams.pricing import Pricer

pytestmark = pytest.mark.integration

CHAT = "/v1/chat/completions"
BODY = {
    "id": "chatcmpl-otel-1",
    "object": "chat.completion",
    "created": 1767225600,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306},
}
# gpt-4o-mini list prices, USD per million tokens: input 0.15, output 0.60.
GPT_4O_MINI_COST_NUSD = int((2006 * Decimal("0.15") + 300 * Decimal("0.60")) * 1000)  # 480_900


@pytest.fixture
def traced(broker, topic) -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A tracer provider with spendwatch's processor (and a recording exporter), and the
    OpenAI instrumentation installed on it; removed again afterwards."""
    spendwatch.configure(
        bootstrap_servers=broker.bootstrap_servers, service="otel-app", topic=topic
    )
    provider = TracerProvider()
    provider.add_span_processor(SpendwatchSpanProcessor())
    exported = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield provider, exported
    finally:
        instrumentor.uninstrument()
        provider.shutdown()


def client(llm) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", base_url=f"{llm.base_url}/v1", max_retries=0)


def core(event):
    keep = (
        "service", "operation", "status", "provider", "model", "response_model", "request_id",
        "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
        "reasoning_tokens", "error_type",
    )  # fmt: skip
    return {k: event[k] for k in keep if k in event}


def test_traced_openai_calls_become_priced_events(traced, llm, reply, consume):
    provider, exported = traced
    llm.script(
        CHAT,
        reply(body=BODY),
        reply(status=429, body={"error": {"message": "slow down", "type": "rate_limit"}}),
    )
    app = client(llm)
    app.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "?"}])
    question = [{"role": "user", "content": "?"}]
    with pytest.raises(openai.RateLimitError):
        app.chat.completions.create(model="gpt-4o-mini", messages=question)
    # A span that is not a model call (positive control: spans do flow, this one is skipped).
    with provider.get_tracer("app").start_as_current_span("checkout") as span:
        span.set_attribute("gen_ai.agent.name", "not-a-model-call")
    assert spendwatch.flush(10)

    ok, failed = consume(2)
    assert len(exported.get_finished_spans()) == 3
    assert core(ok) == {
        "service": "otel-app",
        "operation": "chat",
        "status": "ok",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "response_model": "gpt-4o-mini-2024-07-18",
        "request_id": "chatcmpl-otel-1",
        "input_tokens": 2006,
        "output_tokens": 300,
    }
    assert core(failed) == {
        "service": "otel-app",
        "operation": "chat",
        "status": "error",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "error_type": "RateLimitError",
    }
    span_ok = exported.get_finished_spans()[0]
    assert ok["latency_ms"] == (span_ok.end_time - span_ok.start_time) / 1e6
    assert ok["ts"] == datetime.fromtimestamp(span_ok.end_time // 1000 / 1e6, UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )
    pricer = Pricer()
    assert pricer.price(ok).cost_nusd == GPT_4O_MINI_COST_NUSD == 480_900
    assert pricer.price(failed).cost_nusd == 0


def test_call_both_instrumented_and_traced_counts_once(traced, llm, reply, consume):
    _provider, exported = traced
    llm.script(CHAT, reply(body=BODY, headers={"x-request-id": "req_both"}), reply(body=BODY))
    both = spendwatch.instrument(client(llm))  # instrument() wraps the traced method
    both.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "?"}])
    client(llm).chat.completions.create(  # positive control: traced only
        model="gpt-4o-mini", messages=[{"role": "user", "content": "?"}]
    )
    assert spendwatch.flush(10)
    events = consume(2)
    assert sorted(e.get("request_id") for e in events) == ["chatcmpl-otel-1", "req_both"]
    assert [e["input_tokens"] for e in events] == [2006, 2006]
    marks = [span.attributes.get("spendwatch.recorded") for span in exported.get_finished_spans()]
    assert marks == [True, None]


def test_cache_and_reasoning_attributes_and_anthropic_style_input(broker, topic, consume):
    """Spans from other instrumentations (made here with the real tracer): the newer usage
    attributes, and input counts that exclude the cache (repaired, not refused)."""
    spendwatch.configure(
        bootstrap_servers=broker.bootstrap_servers, service="otel-app", topic=topic
    )
    provider = TracerProvider()
    provider.add_span_processor(SpendwatchSpanProcessor(tags={"team": "search"}))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("chat claude") as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "anthropic",
                "gen_ai.request.model": "claude-3-5-haiku-latest",
                "gen_ai.usage.input_tokens": 100,  # excludes the 3,000 cached: Anthropic style
                "gen_ai.usage.output_tokens": 500,
                "gen_ai.usage.cache_read.input_tokens": 2000,
                "gen_ai.usage.cache_creation.input_tokens": 1000,
                "gen_ai.usage.reasoning.output_tokens": 200,
            }
        )
    with tracer.start_as_current_span("generate_content gemini") as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "generate_content",
                "gen_ai.system": "gcp.gemini",  # the older attribute name
                "gen_ai.request.model": "gemini-2.5-flash",
            }
        )
        span.set_status(Status(StatusCode.ERROR, "deadline exceeded"))
    provider.shutdown()
    assert spendwatch.flush(10)
    claude, gemini = consume(2)
    assert core(claude) == {
        "service": "otel-app",
        "operation": "chat",
        "status": "ok",
        "provider": "anthropic",
        "model": "claude-3-5-haiku-latest",
        "input_tokens": 3100,
        "output_tokens": 500,
        "cache_read_tokens": 2000,
        "cache_write_tokens": 1000,
        "reasoning_tokens": 200,
    }
    assert claude["tags"] == {"team": "search"}
    # claude-3-5-haiku, USD per million: input 0.80, cache read 0.08, cache write 1.00, out 4.
    expected = 100 * Decimal("0.80") + 2000 * Decimal("0.08") + 1000 * Decimal("1.00")
    expected += 500 * Decimal("4")
    assert Pricer().price(claude).cost_nusd == int(expected * 1000) == 3_240_000
    assert core(gemini) == {
        "service": "otel-app",
        "operation": "generate_content",
        "status": "error",
        "provider": "gcp.gemini",
        "model": "gemini-2.5-flash",
        "error_type": "deadline exceeded",
    }
