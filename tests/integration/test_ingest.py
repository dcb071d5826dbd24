"""``spendwatch ingest``: the real OpenTelemetry SDK's OTLP/HTTP exporter and raw HTTP requests
against the aiohttp server, events read back from the real Tansu broker (key = service)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import orjson
import pytest
from aiohttp import web
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from ingest.producer import UsageProducer
from ingest.server import build_app
from ingest.settings import IngestSettings
from schemas.events import validate_event
from streams import topics
from streams.broker import free_port
from streams.pricing import Pricer
from tests.support.topic import read_topic

pytestmark = pytest.mark.integration

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# gpt-4o-mini, USD per million tokens: input 0.15, output 0.60 -> 2,006 / 300 tokens cost
GPT_4O_MINI_NUSD = int((2006 * Decimal("0.15") + 300 * Decimal("0.60")) * 1000)  # 480,900
CHAT_ATTRIBUTES = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.response.id": "chatcmpl-ts-1",
    "gen_ai.usage.input_tokens": 2006,
    "gen_ai.usage.output_tokens": 300,
}


async def serve(bootstrap: str, *, max_body_bytes: int = 64 * 1024, timeout_s: float = 5.0):
    settings = IngestSettings(token=TOKEN, max_body_bytes=max_body_bytes, retry_after_s=7)
    producer = UsageProducer(bootstrap, timeout_s=timeout_s)
    runner = web.AppRunner(build_app(settings, producer))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@pytest.fixture
async def ingest(broker) -> AsyncIterator[str]:
    runner, url = await serve(broker.bootstrap_servers)
    yield url
    await runner.cleanup()


async def usage_records(broker, expected: int):
    return await read_topic(broker.bootstrap_servers, topics.USAGE, expected, timeout_s=10)


def span_event_id(trace_id: int, span_id: int) -> str:
    seed = b"otlp-span:" + trace_id.to_bytes(16, "big") + span_id.to_bytes(8, "big")
    return str(uuid.UUID(bytes=hashlib.sha256(seed).digest()[:16], version=4))


def export_spans(url: str) -> list[tuple[int, int]]:
    """In a thread: an app traced with the OpenTelemetry SDK, exporting over OTLP/HTTP
    (protobuf) to the ingest endpoint. Returns the (trace id, span id) of the model call."""
    resource = {"service.name": "ts-checkout", "deployment.environment.name": "prod"}
    provider = TracerProvider(resource=Resource.create(resource))
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers=AUTH, timeout=10)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("POST /checkout"):  # not a model call
        with tracer.start_as_current_span("chat gpt-4o-mini") as span:
            span.set_attributes(CHAT_ATTRIBUTES)
            ids = (span.get_span_context().trace_id, span.get_span_context().span_id)
        with tracer.start_as_current_span("chat gpt-4o-mini") as recorded:
            # recorded by spendwatch.instrument() in the app already: skipped here
            recorded.set_attributes({**CHAT_ATTRIBUTES, "spendwatch.recorded": True})
    provider.shutdown()
    return [ids]


async def test_otlp_exporter_spans_become_usage_events(ingest, broker):
    [(trace_id, span_id)] = await asyncio.to_thread(export_spans, ingest)
    (record,) = await usage_records(broker, 1)
    assert record.key == b"ts-checkout"
    event, rejection = validate_event(record.value)
    assert rejection is None and event is not None
    assert {k: v for k, v in event.items() if k not in ("ts", "latency_ms")} == {
        "schema_version": 1,
        "event_id": span_event_id(trace_id, span_id),
        "service": "ts-checkout",
        "environment": "prod",
        "operation": "chat",
        "status": "ok",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "response_model": "gpt-4o-mini-2024-07-18",
        "request_id": "chatcmpl-ts-1",
        "input_tokens": 2006,
        "output_tokens": 300,
    }
    assert Pricer().price(event).cost_nusd == GPT_4O_MINI_NUSD == 480_900


def otlp_json(service: str, span_id: str, **extra: object) -> dict:
    attributes = [
        {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
        {"key": "gen_ai.provider.name", "value": {"stringValue": "anthropic"}},
        {"key": "gen_ai.request.model", "value": {"stringValue": "claude-3-5-haiku-latest"}},
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "3100"}},  # a string: int64
        {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 500}},
        {"key": "gen_ai.usage.cache_read.input_tokens", "value": {"intValue": "2000"}},
        {"key": "gen_ai.usage.cache_creation.input_tokens", "value": {"intValue": "1000"}},
    ]
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": span_id,
        "name": "chat claude",
        "kind": 3,
        "startTimeUnixNano": "1767225600000000000",
        "endTimeUnixNano": "1767225601250000000",
        "attributes": attributes,
        "status": {},
        **extra,
    }
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [span]}]}]}


async def test_otlp_json_partial_success_and_stable_event_ids(ingest, broker):
    body = otlp_json("go-worker", "eee19b7ec3c1b174")
    body["resourceSpans"] += otlp_json("bad service name!", "eee19b7ec3c1b175")["resourceSpans"]
    async with aiohttp.ClientSession(headers=AUTH) as http:
        for _ in range(2):  # an exporter resending after a timeout: same event ids
            async with http.post(f"{ingest}/v1/traces", json=body) as response:
                assert response.status == 200
                answer = await response.json()
                assert answer["partialSuccess"]["rejectedSpans"] == 1
                assert "service.name" in answer["partialSuccess"]["errorMessage"]
    first, second = await usage_records(broker, 2)
    assert first.value == second.value and first.key == b"go-worker"
    event = orjson.loads(first.value)
    assert event["ts"] == "2026-01-01T00:00:01.250000Z" and event["latency_ms"] == 1250.0
    assert (event["input_tokens"], event["cache_read_tokens"], event["cache_write_tokens"]) == (
        3100,
        2000,
        1000,
    )
    # claude-3-5-haiku, USD per million: input 0.80, cache read 0.08, cache write 1.00, out 4.
    expected = 100 * Decimal("0.80") + 2000 * Decimal("0.08") + 1000 * Decimal(1) + 500 * 4
    assert Pricer().price(event).cost_nusd == int(expected * 1000) == 3_240_000


def line(**fields: object) -> bytes:
    event = {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "ts": "2026-01-01T00:00:00Z",
        "service": "java-billing",
        "operation": "chat",
        "status": "ok",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 2006,
        "output_tokens": 300,
        **fields,
    }
    return orjson.dumps(event)


async def test_json_lines_with_per_line_results(ingest, broker):
    good, also_good = line(), line(service="node-search", operation="geocode")
    inconsistent = line(cache_read_tokens=5000)
    body = b"\n".join([good, inconsistent, b"", b"{not json", also_good]) + b"\n"
    async with aiohttp.ClientSession(headers=AUTH) as http:
        async with http.post(
            f"{ingest}/v1/events", data=body, headers={"Content-Type": "application/x-ndjson"}
        ) as response:
            assert response.status == 400
            answer = await response.json()
        async with http.post(
            f"{ingest}/v1/events", data=good, headers={"Content-Type": "application/x-ndjson"}
        ) as response:
            assert response.status == 200
            assert (await response.json())["accepted"] == 1
    assert answer["accepted"] == 2 and answer["rejected"] == 2
    results = answer["results"]
    assert [(r["line"], r["status"]) for r in results] == [
        (1, "accepted"),
        (2, "rejected"),
        (4, "rejected"),
        (5, "accepted"),
    ]
    assert results[0]["event_id"] == orjson.loads(good)["event_id"]
    assert results[1]["reason"].startswith("inconsistent: cache_read_tokens")
    assert results[2]["reason"].startswith("not_json")
    records = await usage_records(broker, 3)
    assert [(r.key, r.value) for r in records] == [
        (b"java-billing", good),
        (b"node-search", also_good),
        (b"java-billing", good),  # sent twice by the client: the pipeline drops the copy
    ]


async def test_auth_bounds_and_bad_bodies(broker):
    runner, url = await serve(broker.bootstrap_servers, max_body_bytes=4096)
    ndjson = {"Content-Type": "application/x-ndjson"}
    try:
        async with aiohttp.ClientSession() as http:

            async def post(path: str, data: bytes, **headers: str) -> tuple[int, bytes, str]:
                async with http.post(f"{url}{path}", data=data, headers=headers) as response:
                    return response.status, await response.read(), response.content_type

            assert (await post("/v1/events", line(), **ndjson))[0] == 401
            bad_token = {"Authorization": "Bearer not-the-token-at-all"}
            assert (await post("/v1/events", line(), **ndjson, **bad_token))[0] == 401
            status, body, _ = await post("/v1/events", b"x" * 5000, **ndjson, **AUTH)
            assert status == 413 and b"exceeds 4096" in body
            bomb = gzip.compress(b"\n" * 100_000)  # 100 kB once inflated, 4 kB allowed
            gz = {"Content-Encoding": "gzip"}
            assert (await post("/v1/events", bomb, **ndjson, **gz, **AUTH))[0] == 413
            csv = {"Content-Type": "text/csv"}
            status, body, _ = await post("/v1/events", line(), **csv, **AUTH)
            assert status == 415
            proto = {"Content-Type": "application/x-protobuf"}
            status, body, content_type = await post("/v1/traces", b"\xff\xff\xff", **proto, **AUTH)
            assert status == 400 and content_type == "application/x-protobuf"
            assert b"not an OTLP protobuf" in body  # a google.rpc.Status carrying the reason
            json = {"Content-Type": "application/json"}
            status, body, _ = await post("/v1/traces", b"[1]", **json, **AUTH)
            assert status == 400 and b"resourceSpans" in body
            # Positive control: a gzipped valid line within the bound is accepted.
            zipped = gzip.compress(line())
            status, body, _ = await post("/v1/events", zipped, **ndjson, **gz, **AUTH)
            assert status == 200 and orjson.loads(body)["accepted"] == 1
            empty = ExportTraceServiceResponse()
            status, body, _ = await post(
                "/v1/traces", b"", **proto, **AUTH
            )  # an empty export request is valid
            assert status == 200 and body == empty.SerializeToString()
    finally:
        await runner.cleanup()
    assert len(await usage_records(broker, 1)) == 1


async def test_broker_unavailable_is_503_with_retry_after(broker):
    down, down_url = await serve(f"127.0.0.1:{free_port()}", timeout_s=1.0)
    up, up_url = await serve(broker.bootstrap_servers)
    event = line()
    headers = {**AUTH, "Content-Type": "application/x-ndjson"}
    try:
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.post(f"{down_url}/v1/events", data=event) as response:
                assert response.status == 503
                assert response.headers["Retry-After"] == "7"
                assert "nothing was accepted" in (await response.json())["message"]
            proto = {"Content-Type": "application/x-protobuf"}
            body = b""  # even an export with nothing to produce needs no broker: 200
            async with http.post(f"{down_url}/v1/traces", data=body, headers=proto) as response:
                assert response.status == 200
            async with http.post(f"{up_url}/v1/events", data=event) as response:  # control
                assert response.status == 200
    finally:
        await down.cleanup()
        await up.cleanup()
    [record] = await usage_records(broker, 1)
    assert record.value == event


def test_cli_ingest_to_worker_to_clickhouse(broker, tmp_path):
    """As a user runs it: ``spendwatch ingest`` and ``spendwatch worker`` on one config; an
    event line and an OTLP JSON span end up priced in ClickHouse to the nano-dollar."""
    import subprocess
    import sys
    import time
    import urllib.request
    from datetime import UTC, datetime

    from streams.broker import stop_process
    from tests.support.worker import running_worker, wait_for

    port = free_port()
    config = f"""
