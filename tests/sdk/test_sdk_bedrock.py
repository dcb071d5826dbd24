"""A real boto3 ``bedrock-runtime`` client (``endpoint_url`` on a loopback server speaking the
Bedrock Runtime REST API, event streams included), instrumented with spendwatch; events read
back from a real Tansu broker and priced by the worker's pricer."""

from __future__ import annotations

import struct
import zlib
from decimal import Decimal

import boto3
import orjson
import pytest
import spendwatch
from botocore.config import Config
from botocore.exceptions import EventStreamError
from botocore.response import StreamingBody

from streams.pricing import Pricer

pytestmark = pytest.mark.integration

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
BASE = "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0"
USAGE = {
    "inputTokens": 100,
    "outputTokens": 500,
    "totalTokens": 3600,
    "cacheReadInputTokens": 2000,
    "cacheWriteInputTokens": 1000,
}
# Claude 3.5 Haiku on Bedrock, USD per million tokens: input 0.80, cache read 0.08, cache
# write 1.00, output 4.00: 100 x 0.80 + 2,000 x 0.08 + 1,000 x 1.00 + 500 x 4 = 3,240.
COST_NUSD = int(
    (100 * Decimal("0.80") + 2000 * Decimal("0.08") + 1000 * Decimal("1.00") + 500 * Decimal(4))
    * 1000
)
EXPECTED = {
    "operation": "chat",
    "status": "ok",
    "provider": "aws.bedrock",
    "model": MODEL,
    "input_tokens": 3100,
    "output_tokens": 500,
    "cache_read_tokens": 2000,
    "cache_write_tokens": 1000,
}


def event_message(headers: dict[str, str], payload: dict) -> bytes:
    """One message of the AWS event stream encoding (what ``converse_stream`` reads)."""
    encoded = b""
    for name, value in headers.items():
        raw = value.encode()
        encoded += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(raw)) + raw
    body = orjson.dumps(payload)
    total = 12 + len(encoded) + len(body) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + encoded + body
    return message + struct.pack(">I", zlib.crc32(message))


def event(kind: str, payload: dict) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return event_message(headers, payload)


STREAM = b"".join(
    [
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Paris."}}),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("messageStop", {"stopReason": "end_turn"}),
        event("metadata", {"usage": USAGE, "metrics": {"latencyMs": 321}}),
    ]
)
FAILING_STREAM = event("messageStart", {"role": "assistant"}) + event_message(
    {
        ":exception-type": "throttlingException",
        ":content-type": "application/json",
        ":message-type": "exception",
    },
    {"message": "Too many tokens, please wait."},
)
STREAM_HEADERS = {"Content-Type": "application/vnd.amazon.eventstream", "x-amzn-RequestId": "rq-s"}


@pytest.fixture
def client(llm, broker, topic):
    spendwatch.configure(bootstrap_servers=broker.bootstrap_servers, service="aws-app", topic=topic)
    bedrock = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=llm.base_url,
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": 1}),
    )
    return spendwatch.instrument(bedrock)


def core(event):
    keep = (
        "operation", "status", "provider", "model", "response_model", "request_id",
        "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "partial",
        "error_type",
    )  # fmt: skip
    return {k: event[k] for k in keep if k in event}


