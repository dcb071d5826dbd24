"""The real ``anthropic`` client against a loopback server speaking the Messages API, with
cache and thinking tokens; events read back from a real Tansu broker with exact counts.

Anthropic's input_tokens exclude cache tokens: the event's input_tokens add them back
(25 + 3000 read + 1200 written = 4225). Stream usage is cumulative: overwrite, never sum.
"""

from __future__ import annotations

import asyncio
import gc

import anthropic
import pytest
import spendwatch

pytestmark = pytest.mark.integration

MESSAGES = "/v1/messages"
MODEL = "claude-sonnet-4-5"
RESPONSE_MODEL = "claude-sonnet-4-5-20250929"

MESSAGE = {
    "id": "msg_01A",
    "type": "message",
    "role": "assistant",
    "model": RESPONSE_MODEL,
    "content": [{"type": "text", "text": "Hello!"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 25,
        "cache_creation_input_tokens": 1200,
        "cache_read_input_tokens": 3000,
        "output_tokens": 410,
        "output_tokens_details": {"thinking_tokens": 256},
    },
}

EXPECTED = {
    "operation": "chat",
    "status": "ok",
    "provider": "anthropic",
    "model": MODEL,
    "response_model": RESPONSE_MODEL,
    "input_tokens": 4225,
    "output_tokens": 410,
    "cache_read_tokens": 3000,
    "cache_write_tokens": 1200,
    "reasoning_tokens": 256,
}


def stream_events(*, error_at: int | None = None, stop: bool = True):
    start_message = {**MESSAGE, "id": "msg_01S", "content": [], "stop_reason": None}
    start_message["usage"] = {
        "input_tokens": 25,
        "cache_creation_input_tokens": 1200,
        "cache_read_input_tokens": 3000,
        "output_tokens": 1,
    }
    events = [
        ("message_start", {"type": "message_start", "message": start_message}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hel"},
            },
        ),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": None, "stop_sequence": None},
                "usage": {"output_tokens": 15},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "lo"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {
                    "input_tokens": 25,
                    "cache_creation_input_tokens": 1200,
                    "cache_read_input_tokens": 3000,
                    "output_tokens": 410,
                    "output_tokens_details": {"thinking_tokens": 256},
                },
            },
        ),
    ]
    if stop:
        events.append(("message_stop", {"type": "message_stop"}))
    if error_at is not None:
        events.insert(
            error_at,
            (
                "error",
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            ),
        )
    return events


def core(event):
    keep = (
        "operation", "status", "provider", "model", "response_model", "input_tokens",
        "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
        "partial", "error_type",
    )  # fmt: skip
    return {k: event[k] for k in keep if k in event}


@pytest.fixture
def client(llm, broker, topic):
    spendwatch.configure(bootstrap_servers=broker.bootstrap_servers, service="an-app", topic=topic)
    return spendwatch.instrument(
        anthropic.Anthropic(api_key="sk-ant-test", base_url=llm.base_url, max_retries=0)
    )


@pytest.fixture
def aclient(llm, broker, topic):
    spendwatch.configure(bootstrap_servers=broker.bootstrap_servers, service="an-app", topic=topic)
    return spendwatch.instrument(
        anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=llm.base_url, max_retries=0)
    )


ARGS = {"model": MODEL, "max_tokens": 1024, "messages": [{"role": "user", "content": "hi"}]}


def test_message_usage_adds_cache_tokens_to_input(client, llm, reply, consume):
    llm.script(MESSAGES, reply(body=MESSAGE, headers={"request-id": "req_011"}))
    message = client.messages.create(**ARGS)
    assert type(client) is anthropic.Anthropic and message.content[0].text == "Hello!"
    assert spendwatch.flush(10)
    (event,) = consume(1)
    assert core(event) == EXPECTED
    assert event["request_id"] == "req_011"


