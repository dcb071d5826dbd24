"""The real ``openai`` client, pointed at a loopback server speaking the OpenAI wire format,
instrumented with spendwatch; events read back from a real Tansu broker with exact counts."""

from __future__ import annotations

import gc

import openai
import orjson
import pytest
import spendwatch

pytestmark = pytest.mark.integration

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
EMBEDDINGS = "/v1/embeddings"

CHAT_BODY = {
    "id": "chatcmpl-A1",
    "object": "chat.completion",
    "created": 1767225600,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 192,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "system_fingerprint": "fp_1",
}


def chunk(content: str | None, *, finish: str | None = None, usage=None, choices=True):
    body = {
        "id": "chatcmpl-S1",
        "object": "chat.completion.chunk",
        "created": 1767225600,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_2",
        "choices": [
            {
                "index": 0,
                "delta": {} if content is None else {"content": content},
                "logprobs": None,
                "finish_reason": finish,
            }
        ]
        if choices
        else [],
        "usage": usage,
    }
    return (None, body)


STREAM_USAGE = {
    "prompt_tokens": 1500,
    "completion_tokens": 420,
    "total_tokens": 1920,
    "prompt_tokens_details": {"cached_tokens": 1024},
    "completion_tokens_details": {"reasoning_tokens": 256},
}


def chat_stream(request):
    """Like the API: the usage chunk only when stream_options.include_usage is true."""
    events = [chunk(""), chunk("Hel"), chunk("lo"), chunk(None, finish="stop")]
    if (request.get("stream_options") or {}).get("include_usage"):
        events.append(chunk(None, usage=STREAM_USAGE, choices=False))
    return [*events, (None, "[DONE]")]


RESPONSE_USAGE = {
    "input_tokens": 5000,
    "input_tokens_details": {"cached_tokens": 4096},
    "output_tokens": 900,
    "output_tokens_details": {"reasoning_tokens": 640},
    "total_tokens": 5900,
}


