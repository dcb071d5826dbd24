"""Usage event v1: every rejection reason, and what passes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import fastjsonschema
import orjson
import pytest

from schemas import events
from schemas.events import decode_event, parse_ts, validate_event


def make(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "schema_version": 1,
        "event_id": str(uuid.UUID(int=7)),
        "ts": "2026-11-23T18:00:00.123456Z",
        "service": "checkout",
        "operation": "chat",
        "status": "ok",
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 1200,
        "output_tokens": 300,
        "cache_read_tokens": 1024,
        "reasoning_tokens": 100,
        "tags": {"team": "growth", "agent": "a-1"},
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not None}


def code_of(event: object) -> str | None:
    raw = event if isinstance(event, bytes) else orjson.dumps(event)
    _, rejection = validate_event(raw)
    return rejection.code if rejection else None


def test_valid_llm_event_passes_unchanged() -> None:
    event = make()
    parsed, rejection = validate_event(orjson.dumps(event))
    assert rejection is None
    assert parsed == event


def test_valid_metered_event_passes() -> None:
    event = make(
        model=None,
        input_tokens=None,
        output_tokens=None,
        cache_read_tokens=None,
        reasoning_tokens=None,
        provider="polygon",
        unit="request",
        quantity="3",
        cost_usd="0.012",
        cache_hit=True,
    )
    assert code_of(event) is None


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"x" * (events.MAX_EVENT_BYTES + 1), events.TOO_LARGE),
        (b"{not json", events.NOT_JSON),
        (b"[1, 2]", events.NOT_OBJECT),
    ],
)
def test_raw_rejections(raw: bytes, code: str) -> None:
    assert code_of(raw) == code


@pytest.mark.parametrize(
    "overrides",
    [
        {"event_id": "not-a-uuid"},
        {"status": "maybe"},
        {"service": ""},
        {"service": "has space"},
        {"input_tokens": -1},
        {"output_tokens": 1.5},
        {"cost_usd": 0.01},  # a float: money must be a decimal string
        {"cost_usd": "1e-3"},
        {"quantity": "-2"},
        {"schema_version": 2},
        {"surprise": "field"},
        {"tags": {f"k{i}": "v" for i in range(33)}},
        {"tags": {"team": "x" * 257}},
        {"tags": {"bad key": "v"}},
        {"ts": "2026-11-23 18:00:00"},
        {"ts": "2026-11-23T18:00:00"},  # no offset
    ],
)
def test_schema_rejections(overrides: dict[str, Any]) -> None:
    assert code_of(make(**overrides)) == events.SCHEMA


def test_missing_required_field() -> None:
    event = make()
    del event["operation"]
    _, rejection = validate_event(orjson.dumps(event))
    assert rejection is not None
    assert rejection.code == events.SCHEMA
    assert "operation" in rejection.detail


def test_impossible_date_is_bad_timestamp() -> None:
    assert code_of(make(ts="2026-02-30T00:00:00Z")) == events.BAD_TIMESTAMP


@pytest.mark.parametrize(
    "overrides",
    [
        {"cache_read_tokens": 1201},
        {"cache_read_tokens": 1000, "cache_write_tokens": 201},
        {"reasoning_tokens": 301},
    ],
)
def test_inconsistent_token_counts(overrides: dict[str, Any]) -> None:
    assert code_of(make(**overrides)) == events.INCONSISTENT


def test_tokens_without_model_and_quantity_without_unit() -> None:
    assert code_of(make(model=None)) == events.NO_USAGE
    assert code_of(make(quantity="2")) == events.NO_USAGE


def test_parse_ts_keeps_offsets_exact_and_truncates_nanoseconds() -> None:
    assert parse_ts("2026-11-23T19:00:00.123456789+01:00") == datetime(
        2026, 11, 23, 18, 0, 0, 123456, tzinfo=UTC
    )
    with pytest.raises(ValueError):
        parse_ts("2026-11-23T19:00:00")


def test_struct_round_trip() -> None:
    event = make()
    result = decode_event(orjson.dumps(event))
    assert not isinstance(result, events.Rejection)
    decoded, ts_us, key = result
    assert key == 7  # the UUID's integer
    assert decoded.input_tokens == 1200
    assert decoded.to_dict() == event
    assert ts_us == 1_795_456_800_123_456  # 2026-11-23T18:00:00.123456Z


def test_ts_micros_fast_path_equals_the_general_parse() -> None:
    for ts in ("2026-11-23T18:00:00.123456Z", "2026-11-23T19:00:00.123456+01:00"):
        assert events.ts_micros(ts) == 1_795_456_800_123_456
    with pytest.raises(ValueError):
        events.ts_micros("2026-02-30T00:00:00.000000Z")


def test_committed_schema_file_is_the_generated_one() -> None:
    """The contract has one source: the file is generated from ``UsageEvent``."""
    assert events.json_schema() == events.generated_json_schema()


def test_schema_file_accepts_what_the_decoder_accepts() -> None:
    validator = fastjsonschema.compile(events.json_schema())
    validator(make())
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        validator(make(surprise="field"))