def test_stream_usage_is_overwritten_not_summed(client, llm, reply, consume):
    llm.script(
        MESSAGES,
        reply(events=stream_events(), headers={"request-id": "req_s"}),
        reply(events=stream_events()),
    )
    stream = client.messages.create(**ARGS, stream=True)
    assert isinstance(stream, anthropic.Stream)
    kinds = [e.type for e in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    with client.messages.stream(**ARGS) as helper:
        assert helper.get_final_text() == "Hello"
    assert spendwatch.flush(10)
    raw, helped = consume(2)
    assert core(raw) == EXPECTED and raw["request_id"] == "req_s"
    assert core(helped) == EXPECTED and helped["request_id"] == "msg_01S"


def test_abandoned_and_unfinished_streams_are_partial(client, llm, reply, consume):
    llm.script(
        MESSAGES,
        reply(events=stream_events()),
        reply(events=stream_events()),
        reply(events=stream_events(stop=False)),
    )
    with client.messages.stream(**ARGS) as helper:
        for _ in helper:
            break  # left early, closed by the with
    stream = client.messages.create(**ARGS, stream=True)
    for event in stream:
        if event.type == "message_start":
            break
    del stream, event  # dropped without close
    gc.collect()
    list(client.messages.create(**ARGS, stream=True))  # the body ends without message_stop
    assert spendwatch.flush(10)
    early, dropped, unfinished = consume(3)
    seen_at_start = {**EXPECTED, "input_tokens": 4225, "output_tokens": 1, "partial": True}
    del seen_at_start["reasoning_tokens"]
    assert core(early) == seen_at_start
    assert core(dropped) == seen_at_start
    assert core(unfinished) == {**EXPECTED, "partial": True}


def test_error_event_midway_and_http_errors(client, llm, reply, consume):
    llm.script(
        MESSAGES,
        reply(events=stream_events(error_at=4)),
        reply(
            status=429,
            body={"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}},
            headers={"request-id": "req_429"},
        ),
    )
    with pytest.raises(anthropic.APIStatusError) as midway:
        list(client.messages.create(**ARGS, stream=True))
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(**ARGS)
    assert spendwatch.flush(10)
    first, second = consume(2)
    assert core(first) == {
        "operation": "chat",
        "status": "error",
        "error_type": type(midway.value).__name__,
        "provider": "anthropic",
        "model": MODEL,
        "response_model": RESPONSE_MODEL,
        "input_tokens": 4225,
        "output_tokens": 1,
        "cache_read_tokens": 3000,
        "cache_write_tokens": 1200,
        "partial": True,
    }
    assert core(second) == {
        "operation": "chat",
        "status": "error",
        "error_type": "RateLimitError",
        "provider": "anthropic",
        "model": MODEL,
    }
    assert second["request_id"] == "req_429" == limited.value.request_id


async def test_async_client(aclient, llm, reply, consume):
    llm.script(
        MESSAGES,
        reply(body=MESSAGE),
        reply(events=stream_events()),
        reply(events=stream_events()),
    )
    message = await aclient.messages.create(**ARGS)
    assert message.usage.input_tokens == 25
    stream = await aclient.messages.create(**ARGS, stream=True)
    assert isinstance(stream, anthropic.AsyncStream)
    assert [e.type async for e in stream][-1] == "message_stop"
    async with aclient.messages.stream(**ARGS) as helper:
        assert await helper.get_final_text() == "Hello"
    assert await spendwatch.aflush(10)
    events = await asyncio.to_thread(consume, 3)
    assert [core(e) for e in events] == [EXPECTED, EXPECTED, EXPECTED]


def test_raw_response_message_and_stream(client, llm, reply, consume):
    llm.script(
        MESSAGES,
        reply(body=MESSAGE, headers={"request-id": "req_raw"}),
        reply(events=stream_events(), headers={"request-id": "req_raw_s"}),
    )
    raw = client.messages.with_raw_response.create(**ARGS)
    assert type(raw) is anthropic.APIResponse and raw.headers["request-id"] == "req_raw"
    message = raw.parse()
    # Parsed once, for the event: the caller gets that very object from the library's cache.
    assert list(raw._parsed_by_type.values()) == [message]
    assert raw.parse() is message and message.content[0].text == "Hello!"
    raw = client.messages.with_raw_response.create(**ARGS, stream=True)
    stream = raw.parse()
    assert isinstance(stream, anthropic.Stream) and raw.parse() is stream
    assert [e.type for e in stream][-1] == "message_stop"
    assert spendwatch.flush(10)
    plain, streamed = consume(2)
    assert core(plain) == EXPECTED and plain["request_id"] == "req_raw"
    assert core(streamed) == EXPECTED and streamed["request_id"] == "req_raw_s"


def test_streaming_response_is_recorded_when_parsed(client, llm, reply, consume):
    llm.script(MESSAGES, reply(body=MESSAGE, headers={"request-id": "req_sr"}))
    with client.messages.with_streaming_response.create(**ARGS) as response:
        message = response.parse()
    assert message.usage.cache_read_input_tokens == 3000
    assert spendwatch.flush(10)
    (event,) = consume(1)
    assert core(event) == EXPECTED and event["request_id"] == "req_sr"


async def test_async_raw_and_streaming_response(aclient, llm, reply, consume):
    llm.script(
        MESSAGES,
        reply(body=MESSAGE, headers={"request-id": "req_araw"}),
        reply(body=MESSAGE, headers={"request-id": "req_asr"}),
    )
    raw = await aclient.messages.with_raw_response.create(**ARGS)
    assert type(raw) is anthropic.AsyncAPIResponse
    message = await raw.parse()  # a coroutine here: the SDK awaited it before
    assert await raw.parse() is message and message.usage.input_tokens == 25
    async with aclient.messages.with_streaming_response.create(**ARGS) as response:
        parsed = await response.parse()
    assert parsed.content[0].text == "Hello!"
    assert await spendwatch.aflush(10)
    plain, streamed = await asyncio.to_thread(consume, 2)
    assert core(plain) == EXPECTED and plain["request_id"] == "req_araw"
    assert core(streamed) == EXPECTED and streamed["request_id"] == "req_asr"