[kafka]
bootstrap_servers = "{broker.bootstrap_servers}"

[worker]
http_port = {{http_port}}
state_dir = "{tmp_path / "state"}"

[clickhouse]
dsn = "chdb://{tmp_path / "chdb"}"

[ingest]
token = "{TOKEN}"
port = {port}
"""
    now_ns = time.time_ns()
    now = datetime.fromtimestamp(now_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    span_body = otlp_json("go-worker", "eee19b7ec3c1b176")
    span = span_body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["startTimeUnixNano"], span["endTimeUnixNano"] = str(now_ns - 10**9), str(now_ns)

    def post(path: str, body: bytes, content_type: str) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}",
            data=body,
            headers={**AUTH, "Content-Type": content_type},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)

    with running_worker(config, tmp_path) as worker:
        ingest = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "ingest", "--config", str(worker.config)],
            start_new_session=True,
        )
        try:

            def healthy() -> bool:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    return r.status == 200

            wait_for(healthy, 60, "spendwatch ingest's /healthz")
            assert post("/v1/events", line(ts=now), "application/x-ndjson") == 200
            assert post("/v1/traces", orjson.dumps(span_body), "application/json") == 200
            wait_for(
                lambda: worker.query("SELECT count() FROM usage_events") == [[2]],
                60,
                "two priced rows",
            )
            rows = worker.query("SELECT service, cost_nusd FROM usage_events ORDER BY service")
            assert rows == [["go-worker", 3_240_000], ["java-billing", GPT_4O_MINI_NUSD]]
        finally:
            stop_process(ingest)
