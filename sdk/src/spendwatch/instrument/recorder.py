"""One instrumented provider call: its timing, what the response said, and its event.

``CallRecorder.finish`` records the event exactly once, whatever ends the call first (the
response, an exception, the end of a stream, ``close()``, or garbage collection of an
abandoned stream), and never raises: a response the SDK cannot turn into a valid event is
counted in ``stats().rejected`` and logged.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from typing import Any

from .. import runtime
from ..event import build

log = logging.getLogger("spendwatch")

# True while an instrumented call runs (its provider method, not the caller's code around it):
# an OpenTelemetry span started in there describes a call recorded here, and the span
# processor (``spendwatch.otel``) marks it so that it is not counted a second time.
IN_CALL: ContextVar[bool] = ContextVar("spendwatch_in_call", default=False)


class CallRecorder:
    """Mutable state of one call; the provider modules fill ``usage`` & co. as they learn it."""

    __slots__ = (
        "done",
        "error_type",
        "hide_usage_chunk",
        "model",
        "needs_terminal",
        "operation",
        "provider",
        "raw",
        "request_id",
        "response_id",
        "response_model",
        "saw_terminal",
        "start_ns",
        "usage",
    )

    def __init__(self, provider: str, operation: str, model: object) -> None:
        self.provider = provider
        self.operation = operation
        self.model = model if isinstance(model, str) and model else None
        self.start_ns = time.perf_counter_ns()
        self.usage: dict[str, int] = {}
        self.raw: dict[str, int] = {}  # provider-shaped counters accumulated from a stream
        self.response_model: str | None = None
        self.response_id: str | None = None
        self.request_id: str | None = None
        self.error_type: str | None = None
        self.hide_usage_chunk = False
        self.needs_terminal = False  # the stream has an explicit last event (Anthropic, Responses)
        self.saw_terminal = False
        self.done = False

    def fail(self, exc: BaseException) -> None:
        """The call raised before a response: an error event (the caller re-raises ``exc``)."""
        request_id = getattr(exc, "request_id", None)
        if isinstance(request_id, str) and request_id:
            self.request_id = request_id
        self.finish(error_type=type(exc).__name__)

    def end_of_stream(self) -> None:
        """The stream's iterator ended by itself."""
        self.finish(partial=self.needs_terminal and not self.saw_terminal)

    def finish(self, *, error_type: str | None = None, partial: bool = False) -> None:
        if self.done:
            return
        self.done = True
        latency_ms = (time.perf_counter_ns() - self.start_ns) / 1e6
        error_type = error_type or self.error_type
        try:
            rt = runtime.current()
            if rt is None:
                runtime.reject()
                return
            request_id = self.request_id or self.response_id
            usage = self.usage
            get = usage.get
            event = build(  # positionally, in build's order (hot path: see build)
                rt.base,
                self.operation,
                "ok" if error_type is None else "error",
                self.provider,
                self.model or self.response_model,
                self.response_model,
                get("input_tokens"),
                get("output_tokens"),
                get("cache_read_tokens"),
                get("cache_write_tokens"),
                get("reasoning_tokens"),
                None,  # unit
                None,  # quantity
                None,  # cost_usd
                latency_ms,
                error_type,
                False,  # cache_hit
                partial,
                request_id[:256] if request_id else None,
            )
            rt.submit(event)
        except Exception as exc:  # never raise into the instrumented call
            runtime.reject()
            log.warning(
                "spendwatch: %s %s event not recorded: %s", self.provider, self.operation, exc
            )


def as_int(value: Any) -> int | None:
    """A provider's token count, or None when absent / not an int."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def put(usage: dict[str, int], name: str, value: Any) -> None:
    """Set ``usage[name]`` when the provider gave a count."""
    count = as_int(value)
    if count is not None:
        usage[name] = count
