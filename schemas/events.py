"""Usage event v1: the contract, as one typed ``msgspec`` Struct.

``UsageEvent`` is the single source of the contract: the worker decodes and validates raw
bytes with it in one pass (:func:`decode_event`), and ``schemas/usage_event_v1.json`` is
generated from it (:func:`generated_json_schema`; a test keeps the file equal to it). Checks a
type cannot carry run right after the decode, cheaply: patterns (names checked once and
remembered, since services, units and tag keys repeat), a real timezone-aware timestamp, cache
tokens within input tokens, usage that names what it measures. Every refusal says *why*, so
the dead-letter row does too.

This module depends on nothing of the pipeline's, nor on Faust.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Annotated, Any, Final, Literal

import msgspec
import orjson
from msgspec import UNSET, Meta, UnsetType

SCHEMA_VERSION: Final = 1
MAX_EVENT_BYTES: Final = 16 * 1024
MAX_TOKENS: Final = 100_000_000
MAX_TAGS: Final = 32
# The most one event may cost (or save), in nano-USD: $1,000,000. Money columns are Int64
# nano-USD, summed per minute and per day by the rollups; with this cap a rollup bucket holds
# over 9,000 maximal events before it could overflow, and a metered event (quantity up to
# 1e12 times a unit price) or a supplied cost (up to $1e9) cannot wrap a row's Int64.
MAX_EVENT_COST_NUSD: Final = 10**15

# Rejection reason codes (the ``reason`` column of the dead-letter table starts with one).
TOO_LARGE: Final = "too_large"
NOT_JSON: Final = "not_json"
NOT_OBJECT: Final = "not_object"
SCHEMA: Final = "schema"
BAD_TIMESTAMP: Final = "bad_timestamp"
INCONSISTENT: Final = "inconsistent"
NO_USAGE: Final = "no_usage"
OUT_OF_RANGE: Final = "out_of_range"

# The event's token fields, OpenTelemetry GenAI meaning: input includes cached, output
# includes reasoning. The one list every part of the pipeline uses.
TOKEN_FIELDS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)

UUID_PATTERN: Final = (
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
TS_PATTERN: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
SERVICE_PATTERN: Final = "^[A-Za-z0-9][A-Za-z0-9._:/-]*$"
UNIT_PATTERN: Final = "^[a-z][a-z0-9_]*$"
QUANTITY_PATTERN: Final = r"^[0-9]{1,12}(\.[0-9]{1,9})?$"
COST_PATTERN: Final = r"^[0-9]{1,9}(\.[0-9]{1,9})?$"
TAG_KEY_PATTERN: Final = "^[A-Za-z0-9_.:-]+$"


# Field types. A ``pattern`` goes into the schema through ``extra_json_schema`` and is
# checked after decoding (see :func:`_refusal`), where names that repeat are checked once.
def _p(pattern: str, description: str | None = None) -> dict[str, Any]:
    return {"pattern": pattern, **({"description": description} if description else {})}


EventId = Annotated[
    str,
    Meta(
        min_length=36,
        max_length=36,
        extra_json_schema=_p(UUID_PATTERN, "UUID, the idempotency key"),
    ),
]
Timestamp = Annotated[
    str,
    Meta(
        min_length=20,
        max_length=40,
        extra_json_schema=_p(
            TS_PATTERN, "event time, RFC 3339 with an explicit offset (UTC recommended)"
        ),
    ),
]
Service = Annotated[str, Meta(min_length=1, max_length=128, extra_json_schema=_p(SERVICE_PATTERN))]
Name64 = Annotated[str, Meta(min_length=1, max_length=64)]
Name128 = Annotated[str, Meta(min_length=1, max_length=128)]
Unit = Annotated[str, Meta(min_length=1, max_length=32, extra_json_schema=_p(UNIT_PATTERN))]
Quantity = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=22,
        extra_json_schema=_p(QUANTITY_PATTERN, 'non-negative decimal string, e.g. "1" or "2.5"'),
    ),
]
CostUsd = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=19,
        extra_json_schema=_p(COST_PATTERN, "cost supplied by the caller, decimal USD; wins"),
    ),
]
RequestId = Annotated[str, Meta(max_length=256)]
Tokens = Annotated[int, Meta(ge=0, le=MAX_TOKENS)]
Latency = Annotated[float, Meta(ge=0, le=86_400_000)]
TagKey = Annotated[str, Meta(min_length=1, max_length=64, extra_json_schema=_p(TAG_KEY_PATTERN))]
TagValue = Annotated[str, Meta(max_length=256)]
Tags = Annotated[dict[TagKey, TagValue], Meta(max_length=MAX_TAGS)]


class UsageEvent(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """One metered API call (LLM or other). Token fields follow the OpenTelemetry GenAI
    meaning: input_tokens includes cached tokens, output_tokens includes reasoning tokens.

    Optional fields are ``UNSET`` when absent (falsy, so ``event.model or ""`` reads well);
    ``null`` is not a value of any field.
    """

    schema_version: Literal[1]
    event_id: EventId
    ts: Timestamp
    service: Service
    operation: Name128
    status: Literal["ok", "error"]
    provider: Name64 | UnsetType = UNSET
    model: Name128 | UnsetType = UNSET
    response_model: Name128 | UnsetType = UNSET
    input_tokens: Tokens | UnsetType = UNSET
    output_tokens: Tokens | UnsetType = UNSET
    cache_read_tokens: Tokens | UnsetType = UNSET
    cache_write_tokens: Tokens | UnsetType = UNSET
    reasoning_tokens: Tokens | UnsetType = UNSET
    unit: Unit | UnsetType = UNSET
    quantity: Quantity | UnsetType = UNSET
    cost_usd: CostUsd | UnsetType = UNSET
    latency_ms: Latency | UnsetType = UNSET
    error_type: Name128 | UnsetType = UNSET
    cache_hit: bool | UnsetType = UNSET
    partial: bool | UnsetType = UNSET
    request_id: RequestId | UnsetType = UNSET
    environment: Name64 | UnsetType = UNSET
    tags: Tags | UnsetType = UNSET

    def to_dict(self) -> dict[str, Any]:
        """The fields present, as the JSON object had them."""
        return {f: v for f in self.__struct_fields__ if (v := getattr(self, f)) is not UNSET}


_DECODER: Final = msgspec.json.Decoder(UsageEvent)
# Re-encodes a decoded event canonically: one value per key, escapes and numbers written as
# ClickHouse reads them back (the raw bytes may repeat a key or write 0 as -0).
_ENCODER: Final = msgspec.json.Encoder()
_UUID_RE: Final = re.compile(UUID_PATTERN)
_TS_RE: Final = re.compile(TS_PATTERN)
_SERVICE_RE: Final = re.compile(SERVICE_PATTERN)
_UNIT_RE: Final = re.compile(UNIT_PATTERN)
_QUANTITY_RE: Final = re.compile(QUANTITY_PATTERN)
_COST_RE: Final = re.compile(COST_PATTERN)
_TAG_KEY_RE: Final = re.compile(TAG_KEY_PATTERN)
_KNOWN_CAP: Final = 100_000  # names remembered as valid (services, units, tag keys)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND: Final = timedelta(seconds=1)
_MICRO: Final = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an event was refused: ``code`` is one of the constants above, ``detail`` is prose."""

    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


