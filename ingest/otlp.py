"""OTLP/HTTP trace requests -> spans -> usage events (pure; no network, no clock).

Both encodings of ``ExportTraceServiceRequest``: binary protobuf (``application/x-protobuf``,
decoded with the ``opentelemetry-proto`` classes) and JSON (``application/json``, the OTLP JSON
mapping: lowerCamelCase names, hex trace and span ids, 64-bit integers as strings or numbers).

Each span that describes a model call (``spendwatch.spans``) becomes one usage event:

* ``service`` = the resource's ``service.name``, ``environment`` = its
  ``deployment.environment.name`` (or the older ``deployment.environment``);
* ``event_id`` derived from the trace and span ids, so an exporter that resends a batch (it
  retries after a 503 or a timeout) sends the same ids, which the pipeline de-duplicates;
* ``ts`` = the span's end.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from spendwatch import fields as sdk_fields
from spendwatch.errors import InvalidEventError
from spendwatch.event import TS_KEY, build, encode
from spendwatch.spans import usage_fields

from schemas.events import validate_event


class BadRequest(ValueError):
    """The request body is not an OTLP trace export request; the message says why."""


@dataclass(frozen=True, slots=True)
class SpanData:
    """What the mapping needs from one span and its resource."""

    attributes: dict[str, Any]
    resource: dict[str, Any]
    start_ns: int
    end_ns: int
    status_error: bool
    status_message: str
    trace_id: bytes
    span_id: bytes


@dataclass(frozen=True, slots=True)
class Produced:
    """One usage event ready for the topic: its key (the service) and its JSON bytes."""

    key: bytes
    value: bytes


# -- protobuf ------------------------------------------------------------------------------


def _any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(_any_value(item) for item in value.array_value.values)
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _any_value(kv.value) for kv in pairs}


def spans_from_protobuf(body: bytes) -> list[SpanData]:
    """Decode a binary ``ExportTraceServiceRequest``; ``BadRequest`` if it is not one."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise BadRequest(f"not an OTLP protobuf ExportTraceServiceRequest: {exc}") from None
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    SpanData(
                        attributes=_attributes(span.attributes),
                        resource=resource,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        status_error=span.status.code == 2,  # STATUS_CODE_ERROR
                        status_message=span.status.message,
                        trace_id=span.trace_id,
                        span_id=span.span_id,
                    )
                )
    return spans


# -- JSON ----------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if not isinstance(value, dict) or not value:
        return None
    kind, item = next(iter(value.items()))
    if kind == "stringValue" or kind == "boolValue":
        return item
    if kind == "intValue":
        return int(item)
    if kind == "doubleValue":
        return float(item)
    if kind == "arrayValue":
        return tuple(_json_value(v) for v in (item or {}).get("values", []))
    if kind == "kvlistValue":
        return _json_attributes((item or {}).get("values", []))
    if kind == "bytesValue":
        return base64.b64decode(item)
    return None


def _json_attributes(pairs: Any) -> dict[str, Any]:
    if not isinstance(pairs, list):
        raise BadRequest("attributes must be a list of {key, value}")
    return {kv["key"]: _json_value(kv.get("value")) for kv in pairs}


def _list(obj: Any, name: str) -> list[Any]:
    value = obj.get(name, []) if isinstance(obj, dict) else None
    if not isinstance(value, list):
        raise BadRequest(f"{name} must be a list")
    return value


def _json_span(span: Any, resource: dict[str, Any]) -> SpanData:
    if not isinstance(span, dict):
        raise BadRequest("a span must be an object")
    status = span.get("status") or {}
    return SpanData(
        attributes=_json_attributes(span.get("attributes", [])),
        resource=resource,
        start_ns=int(span.get("startTimeUnixNano", 0)),
        end_ns=int(span.get("endTimeUnixNano", 0)),
        status_error=status.get("code") in (2, "STATUS_CODE_ERROR"),
        status_message=str(status.get("message", "")),
        trace_id=bytes.fromhex(span.get("traceId", "")),
        span_id=bytes.fromhex(span.get("spanId", "")),
    )


def spans_from_json(body: bytes) -> list[SpanData]:
    """Decode an OTLP JSON ``ExportTraceServiceRequest``; ``BadRequest`` if it is not one."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"not JSON: {exc}") from None
    if not isinstance(request, dict):
        raise BadRequest("an OTLP JSON request must be an object with resourceSpans")
    spans = []
    try:
        for resource_spans in _list(request, "resourceSpans"):
            resource_obj = resource_spans.get("resource") or {}
            resource = _json_attributes(resource_obj.get("attributes", []))
            for scope_spans in _list(resource_spans, "scopeSpans"):
                for span in _list(scope_spans, "spans"):
                    spans.append(_json_span(span, resource))
    except BadRequest:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
        raise BadRequest(f"not an OTLP JSON ExportTraceServiceRequest: {exc!r}"[:300]) from None
    return spans


# -- spans -> events -----------------------------------------------------------------------


def event_from_span(span: SpanData) -> Produced | None:
    """The usage event of one span, None if the span is not a model call (or was recorded by
    ``spendwatch.instrument()`` already). Raises ``ValueError`` with the reason for a model
    call that makes no valid event."""
    found = usage_fields(
        span.attributes,
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        status_error=span.status_error,
        status_message=span.status_message,
    )
    if found is None:
        return None
    service = span.resource.get("service.name") or "unknown_service"
    base: dict[str, Any] = {}
    try:
        base["service"] = sdk_fields.service_name("resource service.name", service)
        environment = span.resource.get("deployment.environment.name") or span.resource.get(
            "deployment.environment"
        )
        if isinstance(environment, str) and environment:
            base["environment"] = environment[:64]
        operation = found.pop("operation")
        event = build(base, operation, **found)
    except InvalidEventError as exc:
        raise ValueError(str(exc)) from None
    event[TS_KEY] = span.end_ns
    seed = None  # a span without ids (not valid OTLP, but seen) gets a random event id
    if span.trace_id or span.span_id:
        seed = hashlib.sha256(b"otlp-span:" + span.trace_id + span.span_id).digest()[:16]
    value = encode(event, seed)
    checked, rejection = validate_event(value)
    if checked is None:
        raise ValueError(str(rejection))
    return Produced(base["service"].encode(), value)


def events_from_spans(spans: list[SpanData]) -> tuple[list[Produced], list[str]]:
    """(events to produce, reasons of the model-call spans that made no valid event)."""
    produced: list[Produced] = []
    rejected: list[str] = []
    for span in spans:
        try:
            event = event_from_span(span)
        except ValueError as exc:
            rejected.append(f"span {span.span_id.hex()}: {exc}")
            continue
        if event is not None:
            produced.append(event)
    return produced, rejected