def response_body(status="completed", usage=RESPONSE_USAGE):
    return {
        "id": "resp_R1",
        "object": "response",
        "created_at": 1767225600,
        "status": status,
        "model": "o4-mini-2025-04-16",
        "output": [
            {
                "type": "message",
                "id": "msg_R1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hi", "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }


def responses_stream(_request):
    return [
        (
            "response.created",
            {
                "type": "response.created",
                "sequence_number": 0,
                "response": response_body("in_progress", None),
            },
        ),
        (
            "response.output_text.delta",
            {
                "type": "response.output_text.delta",
                "sequence_number": 1,
                "item_id": "msg_R1",
                "output_index": 0,
                "content_index": 0,
                "delta": "Hi",
                "logprobs": [],
            },
        ),
        (
            "response.completed",
            {"type": "response.completed", "sequence_number": 2, "response": response_body()},
        ),
    ]


@pytest.fixture
def client(llm, broker, topic):
    spendwatch.configure(bootstrap_servers=broker.bootstrap_servers, service="oa-app", topic=topic)
    return spendwatch.instrument(
        openai.OpenAI(api_key="sk-test", base_url=f"{llm.base_url}/v1", max_retries=0)
    )


@pytest.fixture
def aclient(llm, broker, topic):
    spendwatch.configure(bootstrap_servers=broker.bootstrap_servers, service="oa-app", topic=topic)
    return spendwatch.instrument(
        openai.AsyncOpenAI(api_key="sk-test", base_url=f"{llm.base_url}/v1", max_retries=0)
    )


def core(event):
    keep = (
        "operation", "status", "provider", "model", "response_model", "request_id",
        "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
        "reasoning_tokens", "partial", "error_type",
    )  # fmt: skip
    return {k: event[k] for k in keep if k in event}


def test_returns_the_same_client(client):
    assert type(client) is openai.OpenAI
    assert spendwatch.instrument(client) is client


def test_chat_completion_usage(client, llm, reply, consume):
    llm.script(CHAT, reply(body=CHAT_BODY, headers={"x-request-id": "req_chat_1"}))
    completion = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Capital of France?"}]
    )
    assert completion.choices[0].message.content == "Paris."
    assert spendwatch.flush(10)
    (event,) = consume(1)
    assert core(event) == {
        "operation": "chat",
        "status": "ok",
        "provider": "openai",
        "model": "gpt-4o",
        "response_model": "gpt-4o-2024-08-06",
        "request_id": "req_chat_1",
        "input_tokens": 2006,
        "output_tokens": 300,
        "cache_read_tokens": 1920,
        "reasoning_tokens": 192,
    }
    assert event["service"] == "oa-app" and event["latency_ms"] > 0


def test_chat_stream_adds_include_usage_and_hides_the_usage_chunk(client, llm, reply, consume):
    llm.script(CHAT, reply(events=chat_stream, headers={"x-request-id": "req_s1"}))
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert isinstance(stream, openai.Stream)
    # Code written for streams without usage indexes choices[0] on every chunk: still fine.
    text = "".join(c.choices[0].delta.content or "" for c in stream)
    assert text == "Hello"
    assert llm.requests[-1][1]["stream_options"] == {"include_usage": True}
    assert spendwatch.flush(10)
    (event,) = consume(1)
    assert core(event) == {
        "operation": "chat",
        "status": "ok",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "response_model": "gpt-4o-mini-2024-07-18",
        "request_id": "req_s1",
        "input_tokens": 1500,
        "output_tokens": 420,
        "cache_read_tokens": 1024,
        "reasoning_tokens": 256,
    }


def test_chat_stream_with_callers_stream_options_is_untouched(client, llm, reply, consume):
    llm.script(CHAT, reply(events=chat_stream), reply(events=chat_stream))
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 1500  # theirs to see
    list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_obfuscation": False},
        )
    )
    assert llm.requests[-1][1]["stream_options"] == {"include_obfuscation": False}
    assert spendwatch.flush(10)
    with_usage, without = consume(2)
    assert (with_usage["input_tokens"], with_usage["output_tokens"]) == (1500, 420)
    assert "input_tokens" not in without and without.get("partial") is None


def test_chat_stream_helper_is_covered(client, llm, reply, consume):
    llm.script(CHAT, reply(events=chat_stream))
    with client.chat.completions.stream(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "Hello"
    assert spendwatch.flush(10)
    (event,) = consume(1)
    assert (event["input_tokens"], event["output_tokens"], event["reasoning_tokens"]) == (
        1500,
        420,
        256,
    )


def test_abandoned_chat_stream_records_partial(client, llm, reply, consume):
    llm.script(CHAT, reply(events=chat_stream), reply(events=chat_stream))
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    next(iter(stream))
    stream.close()  # caller stops early
    stream2 = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    for _ in stream2:
        break
    del stream2  # dropped without close: recorded when collected
    gc.collect()
    assert spendwatch.flush(10)
    events = consume(2)
    assert [(e["status"], e.get("partial"), e.get("input_tokens")) for e in events] == [
        ("ok", True, None),
        ("ok", True, None),
    ]
    assert all(e["response_model"] == "gpt-4o-mini-2024-07-18" for e in events)


def test_stream_failing_midway_records_error_partial(client, llm, reply, consume):
    llm.script(CHAT, reply(events=chat_stream, cut_after=2))
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    with pytest.raises(openai.APIConnectionError) as raised:
        for _ in stream:
            pass
    assert spendwatch.flush(10)
    (event,) = consume(1)
    assert core(event) == {
        "operation": "chat",
        "status": "error",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "response_model": "gpt-4o-mini-2024-07-18",
        "request_id": "chatcmpl-S1",
        "partial": True,
        "error_type": type(raised.value).__name__,
    }


def test_errors_are_recorded_and_reach_the_caller_unchanged(client, llm, reply, consume):
    llm.script(
        CHAT,
        reply(
            status=429,
            body={
                "error": {
                    "message": "Rate limit reached",
                    "type": "requests",
                    "code": "rate_limit_exceeded",
                }
            },
            headers={"x-request-id": "req_429"},
        ),
        reply(status=500, body={"error": {"message": "boom", "type": "server_error"}}),
        reply(body=CHAT_BODY, delay_s=1.0),
    )
    with pytest.raises(openai.RateLimitError) as rate:
        client.chat.completions.create(model="gpt-4o", messages=[])
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=[])
    with pytest.raises(openai.APITimeoutError) as timeout:
        client.with_options(timeout=0.2).chat.completions.create(model="gpt-4o", messages=[])
    assert rate.value.request_id == "req_429"
    assert spendwatch.flush(10)
    events = consume(3)
    assert [(e["status"], e["error_type"], e.get("request_id")) for e in events] == [
        ("error", "RateLimitError", "req_429"),
        ("error", "InternalServerError", None),
        ("error", "APITimeoutError", None),
    ]
    assert all(e["model"] == "gpt-4o" and "input_tokens" not in e for e in events)
    assert type(timeout.value) is openai.APITimeoutError


