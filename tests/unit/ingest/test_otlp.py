"""OTLP JSON decoding and span -> event mapping (pure)."""

from __future__ import annotations

import orjson
import pytest

from ingest.otlp import BadRequest, events_from_spans, spans_from_json


def request(*spans: dict, service: str = "svc") -> bytes:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    body = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": list(spans)}]}]}
    return orjson.dumps(body)


def chat_span(**extra: object) -> dict:
    attributes = [
        {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
        {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "10"}},
        {"key": "gen_ai.response.finish_reasons", "value": {"arrayValue": {"values": [
            {"stringValue": "stop"}]}}},
    ]  # fmt: skip
    return {
        "startTimeUnixNano": "1767225600000000000",
        "endTimeUnixNano": "1767225600500000000",
        "attributes": attributes,
        **extra,
    }


def test_values_and_times():
    [span] = spans_from_json(request(chat_span(traceId="ab" * 16, spanId="cd" * 8)))
    assert span.attributes["gen_ai.usage.input_tokens"] == 10
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert (span.trace_id, span.span_id) == (b"\xab" * 16, b"\xcd" * 8)
    (event,), rejected = events_from_spans([span])
    assert rejected == [] and event.key == b"svc"
    assert orjson.loads(event.value)["latency_ms"] == 500.0


def test_spans_without_ids_get_distinct_event_ids():
    spans = spans_from_json(request(chat_span(), chat_span()))
    produced, _ = events_from_spans(spans)
    ids = {orjson.loads(p.value)["event_id"] for p in produced}
    assert len(ids) == 2


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"resourceSpans": {}}', request({"attributes": "x"}),
     request(chat_span(traceId="zz"))],
)  # fmt: skip
def test_bad_requests_say_why(body):
    with pytest.raises(BadRequest):
        spans_from_json(body)
