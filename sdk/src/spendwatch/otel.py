"""Spend from OpenTelemetry GenAI spans: one span processor, app code unchanged.

    pip install "spendwatch[otel]"

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from spendwatch.otel import SpendwatchSpanProcessor

    spendwatch.configure(bootstrap_servers="kafka:9092", service="checkout")
    provider = TracerProvider()
    provider.add_span_processor(SpendwatchSpanProcessor())
    trace.set_tracer_provider(provider)
    OpenAIInstrumentor().instrument()      # any GenAI instrumentation

Each finished span that describes a model call (see :mod:`spendwatch.spans`) becomes one usage
event: provider, request / response model, input / output / cache read / cache creation /
reasoning tokens, ``error.type``, the span's duration as ``latency_ms`` and its end as ``ts``.

A call made through a client wrapped by ``spendwatch.instrument()`` is already recorded there:
the processor marks its span ``spendwatch.recorded = true`` when it starts (so an exporter or
``spendwatch ingest`` downstream skips it too) and records nothing for it. The processor works
in the thread that ends the span, costs a few microseconds, and never raises into it.
"""

from __future__ import annotations

import contextlib
import logging

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from . import runtime
from .event import TS_KEY, build
from .instrument.recorder import IN_CALL
from .spans import RECORDED_ATTRIBUTE, usage_fields

log = logging.getLogger("spendwatch")


class SpendwatchSpanProcessor(SpanProcessor):
    """Turns finished GenAI spans into spendwatch usage events (queued like ``record()``).

    ``service``: the service named on these events (default: the configured one). ``tags``:
    added to each event (with the configured tags).
    """

    def __init__(self, *, service: str | None = None, tags: dict[str, str] | None = None) -> None:
        self._service = service
        self._tags = dict(tags) if tags else None

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if IN_CALL.get():
            # A span that refuses the attribute is counted twice rather than breaking the call.
            with contextlib.suppress(Exception):
                span.set_attribute(RECORDED_ATTRIBUTE, True)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            self._record(span)
        except Exception as exc:  # never raise into the code that ended the span
            runtime.reject()
            log.warning("spendwatch: span %r not recorded: %s", span.name, exc)

    def _record(self, span: ReadableSpan) -> None:
        attributes = span.attributes
        if not attributes or span.start_time is None or span.end_time is None:
            return
        status = span.status
        fields = usage_fields(
            attributes,
            start_ns=span.start_time,
            end_ns=span.end_time,
            status_error=status.status_code is StatusCode.ERROR,
            status_message=status.description,
        )
        if fields is None:
            return
        rt = runtime.current()
        if rt is None:
            runtime.reject()
            return
        operation = fields.pop("operation")
        event = build(rt.base, operation, service=self._service, tags=self._tags, **fields)
        event[TS_KEY] = span.end_time
        rt.submit(event)

    def shutdown(self) -> None:
        """Nothing of its own to stop: the SDK's queue is flushed by ``spendwatch.shutdown``."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Wait until the events recorded so far are sent (``spendwatch.flush``)."""
        return runtime.flush(timeout_millis / 1000)


__all__ = ["SpendwatchSpanProcessor"]