def test_responses_and_embeddings(client, llm, reply, consume):
    llm.script(RESPONSES, reply(body=response_body()), reply(events=responses_stream))
    llm.script(
        EMBEDDINGS,
        reply(
            body={
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": 8, "total_tokens": 8},
            }
        ),
    )
    assert client.responses.create(model="o4-mini", input="hi").output_text == "Hi"
    kinds = [e.type for e in client.responses.create(model="o4-mini", input="hi", stream=True)]
    assert kinds == ["response.created", "response.output_text.delta", "response.completed"]
    client.embeddings.create(model="text-embedding-3-small", input="hello world")
    assert spendwatch.flush(10)
    plain, streamed, embedded = consume(3)
    expected = {
        "operation": "responses",
        "status": "ok",
        "provider": "openai",
        "model": "o4-mini",
        "response_model": "o4-mini-2025-04-16",
        "request_id": "resp_R1",
        "input_tokens": 5000,
        "output_tokens": 900,
        "cache_read_tokens": 4096,
        "reasoning_tokens": 640,
    }
    assert core(plain) == expected
    assert core(streamed) == expected
    assert core(embedded) == {
        "operation": "embeddings",
        "status": "ok",
        "provider": "openai",
        "model": "text-embedding-3-small",
        "response_model": "text-embedding-3-small",
        "input_tokens": 8,
    }


async def test_async_client_plain_and_stream(aclient, llm, reply, consume):
    llm.script(CHAT, reply(body=CHAT_BODY), reply(events=chat_stream), reply(events=chat_stream))
    completion = await aclient.chat.completions.create(model="gpt-4o", messages=[])
    assert completion.usage.prompt_tokens == 2006
    stream = await aclient.chat.completions.create(model="gpt-4o-mini", messages=[], stream=True)
    assert isinstance(stream, openai.AsyncStream)
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == "Hello"
    stream = await aclient.chat.completions.create(model="gpt-4o-mini", messages=[], stream=True)
    async with stream:
        async for _ in stream:
            break
    assert await spendwatch.aflush(10)
    import asyncio

    plain, streamed, partial = await asyncio.to_thread(consume, 3)
    assert (plain["input_tokens"], plain["cache_read_tokens"], plain["reasoning_tokens"]) == (
        2006,
        1920,
        192,
    )
    assert (streamed["input_tokens"], streamed["output_tokens"], streamed.get("partial")) == (
        1500,
        420,
        None,
    )
    assert partial["partial"] is True and "input_tokens" not in partial


# -- with_raw_response / with_streaming_response ------------------------------------------

