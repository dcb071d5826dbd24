"""Building a usage event (caller's thread) and encoding it (sender thread).

The caller's side only checks and copies the fields it was given into a new dict, with the
event time as integer nanoseconds under ``_ts_ns``; the sender thread adds ``schema_version``,
``event_id`` (uuid4) and ``ts`` (RFC 3339 UTC, microseconds, ``Z``) and serialises with orjson.
So an instrumented call pays for a few dict operations, not for uuid, time formatting or JSON.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from . import fields
from .errors import InvalidEventError

SCHEMA_VERSION: Final = 1
TS_KEY: Final = "_ts_ns"
# The SDK's copy of schemas.events.TOKEN_FIELDS (tests/sdk/test_sdk_parity.py: the same).
TOKEN_FIELDS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)


def ts_ns(when: datetime | None) -> int:
    """Event time as ns since the epoch: now, or ``when`` (must be timezone-aware)."""
    if when is None:
        return time.time_ns()
    if not isinstance(when, datetime) or when.tzinfo is None or when.utcoffset() is None:
        raise InvalidEventError("ts", "must be a timezone-aware datetime")
    return ((when - _EPOCH) // _US) * 1000


_last_second: tuple[int, str] = (-1, "")  # events come in bursts within the same second


def format_ts(ns: int) -> str:
    """RFC 3339 UTC with exactly six fractional digits and ``Z``."""
    global _last_second
    secs, rest = divmod(ns, 1_000_000_000)
    cached_secs, prefix = _last_second
    if secs != cached_secs:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
        _last_second = (secs, prefix)
    return f"{prefix}.{rest // 1000:06d}Z"


def new_event_id(random16: bytes | None = None) -> str:
    """A random (version 4) UUID string, from ``random16`` (16 random bytes) if given.

    Same result as ``str(uuid.uuid4())`` at a third of the cost; the sender draws the random
    bytes for a whole batch with one ``os.urandom`` call.
    """
    raw = bytearray(os.urandom(16) if random16 is None else random16)
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _text(field: str, value: object, max_len: int) -> str:
    if type(value) is str and 0 < len(value) <= max_len and value.isascii():
        return value
    return fields.text(field, value, max_len=max_len)


def _tokens(field: str, value: object) -> int:
    if type(value) is int and 0 <= value <= fields.MAX_TOKENS:
        return value
    return fields.tokens(field, value)


def build(
    base: dict[str, Any],
    operation: object,
    status: str = "ok",
    provider: object = None,
    model: object = None,
    response_model: object = None,
    input_tokens: object = None,
    output_tokens: object = None,
    cache_read_tokens: object = None,
    cache_write_tokens: object = None,
    reasoning_tokens: object = None,
    unit: object = None,
    quantity: object = None,
    cost_usd: object = None,
    latency_ms: object = None,
    error_type: object = None,
    cache_hit: bool = False,
    partial: bool = False,
    request_id: object = None,
    tags: object = None,
    ts: datetime | None = None,
    service: object = None,
) -> dict[str, Any]:
    """A checked event dict ready for the queue: ``base`` (service, environment, configured
    tags) plus the given fields, ``None`` meaning absent.

    Raises ``InvalidEventError`` naming the first bad field; the checks are those of
    ``schemas/usage_event_v1.json`` plus the pipeline's consistency rules (cache tokens within
    input tokens, reasoning within output, tokens need a model, a quantity needs a unit).
    Written for speed (it runs on every instrumented call): inline fast paths, the
    ``fields`` functions only for unusual values and for the error messages. The hot callers
    (``record``, ``Track``, the instrumented clients) pass the fields positionally, in this
    order: 21 keyword arguments cost more to match than the checks themselves.
    """
    event = base.copy()
    if service is not None:  # one process, several services (an agent fleet)
        event["service"] = fields.service_name("service", service)
    event[TS_KEY] = time.time_ns() if ts is None else ts_ns(ts)
    event["operation"] = _text("operation", operation, 128)
    if status != "ok" and status != "error":
        raise InvalidEventError("status", f"must be 'ok' or 'error', got {status!r}")
    event["status"] = status
    if provider is not None:
        event["provider"] = _text("provider", provider, 64)
    if model is not None:
        event["model"] = _text("model", model, 128)
    if response_model is not None:
        event["response_model"] = _text("response_model", response_model, 128)
    tokens = False
    if input_tokens is not None:
        event["input_tokens"] = _tokens("input_tokens", input_tokens)
        tokens = True
    if output_tokens is not None:
        event["output_tokens"] = _tokens("output_tokens", output_tokens)
        tokens = True
    if cache_read_tokens is not None:
        event["cache_read_tokens"] = _tokens("cache_read_tokens", cache_read_tokens)
        tokens = True
    if cache_write_tokens is not None:
        event["cache_write_tokens"] = _tokens("cache_write_tokens", cache_write_tokens)
        tokens = True
    if reasoning_tokens is not None:
        event["reasoning_tokens"] = _tokens("reasoning_tokens", reasoning_tokens)
        tokens = True
    if unit is not None:
        event["unit"] = fields.unit(unit)
    if quantity is not None:
        event["quantity"] = fields.quantity(quantity)
    if cost_usd is not None:
        event["cost_usd"] = fields.cost_usd(cost_usd)
    if latency_ms is not None:
        if type(latency_ms) is float and 0 <= latency_ms <= fields.MAX_LATENCY_MS:
            event["latency_ms"] = latency_ms
        else:
            event["latency_ms"] = fields.latency_ms(latency_ms)
    if error_type is not None:
        event["error_type"] = _text("error_type", error_type, 128)
    if cache_hit:
        event["cache_hit"] = True
    if partial:
        event["partial"] = True
    if request_id is not None:
        if type(request_id) is str and len(request_id) <= 256 and request_id.isascii():
            event["request_id"] = request_id
        else:
            event["request_id"] = fields.text("request_id", request_id, max_len=256, min_len=0)
    if tags:
        event["tags"] = fields.merge_tags(event.get("tags"), fields.tags("tags", tags))
    # The cross-field rules can only fail with cache / reasoning tokens, a quantity, or tokens
    # without a model: the usual LLM event (model, input and output tokens) skips them.
    if (
        cache_read_tokens is not None
        or cache_write_tokens is not None
        or reasoning_tokens is not None
        or quantity is not None
        or (tokens and model is None)
    ):
        check_consistency(event, tokens)
    return event


def check_consistency(event: dict[str, Any], has_tokens: bool | None = None) -> None:
    """The cross-field rules the pipeline's validator applies (see ``schemas/events.py``)."""
    get = event.get
    cache_read, cache_write = get("cache_read_tokens"), get("cache_write_tokens")
    if (cache_read or cache_write) and (cache_read or 0) + (cache_write or 0) > get(
        "input_tokens", 0
    ):
        raise InvalidEventError(
            "cache_read_tokens", "cache_read_tokens + cache_write_tokens exceed input_tokens"
        )
    reasoning = get("reasoning_tokens")
    if reasoning and reasoning > get("output_tokens", 0):
        raise InvalidEventError("reasoning_tokens", "reasoning_tokens exceed output_tokens")
    if has_tokens is None:
        has_tokens = any(name in event for name in TOKEN_FIELDS)
    if has_tokens and "model" not in event:
        raise InvalidEventError("model", "token counts need a model")
    if "quantity" in event and "unit" not in event:
        raise InvalidEventError("unit", "a quantity needs a unit")


def encode(event: dict[str, Any], random16: bytes | None = None) -> bytes:
    """The wire form of a built event: adds ``schema_version``, ``event_id`` and ``ts``.
    Called once per event (the bytes are kept if a send has to be retried, so the
    ``event_id`` idempotency key never changes).

    A dict without the internal timestamp is a pre-built wire event (forwarded from another
    producer, replayed from an export) and is sent exactly as given.
    """
    if TS_KEY not in event:
        return orjson.dumps(event)
    body = {
        "schema_version": SCHEMA_VERSION,
        "event_id": new_event_id(random16),
        "ts": format_ts(event[TS_KEY]),
    }
    body.update(event)
    del body[TS_KEY]
    return orjson.dumps(body)
