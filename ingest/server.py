"""The HTTP side of ``spendwatch ingest`` (aiohttp).

``POST /v1/traces``  OTLP/HTTP ``ExportTraceServiceRequest``, ``application/x-protobuf`` or
                     ``application/json`` (gzip allowed): GenAI spans -> usage events.
                     200 with an ``ExportTraceServiceResponse`` (``partial_success`` counts
                     the model-call spans that made no valid event, with the first reasons).
``POST /v1/events``  JSON lines of usage events v1 (``application/x-ndjson``): 200 when every
                     line was accepted, 400 when any was refused; the body lists each line's
                     result. Accepted lines of a 400 answer are produced: do not resend them.
``GET /healthz``     200 ``{"status": "ok", "broker": "connected" | "not connected"}``.

Every POST needs ``Authorization: Bearer <token>`` (401 without). A body larger than
``max_body_bytes`` (also once decompressed) gets 413; an unknown content type 415; an
undecodable body 400 with the reason. When the broker does not acknowledge the events within
``produce_timeout_s``: 503 with ``Retry-After`` and nothing reported as accepted.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import orjson
from aiohttp import web

from .lines import parse_lines
from .otlp import BadRequest, events_from_spans, spans_from_json, spans_from_protobuf
from .producer import BrokerUnavailable, UsageProducer
from .settings import IngestSettings

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
NDJSON = ("application/x-ndjson", "application/jsonl", "application/json-lines", "text/plain")
MAX_REASONS = 10  # reasons quoted in an OTLP partial-success message

SETTINGS: web.AppKey[IngestSettings] = web.AppKey("settings", IngestSettings)
PRODUCER: web.AppKey[UsageProducer] = web.AppKey("producer", UsageProducer)


def _rpc_status(code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` protobuf (field 1 code, field 2 message), what OTLP/HTTP
    servers answer a failed protobuf request with."""
    text = message.encode()

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    return b"\x08" + varint(code) + b"\x12" + varint(len(text)) + text


def _error(request: web.Request, status: int, message: str, **headers: str) -> web.Response:
    """An error answer in the request's own encoding (OTLP asks for that)."""
    if request.path == "/v1/traces" and request.content_type == PROTOBUF:
        grpc_code = {400: 3, 401: 16, 413: 3, 415: 3, 503: 14}.get(status, 2)
        return web.Response(
            status=status,
            body=_rpc_status(grpc_code, message),
            content_type=PROTOBUF,
            headers=headers,
        )
    body = orjson.dumps({"code": status, "message": message})
    return web.Response(status=status, body=body, content_type=JSON, headers=headers)


async def _body(request: web.Request) -> bytes:
    """The request body within ``max_body_bytes``; raises ``_Refused``. aiohttp inflates a
    ``Content-Encoding: gzip`` / ``deflate`` body as it streams in, so the bound applies to
    the inflated bytes (a small compressed bomb stops at the bound)."""
    settings = request.app[SETTINGS]
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise _Refused(413, f"body of {request.content_length} bytes exceeds {limit}")
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body.extend(chunk)
        if len(body) > limit:
            raise _Refused(413, f"body exceeds {limit} bytes")
    return bytes(body)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _authorized(request: web.Request) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    expected = request.app[SETTINGS].token
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), expected)


async def _unavailable(request: web.Request, exc: BrokerUnavailable) -> web.Response:
    log.warning("broker did not acknowledge: %s", exc)
    retry_after = str(request.app[SETTINGS].retry_after_s)
    return _error(
        request,
        503,
        f"the broker did not acknowledge the events; nothing was accepted, retry: {exc}",
        **{"Retry-After": retry_after},
    )


async def traces(request: web.Request) -> web.Response:
    if not _authorized(request):
        return _error(request, 401, "missing or wrong bearer token")
    content_type = request.content_type
    if content_type not in (PROTOBUF, JSON):
        return _error(request, 415, f"Content-Type must be {PROTOBUF} or {JSON}")
    try:
        body = await _body(request)
        spans = spans_from_protobuf(body) if content_type == PROTOBUF else spans_from_json(body)
    except _Refused as refused:
        return _error(request, refused.status, refused.message)
    except BadRequest as exc:
        return _error(request, 400, str(exc))
    produced, rejected = events_from_spans(spans)
    try:
        await request.app[PRODUCER].produce(produced)
    except BrokerUnavailable as exc:
        return await _unavailable(request, exc)
    message = "; ".join(rejected[:MAX_REASONS])
    if content_type == PROTOBUF:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTracePartialSuccess,
            ExportTraceServiceResponse,
        )

        response = ExportTraceServiceResponse()
        if rejected:
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(rejected_spans=len(rejected), error_message=message)
            )
        return web.Response(body=response.SerializeToString(), content_type=PROTOBUF)
    answer: dict[str, Any] = {}
    if rejected:
        answer["partialSuccess"] = {"rejectedSpans": len(rejected), "errorMessage": message}
    return web.Response(body=orjson.dumps(answer), content_type=JSON)


async def events(request: web.Request) -> web.Response:
    if not _authorized(request):
        return _error(request, 401, "missing or wrong bearer token")
    if request.content_type not in (*NDJSON, JSON):
        return _error(request, 415, "Content-Type must be application/x-ndjson (JSON lines)")
    try:
        body = await _body(request)
    except _Refused as refused:
        return _error(request, refused.status, refused.message)
    produced, results = parse_lines(body)
    if not results:
        return _error(request, 400, "no events: the body has no non-blank line")
    try:
        await request.app[PRODUCER].produce(produced)
    except BrokerUnavailable as exc:
        return await _unavailable(request, exc)
    rejected = sum(1 for r in results if r.reason is not None)
    answer = {
        "accepted": len(results) - rejected,
        "rejected": rejected,
        "results": [r.to_dict() for r in results],
    }
    status = 400 if rejected else 200
    return web.Response(status=status, body=orjson.dumps(answer), content_type=JSON)


async def healthz(request: web.Request) -> web.Response:
    connected = request.app[PRODUCER].connected
    body = {"status": "ok", "broker": "connected" if connected else "not connected"}
    return web.Response(body=orjson.dumps(body), content_type=JSON)


def build_app(settings: IngestSettings, producer: UsageProducer) -> web.Application:
    """The aiohttp application; the producer is stopped when the application shuts down."""
    # aiohttp's own bound applies to request.read()/post(); bodies are read in _body here.
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[PRODUCER] = producer
    app.router.add_post("/v1/traces", traces)
    app.router.add_post("/v1/events", events)
    app.router.add_get("/healthz", healthz)

    async def stop_producer(_app: web.Application) -> None:
        await producer.stop()

    app.on_cleanup.append(stop_producer)
    return app