def parse_ts(value: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime; raise ``ValueError`` if naive.

    Nanoseconds are truncated to microseconds (the stored precision)."""
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


class _Known:
    """Names already found valid; bounded (cleared when full)."""

    __slots__ = ("names",)

    def __init__(self) -> None:
        self.names: set[str] = set()

    def ok(self, name: str, pattern: re.Pattern[str]) -> bool:
        if name in self.names:
            return True
        if pattern.match(name) is None:
            return False
        if len(self.names) >= _KNOWN_CAP:
            self.names.clear()
        self.names.add(name)
        return True


_services = _Known()
_units = _Known()
_tag_keys = _Known()
_seconds: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" -> Unix seconds (a stream's ts repeat)


def ts_micros(ts: str) -> int:
    """Microseconds since the Unix epoch of a valid RFC 3339 timestamp (nanoseconds truncated).

    The SDK's form (``2026-11-23T18:00:00.123456Z``) takes a fast path that parses each
    second once. Raises ``ValueError`` for an impossible date or a timestamp without offset.
    """
    if len(ts) == 27 and ts[26] == "Z" and ts[19] == ".":
        frac = ts[20:26]
        if frac.isascii() and frac.isdigit():
            head = ts[:19]
            secs = _seconds.get(head)
            if secs is None:
                secs = (datetime.fromisoformat(head + "+00:00") - _EPOCH) // _SECOND
                if len(_seconds) >= _KNOWN_CAP:
                    _seconds.clear()
                _seconds[head] = secs
            return secs * 1_000_000 + int(frac)
    return (parse_ts(ts) - _EPOCH) // _MICRO


def _refusal(event: UsageEvent) -> Rejection | None:
    """The checks a type cannot carry, in the order of the old validator's reason codes."""
    service = event.service
    if service not in _services.names and not _services.ok(service, _SERVICE_RE):
        return Rejection(SCHEMA, f"service {service!r} does not match {SERVICE_PATTERN}")
    unit = event.unit
    if unit and not _units.ok(unit, _UNIT_RE):
        return Rejection(SCHEMA, f"unit {unit!r} does not match {UNIT_PATTERN}")
    quantity = event.quantity
    if quantity and _QUANTITY_RE.match(quantity) is None:
        return Rejection(SCHEMA, f"quantity {quantity!r} is not a non-negative decimal string")
    cost = event.cost_usd
    if cost and _COST_RE.match(cost) is None:
        return Rejection(SCHEMA, f"cost_usd {cost!r} is not a decimal string of USD")
    tags = event.tags
    if tags and not tags.keys() <= _tag_keys.names:
        for key in tags:
            if not _tag_keys.ok(key, _TAG_KEY_RE):
                return Rejection(SCHEMA, f"tag key {key!r} does not match {TAG_KEY_PATTERN}")
    inp = event.input_tokens or 0
    out = event.output_tokens or 0
    cached = (event.cache_read_tokens or 0) + (event.cache_write_tokens or 0)
    if cached > inp:
        return Rejection(INCONSISTENT, "cache_read_tokens + cache_write_tokens exceed input_tokens")
    if (event.reasoning_tokens or 0) > out:
        return Rejection(INCONSISTENT, "reasoning_tokens exceed output_tokens")
    if event.model is UNSET and has_tokens(event):
        return Rejection(NO_USAGE, "token counts without a model")
    if quantity is not UNSET and unit is UNSET:
        return Rejection(NO_USAGE, "quantity without a unit")
    return None


def uuid_int(text: str) -> int:
    """The 128-bit integer of a hyphenated UUID (what ``UUID_PATTERN`` says, without a
    regex), or -1 when ``text`` is not one."""
    if text[8] != "-" or text[13] != "-" or text[18] != "-" or text[23] != "-":
        return -1
    digits = text.replace("-", "")
    if len(digits) != 32 or not (digits.isascii() and digits.isalnum()):
        return -1
    try:
        return int(digits, 16)
    except ValueError:
        return -1


def _ts_us(ts: str) -> int | Rejection:
    """Microseconds since the epoch, or why the timestamp is refused. The SDK's form skips
    the pattern once its second has been seen (that second was checked in full)."""
    if len(ts) == 27 and ts[19] == "." and ts[26] == "Z":
        secs = _seconds.get(ts[:19])
        frac = ts[20:26]
        if secs is not None and frac.isascii() and frac.isdigit():
            return secs * 1_000_000 + int(frac)
    if _TS_RE.match(ts) is None:
        return Rejection(SCHEMA, f"ts {ts!r} is not RFC 3339 with an offset")
    try:
        return ts_micros(ts)
    except ValueError as exc:
        return Rejection(BAD_TIMESTAMP, f"{ts!r}: {exc}"[:200])


def has_tokens(event: UsageEvent) -> bool:
    """Whether the event reports any token field (even 0): then it is an LLM call."""
    return (
        event.input_tokens is not UNSET
        or event.output_tokens is not UNSET
        or event.cache_read_tokens is not UNSET
        or event.cache_write_tokens is not UNSET
        or event.reasoning_tokens is not UNSET
    )


def decode_event(raw: bytes) -> tuple[UsageEvent, int, int] | Rejection:
    """Decode and validate one raw usage event in one pass.

    Returns ``(event, ts_us, id_key)`` - the event, its time in microseconds since the epoch
    and its ``event_id`` as a 128-bit integer - or the :class:`Rejection`. Never raises for
    bad input.
    """
    if len(raw) > MAX_EVENT_BYTES:
        return Rejection(TOO_LARGE, f"{len(raw)} bytes > {MAX_EVENT_BYTES}")
    try:
        event = _DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if text.startswith("Expected `object`") and " - at `$" not in text:
            return Rejection(NOT_OBJECT, text[:200])
        return Rejection(SCHEMA, text[:300])
    except msgspec.DecodeError as exc:
        return Rejection(NOT_JSON, str(exc)[:200])
    return check(event)


def check(event: UsageEvent) -> tuple[UsageEvent, int, int] | Rejection:
    """The checks after decoding (see :func:`decode_event`)."""
    key = uuid_int(event.event_id)
    if key < 0:
        return Rejection(SCHEMA, f"event_id {event.event_id!r} is not a UUID")
    refusal = _refusal(event)
    if refusal is not None:
        return refusal
    ts_us = _ts_us(event.ts)
    if isinstance(ts_us, Rejection):
        return ts_us
    return event, ts_us, key


def validate_event(raw: bytes) -> tuple[dict[str, Any] | None, Rejection | None]:
    """Decode and validate one raw usage event, for callers that want a plain dict.

    Returns ``(event, None)`` for a valid event (the decoded JSON object, unchanged) or
    ``(None, Rejection)``. Never raises for bad input.
    """
    result = decode_event(raw)
    if isinstance(result, Rejection):
        return None, result
    data: dict[str, Any] = orjson.loads(raw)
    return data, None


@cache
def json_schema() -> dict[str, Any]:
    """The usage event v1 JSON Schema (the committed file) as a dict."""
    text = resources.files("schemas").joinpath("usage_event_v1.json").read_text()
    result: dict[str, Any] = json.loads(text)
    return result


def generated_json_schema() -> dict[str, Any]:
    """The JSON Schema generated from :class:`UsageEvent` (what the committed file holds)."""
    generated = msgspec.json.schema(UsageEvent)
    body = generated["$defs"]["UsageEvent"]
    body.pop("title", None)
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://spendwatch.dev/schemas/usage_event_v1.json",
        "title": "spendwatch usage event, schema version 1",
        **body,
        "description": (
            "One metered API call (LLM or other). Token fields follow the OpenTelemetry GenAI "
            "meaning: input_tokens includes cached tokens, output_tokens includes reasoning "
            "tokens. Generated from schemas.events.UsageEvent; do not edit by hand."
        ),
    }