CHAT_EXPECTED = {
    "operation": "chat",
    "status": "ok",
    "provider": "openai",
    "model": "gpt-4o",
    "response_model": "gpt-4o-2024-08-06",
    "input_tokens": 2006,
    "output_tokens": 300,
    "cache_read_tokens": 1920,
    "reasoning_tokens": 192,
}
STREAM_EXPECTED = {
    "operation": "chat",
    "status": "ok",
    "provider": "openai",
    "model": "gpt-4o-mini",
    "response_model": "gpt-4o-mini-2024-07-18",
    "input_tokens": 1500,
    "output_tokens": 420,
    "cache_read_tokens": 1024,
    "reasoning_tokens": 256,
}
HI = [{"role": "user", "content": "hi"}]


def test_raw_response_is_recorded_and_parses_to_the_same_object(client, llm, reply, consume):
    llm.script(CHAT, reply(body=CHAT_BODY, headers={"x-request-id": "req_raw_1"}))
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    assert type(raw).__name__ == "LegacyAPIResponse"
    assert raw.headers["x-request-id"] == "req_raw_1" and raw.status_code == 200
    completion = raw.parse()
    # The SDK parsed once, for the event; the caller gets that object from the library's cache.
    assert list(raw._parsed_by_type.values()) == [completion]
    assert raw.parse() is completion and completion.choices[0].message.content == "Paris."
    assert spendwatch.flush(10)
    (event,) = consume(1)
    assert core(event) == {**CHAT_EXPECTED, "request_id": "req_raw_1"}


def test_raw_response_stream_is_watched_in_place(client, llm, reply, consume):
    llm.script(CHAT, reply(events=chat_stream, headers={"x-request-id": "req_raw_s"}))
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HI, stream=True
    )
    stream = raw.parse()
    assert isinstance(stream, openai.Stream) and raw.parse() is stream
    # The usage chunk the SDK asked for stays hidden: the caller sees the chunks of old.
    assert [c.choices[0].delta.content for c in stream] == ["", "Hel", "lo", None]
    assert llm.requests[-1][1]["stream_options"] == {"include_usage": True}
    assert spendwatch.flush(10)
    (event,) = consume(1)
    assert core(event) == {**STREAM_EXPECTED, "request_id": "req_raw_s"}


def test_streaming_response_is_recorded_when_parsed(client, llm, reply, consume):
    llm.script(
        CHAT,
        reply(body=CHAT_BODY, headers={"x-request-id": "req_sr_1"}),
        reply(events=chat_stream, headers={"x-request-id": "req_sr_2"}),
    )
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=HI
    ) as response:
        assert response.headers["x-request-id"] == "req_sr_1"
        completion = response.parse()
        assert response.parse() is completion
    assert completion.usage.prompt_tokens == 2006
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=HI, stream=True
    ) as response:
        text = "".join(c.choices[0].delta.content or "" for c in response.parse())
    assert text == "Hello"
    assert spendwatch.flush(10)
    plain, streamed = consume(2)
    assert core(plain) == {**CHAT_EXPECTED, "request_id": "req_sr_1"}
    assert core(streamed) == {**STREAM_EXPECTED, "request_id": "req_sr_2"}


def test_streaming_response_never_parsed_is_recorded_once_partial(client, llm, reply, consume):
    llm.script(
        CHAT,
        reply(body=CHAT_BODY, headers={"x-request-id": "req_lines"}),
        reply(body=CHAT_BODY, headers={"x-request-id": "req_dropped"}),
    )
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=HI
    ) as response:
        lines = list(response.iter_lines())  # read by hand, never parsed: closed by the with
    assert orjson.loads(lines[0])["id"] == "chatcmpl-A1"
    manager = client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=HI)
    response = manager.__enter__()
    assert orjson.loads(response.read())["id"] == "chatcmpl-A1"
    del manager, response  # read, neither parsed nor closed: recorded when collected
    gc.collect()
    assert spendwatch.flush(10)
    events = consume(2)
    unread = {k: v for k, v in CHAT_EXPECTED.items() if not k.endswith("tokens")}
    del unread["response_model"]
    assert [core(e) for e in events] == [
        {**unread, "request_id": "req_lines", "partial": True},
        {**unread, "request_id": "req_dropped", "partial": True},
    ]


