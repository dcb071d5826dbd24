"""The real ``google-genai`` client (``http_options`` base URL on a loopback server speaking the
Gemini REST API), instrumented with spendwatch; events read back from a real Tansu broker."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
import spendwatch
from google import genai
from google.genai import errors, types

from streams.pricing import Pricer

pytestmark = pytest.mark.integration

MODEL = "gemini-2.5-flash"
GENERATE = f"/v1/models/{MODEL}:generateContent"
STREAM = f"/v1/models/{MODEL}:streamGenerateContent?alt=sse"
USAGE = {
    "promptTokenCount": 1200,
    "cachedContentTokenCount": 1000,
    "candidatesTokenCount": 300,
    "thoughtsTokenCount": 150,
    "totalTokenCount": 1650,
}
# gemini-2.5-flash, USD per million tokens: input 0.30, cached input 0.03, output (thinking
# included) 2.50: 200 x 0.30 + 1,000 x 0.03 + 450 x 2.50 = 1,215 -> $0.001215.
COST_NUSD = int((200 * Decimal("0.30") + 1000 * Decimal("0.03") + 450 * Decimal("2.50")) * 1000)


FIRST_CHUNK_USAGE = {"promptTokenCount": 1200, "candidatesTokenCount": 2}


def response(text: str, usage: dict | None, *, finish: str | None = "STOP") -> dict:
    candidate: dict = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    body: dict = {"candidates": [candidate], "modelVersion": MODEL, "responseId": "resp-g1"}
    if usage is not None:
        body["usageMetadata"] = usage
    return body


@pytest.fixture
def client(llm, broker, topic):
    spendwatch.configure(bootstrap_servers=broker.bootstrap_servers, service="gem-app", topic=topic)
    return spendwatch.instrument(
        genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=llm.base_url))
    )


def core(event):
    keep = (
        "operation", "status", "provider", "model", "response_model", "request_id",
        "input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens", "partial",
        "error_type",
    )  # fmt: skip
    return {k: event[k] for k in keep if k in event}


EXPECTED = {
    "operation": "generate_content",
    "status": "ok",
    "provider": "gcp.gemini",
    "model": MODEL,
    "response_model": MODEL,
    "request_id": "resp-g1",
    "input_tokens": 1200,
    "output_tokens": 450,
    "cache_read_tokens": 1000,
    "reasoning_tokens": 150,
}


def test_generate_content_stream_and_error(client, llm, reply, consume):
    assert type(client) is genai.Client and spendwatch.instrument(client) is client
    llm.script(
        GENERATE,
        reply(body=response("Paris.", USAGE)),
        reply(status=429, body={"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}),
    )
    # Running totals per chunk, the last one complete (as Gemini streams them).
    llm.script(
        STREAM,
        reply(
            events=[
                (None, response("Pa", {"promptTokenCount": 1200}, finish=None)),
                (None, response("ris.", USAGE)),
            ]
        ),
    )
    result = client.models.generate_content(model=f"models/{MODEL}", contents="Capital of France?")
    assert result.text == "Paris."
    chunks = client.models.generate_content_stream(model=MODEL, contents="?")
    assert [chunk.text for chunk in chunks] == ["Pa", "ris."]
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model=MODEL, contents="?")
    assert raised.value.code == 429
    assert spendwatch.flush(10)

    plain, streamed, failed = consume(3)
    assert core(plain) == EXPECTED
    assert core(streamed) == EXPECTED
    assert core(failed) == {
        "operation": "generate_content",
        "status": "error",
        "provider": "gcp.gemini",
        "model": MODEL,
        "error_type": "ClientError",
    }
    pricer = Pricer()
    assert [pricer.price(e).cost_nusd for e in (plain, streamed, failed)] == [1_215_000] * 2 + [0]
    assert COST_NUSD == 1_215_000


async def test_async_generate_content_and_abandoned_stream(client, llm, reply, consume):
    llm.script(GENERATE, reply(body=response("Paris.", USAGE)))
    llm.script(
        STREAM,
        reply(
            events=[
                (None, response("Pa", FIRST_CHUNK_USAGE, finish=None)),
                (None, response("ris.", USAGE)),
            ]
        ),
    )
    result = await client.aio.models.generate_content(model=MODEL, contents="?")
    assert result.text == "Paris."
    stream = await client.aio.models.generate_content_stream(model=MODEL, contents="?")
    async for chunk in stream:
        assert chunk.text == "Pa"
        break
    await stream.aclose()  # the caller stops after the first chunk
    assert await spendwatch.aflush(10)
    plain, partial = await asyncio.to_thread(consume, 2)
    assert core(plain) == EXPECTED
    assert core(partial) == {
        "operation": "generate_content",
        "status": "ok",
        "provider": "gcp.gemini",
        "model": MODEL,
        "response_model": MODEL,
        "request_id": "resp-g1",
        "input_tokens": 1200,
        "output_tokens": 2,
        "partial": True,
    }
