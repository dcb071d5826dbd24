"""Anthropic: ``messages.create`` (plain and ``stream=True``) and ``messages.stream``.

Anthropic's ``input_tokens`` excludes cache reads and writes, so the event's
``input_tokens`` (OpenTelemetry meaning, cached included) is ``input_tokens +
cache_read_input_tokens + cache_creation_input_tokens``; ``output_tokens`` already includes
thinking (``output_tokens_details.thinking_tokens`` becomes ``reasoning_tokens``).

Streams: ``message_start`` carries the initial usage, each ``message_delta`` the *cumulative*
counts so far; a count present in a later event replaces the earlier one (never summed).
``message_stop`` ends a complete stream.
"""

from __future__ import annotations

from typing import Any

from .hooks import Shapes, Spec
from .recorder import CallRecorder, as_int

PROVIDER = "anthropic"
_RAW = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def _absorb(rec: CallRecorder, usage: Any) -> None:
    """Overwrite the raw counters with every count ``usage`` carries, then convert."""
    raw = rec.raw
    for name in _RAW:
        value = as_int(getattr(usage, name, None))
        if value is not None:
            raw[name] = value
    thinking = as_int(
        getattr(getattr(usage, "output_tokens_details", None), "thinking_tokens", None)
    )
    if thinking is not None:
        raw["thinking_tokens"] = thinking
    rec.usage = convert(raw)


def convert(raw: dict[str, int]) -> dict[str, int]:
    """Anthropic counters -> event token fields (OpenTelemetry GenAI meaning)."""
    result: dict[str, int] = {}
    cache_read = raw.get("cache_read_input_tokens")
    cache_write = raw.get("cache_creation_input_tokens")
    if "input_tokens" in raw:
        result["input_tokens"] = raw["input_tokens"] + (cache_read or 0) + (cache_write or 0)
    if "output_tokens" in raw:
        result["output_tokens"] = raw["output_tokens"]
    if cache_read is not None:
        result["cache_read_tokens"] = cache_read
    if cache_write is not None:
        result["cache_write_tokens"] = cache_write
    if "thinking_tokens" in raw:
        result["reasoning_tokens"] = raw["thinking_tokens"]
    return result


def _identify(rec: CallRecorder, message: Any) -> None:
    model = getattr(message, "model", None)
    if isinstance(model, str) and model and rec.response_model is None:
        rec.response_model = model
    message_id = getattr(message, "id", None)
    if isinstance(message_id, str) and message_id and rec.response_id is None:
        rec.response_id = message_id


def read_message(rec: CallRecorder, message: Any) -> None:
    _identify(rec, message)
    usage = getattr(message, "usage", None)
    if usage is not None:
        _absorb(rec, usage)


def observe_event(rec: CallRecorder, event: Any) -> bool:
    kind = getattr(event, "type", None)
    if kind == "message_start":
        read_message(rec, getattr(event, "message", None))
    elif kind == "message_delta":
        usage = getattr(event, "usage", None)
        if usage is not None:
            _absorb(rec, usage)
    elif kind == "message_stop":
        rec.saw_terminal = True
    return True


MESSAGES = Spec(
    PROVIDER,
    "chat",
    read_message,
    observe_event,
    needs_terminal=True,
    request_id_header="request-id",
)


def specs() -> list[tuple[tuple[str, ...], str, Spec]]:
    return [(("messages",), "create", MESSAGES)]


def shapes() -> Shapes:
    import anthropic

    return Shapes(
        streams=(anthropic.Stream, anthropic.AsyncStream),
        responses=(anthropic.APIResponse, anthropic.AsyncAPIResponse),
    )