def test_raw_views_built_before_instrument_are_rebuilt(llm, broker, topic, reply, consume):
    spendwatch.configure(bootstrap_servers=broker.bootstrap_servers, service="oa-app", topic=topic)
    bare = openai.OpenAI(api_key="sk-test", base_url=f"{llm.base_url}/v1", max_retries=0)
    early = bare.chat.completions.with_raw_response
    early_chain = bare.with_raw_response.chat.completions
    early_streaming = bare.chat.completions.with_streaming_response
    client = spendwatch.instrument(bare)
    assert client.chat.completions.with_raw_response is not early
    assert client.with_raw_response.chat.completions is not early_chain
    assert client.chat.completions.with_streaming_response is not early_streaming
    llm.script(
        CHAT,
        *(reply(body=CHAT_BODY, headers={"x-request-id": f"req_early_{i}"}) for i in range(3)),
    )
    client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    client.with_raw_response.chat.completions.create(model="gpt-4o", messages=HI)
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=HI
    ) as response:
        response.parse()
    assert spendwatch.flush(10)
    events = consume(3)
    assert [core(e) for e in events] == [
        {**CHAT_EXPECTED, "request_id": f"req_early_{i}"} for i in range(3)
    ]


async def test_async_raw_and_streaming_response(aclient, llm, reply, consume):
    llm.script(
        CHAT,
        reply(body=CHAT_BODY, headers={"x-request-id": "req_araw"}),
        reply(events=chat_stream, headers={"x-request-id": "req_araw_s"}),
        reply(body=CHAT_BODY, headers={"x-request-id": "req_asr"}),
    )
    raw = await aclient.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    completion = raw.parse()  # openai's LegacyAPIResponse parses synchronously, also here
    assert raw.parse() is completion and completion.usage.prompt_tokens == 2006
    assert raw.headers["x-request-id"] == "req_araw"
    raw = await aclient.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HI, stream=True
    )
    stream = raw.parse()
    assert isinstance(stream, openai.AsyncStream) and raw.parse() is stream
    assert [c.choices[0].delta.content async for c in stream] == ["", "Hel", "lo", None]
    async with aclient.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=HI
    ) as response:
        parsed = await response.parse()
    assert parsed.choices[0].message.content == "Paris."
    assert await spendwatch.aflush(10)
    import asyncio

    events = await asyncio.to_thread(consume, 3)
    assert [core(e) for e in events] == [
        {**CHAT_EXPECTED, "request_id": "req_araw"},
        {**STREAM_EXPECTED, "request_id": "req_araw_s"},
        {**CHAT_EXPECTED, "request_id": "req_asr"},
    ]


def test_raw_response_that_cannot_be_parsed_is_returned_unchanged(
    client, llm, reply, consume, monkeypatch, caplog
):
    from openai._legacy_response import LegacyAPIResponse

    def broken(self, *, to=None):
        raise ValueError("unparseable")

    monkeypatch.setattr(LegacyAPIResponse, "parse", broken)
    llm.script(CHAT, reply(body=CHAT_BODY, headers={"x-request-id": "req_broken"}))
    with caplog.at_level("DEBUG", logger="spendwatch"):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    assert "could not read chat raw response" in caplog.text
    assert raw.http_response.json()["id"] == "chatcmpl-A1"
    with pytest.raises(ValueError, match="unparseable"):
        raw.parse()  # the caller's own parse fails as it would without spendwatch
    assert spendwatch.flush(10)
    (event,) = consume(1)
    assert core(event) == {
        "operation": "chat",
        "status": "ok",
        "provider": "openai",
        "model": "gpt-4o",
        "request_id": "req_broken",
    }
