"""Building a usage event (caller's thread) and encoding it (sender thread).

The caller's side only checks and copies the fields it was given into a new dict, with the
event time as integer nanoseconds under ``_ts_ns``; the sender thread adds ``schema_version``,
``event_id`` (uuid4) and ``ts`` (RFC 3339 UTC, microseconds, ``Z``) and serialises with orjson.
So an instrumented call pays for a few dict operations, not for uuid, time formatting or JSON.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from . import fields
from .errors import InvalidEventError

SCHEMA_VERSION: Final = 1
TS_KEY: Final = "_ts_ns"
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


def format_ts(ns: int) -> str:
    """RFC 3339 UTC with exactly six fractional digits and ``Z``."""
    secs, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{rest // 1000:06d}Z"


def build(
    base: dict[str, Any],
    operation: object,
    *,
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
) -> dict[str, Any]:
    """A checked event dict ready for the queue: ``base`` (service, environment, configured
    tags) plus the given fields, ``None`` meaning absent.

    Raises ``InvalidEventError`` naming the first bad field; the checks are those of
    ``schemas/usage_event_v1.json`` plus the pipeline's consistency rules (cache tokens within
    input tokens, reasoning within output, tokens need a model, a quantity needs a unit).
    """
    event = dict(base)
    event[TS_KEY] = ts_ns(ts)
    event["operation"] = fields.text("operation", operation, max_len=128)
    if status != "ok" and status != "error":
        raise InvalidEventError("status", f"must be 'ok' or 'error', got {status!r}")
    event["status"] = status
    limits = fields.STRING_LIMITS
    if provider is not None:
        event["provider"] = fields.text("provider", provider, max_len=limits["provider"])
    if model is not None:
        event["model"] = fields.text("model", model, max_len=limits["model"])
    if response_model is not None:
        event["response_model"] = fields.text(
            "response_model", response_model, max_len=limits["response_model"]
        )
    for name, value in (
        ("input_tokens", input_tokens),
        ("output_tokens", output_tokens),
        ("cache_read_tokens", cache_read_tokens),
        ("cache_write_tokens", cache_write_tokens),
        ("reasoning_tokens", reasoning_tokens),
    ):
        if value is not None:
            event[name] = fields.tokens(name, value)
    if unit is not None:
        event["unit"] = fields.unit(unit)
    if quantity is not None:
        event["quantity"] = fields.quantity(quantity)
    if cost_usd is not None:
        event["cost_usd"] = fields.cost_usd(cost_usd)
    if latency_ms is not None:
        event["latency_ms"] = fields.latency_ms(latency_ms)
    if error_type is not None:
        event["error_type"] = fields.text("error_type", error_type, max_len=limits["error_type"])
    if cache_hit:
        event["cache_hit"] = True
    if partial:
        event["partial"] = True
    if request_id is not None:
        event["request_id"] = fields.text("request_id", request_id, max_len=256, min_len=0)
    if tags:
        event["tags"] = fields.merge_tags(event.get("tags"), fields.tags("tags", tags))
    check_consistency(event)
    return event


def check_consistency(event: dict[str, Any]) -> None:
    """The cross-field rules the pipeline's validator applies (see ``schemas/events.py``)."""
    cached = event.get("cache_read_tokens", 0) + event.get("cache_write_tokens", 0)
    if cached and cached > event.get("input_tokens", 0):
        raise InvalidEventError(
            "cache_read_tokens", "cache_read_tokens + cache_write_tokens exceed input_tokens"
        )
    if event.get("reasoning_tokens", 0) > event.get("output_tokens", 0):
        raise InvalidEventError("reasoning_tokens", "reasoning_tokens exceed output_tokens")
    if "model" not in event and any(name in event for name in TOKEN_FIELDS):
        raise InvalidEventError("model", "token counts need a model")
    if "quantity" in event and "unit" not in event:
        raise InvalidEventError("unit", "a quantity needs a unit")


def encode(event: dict[str, Any]) -> bytes:
    """The wire form of a built event: adds ``schema_version``, ``event_id`` and ``ts``.
    Called once per event (the bytes are kept if a send has to be retried, so the
    ``event_id`` idempotency key never changes)."""
    body = {
        "schema_version": SCHEMA_VERSION,
        "event_id": str(uuid.uuid4()),
        "ts": format_ts(event[TS_KEY]),
    }
    for key, value in event.items():
        if key != TS_KEY:
            body[key] = value
    return orjson.dumps(body)
