"""Usage event v1: the JSON Schema file, its validator and its Faust records.

``usage_event_v1.json`` beside this module is the contract. ``validate_event`` applies it plus
the checks JSON Schema cannot express (a real, timezone-aware timestamp; cache tokens within
input tokens) and reports *why* an event is rejected, so the dead-letter row says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any, Final, Optional

import fastjsonschema
import faust
import orjson

SCHEMA_VERSION: Final = 1
MAX_EVENT_BYTES: Final = 16 * 1024

# Rejection reason codes (the ``reason`` column of the dead-letter table starts with one).
TOO_LARGE: Final = "too_large"
NOT_JSON: Final = "not_json"
NOT_OBJECT: Final = "not_object"
SCHEMA: Final = "schema"
BAD_TIMESTAMP: Final = "bad_timestamp"
INCONSISTENT: Final = "inconsistent"
NO_USAGE: Final = "no_usage"

TOKEN_FIELDS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


@cache
def json_schema() -> dict[str, Any]:
    """The usage event v1 JSON Schema as a dict."""
    text = resources.files("schemas").joinpath("usage_event_v1.json").read_text()
    result: dict[str, Any] = json.loads(text)
    return result


@cache
def _compiled() -> Any:
    return fastjsonschema.compile(json_schema())


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an event was refused: ``code`` is one of the constants above, ``detail`` is prose."""

    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


def parse_ts(value: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime; raise ``ValueError`` if naive."""
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    # datetime.fromisoformat accepts at most 6 fractional digits.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError("timestamp has no offset")
    return parsed.astimezone(UTC)


def validate_event(raw: bytes) -> tuple[dict[str, Any] | None, Rejection | None]:
    """Decode and validate one raw usage event.

    Returns ``(event, None)`` for a valid event (the decoded dict, unchanged) or
    ``(None, Rejection)`` for an invalid one. Never raises for bad input.
    """
    if len(raw) > MAX_EVENT_BYTES:
        return None, Rejection(TOO_LARGE, f"{len(raw)} bytes > {MAX_EVENT_BYTES}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, Rejection(NOT_JSON, str(exc)[:200])
    if not isinstance(data, dict):
        return None, Rejection(NOT_OBJECT, f"top level is {type(data).__name__}")
    try:
        _compiled()(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        return None, Rejection(SCHEMA, exc.message[:300])
    try:
        parse_ts(data["ts"])
    except ValueError as exc:
        return None, Rejection(BAD_TIMESTAMP, f"{data['ts']!r}: {exc}"[:200])
    cached = data.get("cache_read_tokens", 0) + data.get("cache_write_tokens", 0)
    if cached > data.get("input_tokens", 0) and cached:
        return None, Rejection(
            INCONSISTENT, "cache_read_tokens + cache_write_tokens exceed input_tokens"
        )
    if data.get("reasoning_tokens", 0) > data.get("output_tokens", 0):
        return None, Rejection(INCONSISTENT, "reasoning_tokens exceed output_tokens")
    has_tokens = any(f in data for f in TOKEN_FIELDS)
    if has_tokens and "model" not in data:
        return None, Rejection(NO_USAGE, "token counts without a model")
    if "quantity" in data and "unit" not in data:
        return None, Rejection(NO_USAGE, "quantity without a unit")
    return data, None


class UsageEvent(faust.Record, serializer="json", include_metadata=False):
    """Faust record mirroring ``usage_event_v1.json`` (validated events only)."""

    schema_version: int
    event_id: str
    ts: str
    service: str
    operation: str
    status: str
    provider: Optional[str] = None
    model: Optional[str] = None
    response_model: Optional[str] = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    unit: Optional[str] = None
    quantity: Optional[str] = None
    cost_usd: Optional[str] = None
    latency_ms: Optional[float] = None
    error_type: Optional[str] = None
    cache_hit: bool = False
    partial: bool = False
    request_id: Optional[str] = None
    environment: Optional[str] = None
    tags: Optional[dict[str, str]] = None


class PricedEvent(UsageEvent, serializer="json", include_metadata=False):
    """A validated event with its price, as published on ``spendwatch.priced.v1``.

    ``cost_nusd`` is what the call cost (0 for a cache hit); ``avoided_cost_nusd`` is what a
    cache hit saved; ``cost_source`` is ``supplied`` | ``catalog`` | ``price_table`` |
    ``unpriced`` (then ``unpriced_reason`` says why and ``cost_nusd`` is 0).
    """

    cost_nusd: int = 0
    avoided_cost_nusd: int = 0
    cost_source: str = "unpriced"
    unpriced_reason: Optional[str] = None
    ingested_at: Optional[str] = None
