"""Row converters: contract objects -> tuples in the column order of each ClickHouse table.

Each converter is pure (timestamps are passed in), checks what ClickHouse would refuse later,
and raises :class:`RowError` naming the field - so a bad row is dead-lettered by its caller
before it can poison a batch. The ``*_COLUMNS`` tuples are the column lists to give
``ClickHouseSink``; :data:`TABLES` names them with their replay-dedupe key.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import orjson

from schemas.alerts import Alert
from schemas.events import TOKEN_FIELDS, parse_ts

Row = tuple[Any, ...]

INT64_MAX: Final = 2**63 - 1
UINT32_MAX: Final = 2**32 - 1
UINT16_MAX: Final = 2**16 - 1

USAGE_COLUMNS: Final = (
    "event_id",
    "ts",
    "schema_version",
    "service",
    "operation",
    "status",
    "provider",
    "model",
    "response_model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "unit",
    "quantity",
    "supplied_cost_usd",
    "latency_ms",
    "error_type",
    "cache_hit",
    "partial",
    "request_id",
    "environment",
    "tags",
    "cost_nusd",
    "avoided_cost_nusd",
    "cost_source",
    "unpriced_reason",
    "ingested_at",
)
DEADLETTER_COLUMNS: Final = (
    "received_at",
    "topic",
    "partition",
    "offset",
    "reason_code",
    "reason",
    "original",
    "key",
)
ALERT_COLUMNS: Final = (
    "alert_id",
    "kind",
    "severity",
    "status",
    "title",
    "summary",
    "fired_at",
    "labels",
    "figures",
    "contributors",
    "schema_version",
    "recorded_at",
)
ALERT_DELIVERY_COLUMNS: Final = (
    "alert_id",
    "status",
    "receiver",
    "attempt",
    "outcome",
    "error",
    "at",
)

_STRING_FIELDS: Final = (
    "provider",
    "model",
    "response_model",
    "unit",
    "error_type",
    "request_id",
    "environment",
)
COST_SOURCES: Final = frozenset({"supplied", "catalog", "price_table", "unpriced"})


class RowError(ValueError):
    """A value cannot be stored; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A table the sink writes: name, column order, and the column that identifies a row for
    replay dedupe (``None``: the table's ReplacingMergeTree key is enough)."""

    table: str
    columns: tuple[str, ...]
    dedupe_column: str | None = None
    prune_column: str | None = None  # narrows the "already written?" lookup (partition key)
    ttl_column: str | None = None  # rows older than ttl_days by this column are dead-lettered


USAGE_EVENTS: Final = TableSpec("usage_events", USAGE_COLUMNS, "event_id", "ts", "ts")
DEADLETTER: Final = TableSpec("deadletter", DEADLETTER_COLUMNS, ttl_column="received_at")
ALERTS: Final = TableSpec("alerts", ALERT_COLUMNS, ttl_column="fired_at")
ALERT_DELIVERIES: Final = TableSpec("alert_deliveries", ALERT_DELIVERY_COLUMNS, ttl_column="at")
TABLES: Final = {s.table: s for s in (USAGE_EVENTS, DEADLETTER, ALERTS, ALERT_DELIVERIES)}


def usage_row(event: Mapping[str, Any] | Any) -> Row:
    """A priced event (``PricedEvent`` record or its dict) -> a ``usage_events`` row.

    ``ingested_at`` falls back to ``ts`` when the event has none, so a row never depends on
    the clock. Raises :class:`RowError` for a value ClickHouse would refuse.
    """
    data: Mapping[str, Any] = event.asdict() if hasattr(event, "asdict") else event
    try:
        event_id = uuid.UUID(str(data["event_id"]))
    except (KeyError, ValueError) as exc:
        raise RowError("event_id", f"not a UUID: {data.get('event_id')!r}") from exc
    ts = _ts("ts", data.get("ts"))
    ingested = data.get("ingested_at")
    ingested_at = ts if ingested in (None, "") else _ts("ingested_at", ingested)
    status = _req_str(data, "status")
    if status not in ("ok", "error"):
        raise RowError("status", f"must be ok or error, got {status!r}")
    cost_source = data.get("cost_source") or "unpriced"
    if cost_source not in COST_SOURCES:
        raise RowError("cost_source", f"unknown source {cost_source!r}")
    tags = data.get("tags") or {}
    if not isinstance(tags, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise RowError("tags", "must map strings to strings")
    latency = data.get("latency_ms")
    if latency is not None and (isinstance(latency, bool) or not isinstance(latency, (int, float))):
        raise RowError("latency_ms", f"not a number: {latency!r}")
    return (
        event_id,
        ts,
        _int("schema_version", data.get("schema_version", 1), 0, 255),
        _req_str(data, "service"),
        _req_str(data, "operation"),
        status,
        *(_opt_str(data, f) for f in ("provider", "model", "response_model")),
        *(_int(f, data.get(f) or 0, 0, UINT32_MAX) for f in TOKEN_FIELDS),
        _opt_str(data, "unit"),
        _decimal("quantity", data.get("quantity"), 12),
        _decimal("cost_usd", data.get("cost_usd"), 9),
        None if latency is None else float(latency),
        _opt_str(data, "error_type"),
        bool(data.get("cache_hit", False)),
        bool(data.get("partial", False)),
        _opt_str(data, "request_id"),
        _opt_str(data, "environment"),
        dict(tags),
        _int("cost_nusd", data.get("cost_nusd", 0), 0, INT64_MAX),
        _int("avoided_cost_nusd", data.get("avoided_cost_nusd", 0), 0, INT64_MAX),
        cost_source,
        _opt_str(data, "unpriced_reason"),
        ingested_at,
    )


def deadletter_row(
    *,
    received_at: datetime,
    topic: str,
    partition: int,
    offset: int,
    reason_code: str,
    reason: str,
    original: bytes | str,
    key: bytes | str | None = None,
) -> Row:
    """One ``deadletter`` row. ``original`` is the message exactly as received (bytes are
    stored unchanged; read them back with ``query_formats={'String': 'bytes'}``)."""
    _aware("received_at", received_at)
    if not reason_code:
        raise RowError("reason_code", "must not be empty")
    return (
        received_at,
        topic,
        _int("partition", partition, -(2**31), 2**31 - 1),
        _int("offset", offset, -INT64_MAX, INT64_MAX),
        reason_code,
        reason,
        original if isinstance(original, bytes) else original.encode(),
        key,
    )


def alert_row(alert: Alert, *, recorded_at: datetime) -> Row:
    """One ``alerts`` row; ``recorded_at`` (when the alert was stored) is the replace version."""
    _aware("recorded_at", recorded_at)
    contributors = orjson.dumps(alert.to_dict()["contributors"]).decode()
    return (
        alert.alert_id,
        alert.kind,
        alert.severity,
        alert.status,
        alert.title,
        alert.summary,
        alert.fired_at,
        dict(alert.labels),
        dict(alert.figures),
        contributors,
        alert.schema_version,
        recorded_at,
    )


def alert_delivery_row(
    *,
    alert_id: str,
    receiver: str,
    attempt: int,
    outcome: str,
    at: datetime,
    error: str = "",
    status: str = "firing",
) -> Row:
    """One ``alert_deliveries`` row: one attempt to deliver one notice to one receiver."""
    _aware("at", at)
    return (
        alert_id,
        status,
        receiver,
        _int("attempt", attempt, 0, UINT16_MAX),
        outcome,
        error,
        at,
    )


def row_as_dict(columns: tuple[str, ...] | list[str], row: Row) -> dict[str, Any]:
    """A row as ``{column: value}`` (for dead-letter payloads and debugging)."""
    return dict(zip(columns, row, strict=False))


def row_json(columns: tuple[str, ...] | list[str], row: Row) -> bytes:
    """A row as JSON bytes: Decimals and UUIDs as strings, datetimes ISO 8601."""
    return orjson.dumps(row_as_dict(columns, row), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(type(value).__name__)


def _ts(field: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        return _aware(field, value)
    if not isinstance(value, str):
        raise RowError(field, f"not a timestamp: {value!r}")
    try:
        return parse_ts(value)
    except ValueError as exc:
        raise RowError(field, f"{value!r}: {exc}") from exc


def _aware(field: str, value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise RowError(field, "must be a timezone-aware datetime")
    return value


def _req_str(data: Mapping[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value:
        raise RowError(field, f"required string, got {value!r}")
    return value


def _opt_str(data: Mapping[str, Any], field: str) -> str:
    value = data.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RowError(field, f"not a string: {value!r}")
    return value


def _int(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RowError(field, f"not an integer: {value!r}")
    if not low <= value <= high:
        raise RowError(field, f"{value} outside {low}..{high}")
    return value


def _decimal(field: str, value: Any, int_digits: int) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float):
        raise RowError(field, "money and quantities must be decimal strings, never floats")
    try:
        dec = Decimal(str(value))
    except InvalidOperation as exc:
        raise RowError(field, f"not a decimal: {value!r}") from exc
    if not dec.is_finite() or dec < 0 or dec >= Decimal(10) ** int_digits:
        raise RowError(field, f"{value!r} outside 0..1e{int_digits}")
    if dec != dec.quantize(Decimal("1e-9")):
        raise RowError(field, f"{value!r} has more than 9 decimals")
    return dec
