"""Row converters: exact values, column order, refusal of what ClickHouse would refuse."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pytest

from schemas.alerts import Alert, Contributor
from sinks.rows import (
    ALERT_COLUMNS,
    ALERT_DELIVERY_COLUMNS,
    DEADLETTER_COLUMNS,
    TABLES,
    USAGE_COLUMNS,
    RowError,
    alert_delivery_row,
    alert_row,
    deadletter_row,
    row_as_dict,
    row_json,
    usage_row,
)

EVENT_ID = "3f0c8f6e-8d8a-4c1e-9a0b-0d3c2b1a0f9e"


def priced(**over: object) -> dict[str, object]:
    event: dict[str, object] = {
        "schema_version": 1,
        "event_id": EVENT_ID,
        "ts": "2025-06-01T12:34:56.123456789+02:00",
        "service": "support-bot",
        "operation": "chat",
        "status": "ok",
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 1200,
        "output_tokens": 300,
        "cache_read_tokens": 200,
        "reasoning_tokens": 100,
        "tags": {"team": "cx"},
        "latency_ms": 812.5,
        "cost_nusd": 4_250_000,
        "cost_source": "catalog",
        "ingested_at": "2025-06-01T10:35:00Z",
    }
    event.update(over)
    return event


def test_usage_row_values_in_column_order() -> None:
    row = row_as_dict(USAGE_COLUMNS, usage_row(priced()))
    assert len(usage_row(priced())) == len(USAGE_COLUMNS)
    assert row["event_id"] == uuid.UUID(EVENT_ID)
    assert row["ts"] == datetime(2025, 6, 1, 10, 34, 56, 123456, tzinfo=UTC)
    assert row["ingested_at"] == datetime(2025, 6, 1, 10, 35, tzinfo=UTC)
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"]) == (1200, 300, 200)
    assert (row["cache_write_tokens"], row["reasoning_tokens"]) == (0, 100)
    assert row["cost_nusd"] == 4_250_000 and row["avoided_cost_nusd"] == 0
    assert row["cost_source"] == "catalog" and row["unpriced_reason"] == ""
    assert row["unit"] == "" and row["quantity"] is None and row["supplied_cost_usd"] is None
    assert row["tags"] == {"team": "cx"} and row["latency_ms"] == 812.5
    assert row["cache_hit"] is False and row["partial"] is False


def test_usage_row_metered_event_keeps_exact_decimals() -> None:
    row = row_as_dict(
        USAGE_COLUMNS,
        usage_row(
            priced(
                provider="twilio",
                model=None,
                input_tokens=0,
                unit="minute",
                quantity="2.5",
                cost_usd="0.035",
                cost_nusd=35_000_000,
                cost_source="supplied",
            )
        ),
    )
    assert row["quantity"] == Decimal("2.5")
    assert row["supplied_cost_usd"] == Decimal("0.035")
    assert row["model"] == ""


def test_ingested_at_defaults_to_event_time() -> None:
    row = row_as_dict(USAGE_COLUMNS, usage_row(priced(ingested_at=None)))
    assert row["ingested_at"] == row["ts"]


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"ts": "2025-06-01T12:00:00"}, "ts"),
        ({"ts": 12}, "ts"),
        ({"service": ""}, "service"),
        ({"status": "maybe"}, "status"),
        ({"cost_nusd": -1}, "cost_nusd"),
        ({"cost_nusd": 1.5}, "cost_nusd"),
        ({"cost_nusd": 2**63}, "cost_nusd"),
        ({"input_tokens": 2**32}, "input_tokens"),
        ({"cost_source": "guess"}, "cost_source"),
        ({"tags": {"a": 1}}, "tags"),
        ({"quantity": 2.5, "unit": "minute"}, "quantity"),
        ({"quantity": "1.0000000001", "unit": "minute"}, "quantity"),
        ({"cost_usd": "1e12"}, "cost_usd"),
        ({"latency_ms": "fast"}, "latency_ms"),
        ({"model": 7}, "model"),
    ],
)
def test_usage_row_refuses_bad_values_naming_the_field(over: dict[str, object], field: str) -> None:
    with pytest.raises(RowError) as info:
        usage_row(priced(**over))
    assert info.value.field == field


def test_deadletter_row_keeps_original_bytes() -> None:
    at = datetime(2025, 6, 1, tzinfo=UTC)
    row = row_as_dict(
        DEADLETTER_COLUMNS,
        deadletter_row(
            received_at=at,
            topic="spendwatch.usage.v1",
            partition=0,
            offset=41,
            reason_code="not_json",
            reason="not_json: unexpected character",
            original=b"\xff{bad",
            key=b"svc",
        ),
    )
    assert row["original"] == b"\xff{bad" and row["key"] == b"svc"
    assert (row["partition"], row["offset"]) == (0, 41)
    with pytest.raises(RowError):
        deadletter_row(
            received_at=datetime(2025, 6, 1),  # naive
            topic="t",
            partition=0,
            offset=0,
            reason_code="x",
            reason="",
            original=b"",
        )


def test_alert_row() -> None:
    fired = datetime(2025, 6, 1, 9, tzinfo=timezone(timedelta(hours=2)))
    alert = Alert(
        alert_id="a1",
        kind="threshold",
        severity="warning",
        title="80% of monthly budget",
        summary="spent $80.00 of $100.00",
        fired_at=fired,
        labels={"budget": "org"},
        figures={"spent_usd": "80.00"},
        contributors=(Contributor("service", "support-bot", 60_000_000_000, "0.75"),),
    )
    recorded = datetime(2025, 6, 1, 7, 0, 1, tzinfo=UTC)
    row = row_as_dict(ALERT_COLUMNS, alert_row(alert, recorded_at=recorded))
    assert row["status"] == "firing" and row["fired_at"] == fired
    assert orjson.loads(row["contributors"]) == [
        {
            "dimension": "service",
            "name": "support-bot",
            "cost_nusd": 60_000_000_000,
            "share": "0.75",
        }
    ]
    assert row["labels"] == {"budget": "org"} and row["recorded_at"] == recorded


def test_alert_delivery_row() -> None:
    at = datetime(2025, 6, 1, tzinfo=UTC)
    row = alert_delivery_row(
        alert_id="a1", receiver="slack:ops", attempt=2, outcome="failed", at=at, error="HTTP 500"
    )
    assert row_as_dict(ALERT_DELIVERY_COLUMNS, row) == {
        "alert_id": "a1",
        "status": "firing",
        "receiver": "slack:ops",
        "attempt": 2,
        "outcome": "failed",
        "error": "HTTP 500",
        "at": at,
    }


def test_row_json_is_exact() -> None:
    data = orjson.loads(
        row_json(USAGE_COLUMNS, usage_row(priced(unit="minute", quantity="2.500000001")))
    )
    assert data["quantity"] == "2.500000001"
    assert data["event_id"] == EVENT_ID
    assert data["ts"] == "2025-06-01T10:34:56.123456+00:00"


def test_table_specs_name_their_columns() -> None:
    assert TABLES["usage_events"].dedupe_column == "event_id"
    for spec in TABLES.values():
        for col in (spec.dedupe_column, spec.prune_column, spec.ttl_column):
            assert col is None or col in spec.columns