def test_converse_and_stream_and_errors(client, llm, reply, consume):
    converse = {
        "output": {"message": {"role": "assistant", "content": [{"text": "Paris."}]}},
        "stopReason": "end_turn",
        "usage": USAGE,
        "metrics": {"latencyMs": 321},
    }
    llm.script(
        f"{BASE}/converse",
        reply(body=converse, headers={"x-amzn-RequestId": "rq-c"}),
        reply(
            status=429,
            body={"message": "Too many requests"},
            headers={"x-amzn-ErrorType": "ThrottlingException", "x-amzn-RequestId": "rq-e"},
        ),
    )
    llm.script(
        f"{BASE}/converse-stream",
        reply(raw=STREAM, headers=STREAM_HEADERS),
        reply(raw=FAILING_STREAM, headers={**STREAM_HEADERS, "x-amzn-RequestId": "rq-f"}),
    )
    messages = [{"role": "user", "content": [{"text": "Capital of France?"}]}]
    result = client.converse(modelId=MODEL, messages=messages)
    assert result["output"]["message"]["content"][0]["text"] == "Paris."
    response = client.converse_stream(modelId=MODEL, messages=messages)
    kinds = [next(iter(e)) for e in response["stream"]]
    assert kinds == ["messageStart", "contentBlockDelta", "contentBlockStop", "messageStop",
                     "metadata"]  # fmt: skip
    with pytest.raises(client.exceptions.ThrottlingException):
        client.converse(modelId=MODEL, messages=messages)
    failing = client.converse_stream(modelId=MODEL, messages=messages)
    with pytest.raises(EventStreamError) as raised:
        list(failing["stream"])
    assert raised.value.response["Error"]["Code"] == "throttlingException"
    assert spendwatch.flush(10)

    plain, streamed, throttled, broken = consume(4)
    assert core(plain) == {**EXPECTED, "request_id": "rq-c"}
    assert core(streamed) == {**EXPECTED, "request_id": "rq-s"}
    assert core(throttled) == {
        "operation": "chat",
        "status": "error",
        "provider": "aws.bedrock",
        "model": MODEL,
        "error_type": "ThrottlingException",
    }
    assert core(broken) == {
        "operation": "chat",
        "status": "error",
        "provider": "aws.bedrock",
        "model": MODEL,
        "request_id": "rq-f",
        "error_type": "throttlingException",
        "partial": True,
    }
    pricer = Pricer()
    costs = [pricer.price(e).cost_nusd for e in (plain, streamed, throttled, broken)]
    assert costs == [COST_NUSD, COST_NUSD, 0, 0] and COST_NUSD == 3_240_000


def test_invoke_model_anthropic_body_and_other_models(client, llm, reply, consume):
    message = {
        "id": "msg_bdrk_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": [{"type": "text", "text": "Paris."}],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 100,
            "cache_read_input_tokens": 2000,
            "cache_creation_input_tokens": 1000,
            "output_tokens": 500,
        },
    }
    llm.script(f"{BASE}/invoke", reply(body=message, headers={"x-amzn-RequestId": "rq-i"}))
    llm.script(
        "/model/amazon.nova-lite-v1%3A0/invoke",
        reply(
            body={"output": {"message": {"content": [{"text": "Paris."}]}}},
            headers={
                "x-amzn-RequestId": "rq-n",
                "X-Amzn-Bedrock-Input-Token-Count": "1000",
                "X-Amzn-Bedrock-Output-Token-Count": "200",
            },
        ),
    )
    request = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100, "messages": []}
    response = client.invoke_model(modelId=MODEL, body=orjson.dumps(request))
    assert isinstance(response["body"], StreamingBody)
    assert orjson.loads(response["body"].read()) == message  # the caller still reads the body
    nova = client.invoke_model(modelId="amazon.nova-lite-v1:0", body=b"{}")
    assert orjson.loads(nova["body"].read())["output"]["message"]["content"][0]["text"] == "Paris."
    assert spendwatch.flush(10)
    anthropic_event, nova_event = consume(2)
    assert core(anthropic_event) == {
        **EXPECTED,
        "request_id": "rq-i",
        "response_model": "claude-3-5-haiku-20241022",
    }
    assert core(nova_event) == {
        "operation": "chat",
        "status": "ok",
        "provider": "aws.bedrock",
        "model": "amazon.nova-lite-v1:0",
        "request_id": "rq-n",
        "input_tokens": 1000,
        "output_tokens": 200,
    }
    pricer = Pricer()
    assert pricer.price(anthropic_event).cost_nusd == COST_NUSD
    # Nova Lite, USD per million: input 0.06, output 0.24 -> 1,000 x 0.06 + 200 x 0.24 = 108.
    assert pricer.price(nova_event).cost_nusd == 108_000


def test_only_bedrock_runtime_clients(broker, topic):
    s3 = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    with pytest.raises(TypeError, match="bedrock-runtime"):
        spendwatch.instrument(s3)
