"""OpenTelemetry GenAI span attributes -> usage event fields. Pure; imports no OpenTelemetry.

Shared by the span processor (:mod:`spendwatch.otel`, spans finished in this process) and the
``spendwatch ingest`` HTTP receiver (spans exported over OTLP by apps in any language).

A span is a model call when its ``gen_ai.operation.name`` is an inference operation (``chat``,
``text_completion``, ``generate_content``, ``embeddings``), or when it has no operation name but
names a provider (``gen_ai.provider.name``, or the older ``gen_ai.system``) and reports token
usage. Agent and tool spans (``invoke_agent``, ``execute_tool``, ...) are not: an agent span's
usage, when it has one, is the sum of the model calls inside it, which are counted themselves.

Token meaning is the OpenTelemetry one, the events' own: ``gen_ai.usage.input_tokens`` includes
cached tokens and ``gen_ai.usage.output_tokens`` includes reasoning tokens. Some
instrumentations report Anthropic-style input (cache reads and writes excluded) or Gemini-style
output (thinking excluded); when the cache counts exceed the input count, or the reasoning
count the output count, the span evidently used that meaning and the counts are added, instead
of refusing the event.

A span carrying ``spendwatch.recorded = true`` was already recorded by ``spendwatch.instrument()``
in the app (the span processor marks it): it yields no event, so a call is counted once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

RECORDED_ATTRIBUTE: Final = "spendwatch.recorded"
MAX_LATENCY_MS: Final = 86_400_000.0  # the schema's bound

INFERENCE_OPERATIONS: Final = frozenset(
    {"chat", "text_completion", "generate_content", "embeddings", "completion"}
)

# (event field, span attributes in order of preference). The later names are the older or
# widespread non-standard spellings (OpenLLMetry's cache counters, semconv <= 1.26 tokens).
_TOKENS: Final = (
    ("input_tokens", ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")),
    ("output_tokens", ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")),
    (
        "cache_read_tokens",
        ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens"),
    ),
    (
        "cache_write_tokens",
        ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens"),
    ),
    ("reasoning_tokens", ("gen_ai.usage.reasoning.output_tokens",)),
)


def _text(value: Any, max_len: int) -> str | None:
    if isinstance(value, str) and value:
        return value[:max_len]
    return None


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, float) and value >= 0 and value.is_integer():
        return int(value)
    return None


def is_model_call(attributes: Mapping[str, Any]) -> bool:
    """Whether a span with these attributes is one model call (see the module docstring)."""
    operation = attributes.get("gen_ai.operation.name")
    if operation is not None:
        return operation in INFERENCE_OPERATIONS
    if not (attributes.get("gen_ai.provider.name") or attributes.get("gen_ai.system")):
        return False
    return any(name in attributes for _field, names in _TOKENS[:2] for name in names)


def usage_fields(
    attributes: Mapping[str, Any],
    *,
    start_ns: int,
    end_ns: int,
    status_error: bool = False,
    status_message: str | None = None,
) -> dict[str, Any] | None:
    """Keyword arguments for ``spendwatch.event.build`` (``operation`` included) describing the
    model call in a finished span, or None for any other span (and for one already recorded by
    ``instrument()``). ``status_error``: the span's status is ERROR. Never raises."""
    if attributes.get(RECORDED_ATTRIBUTE) is True or not is_model_call(attributes):
        return None
    fields: dict[str, Any] = {
        "operation": _text(attributes.get("gen_ai.operation.name"), 128) or "chat"
    }
    provider = _text(attributes.get("gen_ai.provider.name"), 64) or _text(
        attributes.get("gen_ai.system"), 64
    )
    if provider is not None:
        fields["provider"] = provider
    request_model = _text(attributes.get("gen_ai.request.model"), 128)
    response_model = _text(attributes.get("gen_ai.response.model"), 128)
    if request_model or response_model:
        fields["model"] = request_model or response_model
    if response_model:
        fields["response_model"] = response_model
    response_id = _text(attributes.get("gen_ai.response.id"), 256)
    if response_id:
        fields["request_id"] = response_id
    for field, names in _TOKENS:
        for name in names:
            count = _count(attributes.get(name))
            if count is not None:
                fields[field] = count
                break
    _repair(fields)
    if "model" not in fields:  # tokens without a model cannot be priced or stored
        for field, _names in _TOKENS:
            fields.pop(field, None)
    error_type = _error_type(attributes.get("error.type"))
    if error_type is None and status_error:
        error_type = _text(status_message, 128) or "error"
    if error_type is not None:
        fields["status"] = "error"
        fields["error_type"] = error_type
    fields["latency_ms"] = min(max(end_ns - start_ns, 0) / 1e6, MAX_LATENCY_MS)
    return fields


def _error_type(value: Any) -> str | None:
    """``error.type`` as ``instrument()`` records it: an exception's class name (semconv says
    fully qualified, ``openai.RateLimitError``; some versions write ``<class '...'>``), other
    values (``500``, ``timeout``) unchanged."""
    text = _text(value, 512)
    if text is None:
        return None
    if text.startswith("<class '") and text.endswith("'>"):
        text = text[8:-2]
    head, dot, last = text.rpartition(".")
    if dot and last.isidentifier() and all(part.isidentifier() for part in head.split(".")):
        text = last
    return text[:128]


def _repair(fields: dict[str, Any]) -> None:
    cached = fields.get("cache_read_tokens", 0) + fields.get("cache_write_tokens", 0)
    if cached and cached > fields.get("input_tokens", 0):
        fields["input_tokens"] = fields.get("input_tokens", 0) + cached
    reasoning = fields.get("reasoning_tokens", 0)
    if reasoning and reasoning > fields.get("output_tokens", 0):
        fields["output_tokens"] = fields.get("output_tokens", 0) + reasoning
