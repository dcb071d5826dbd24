"""Run one ad-hoc read-only query and shape the answer for JSON, CSV and text output.

Shared by the worker's SQL endpoint and the direct path of ``spendwatch sql``, so both answer
the same way: Decimals as strings (exact), datetimes and dates ISO 8601, UUIDs as strings,
integers beyond 64 bits as strings, undecodable bytes as hex.
"""

from __future__ import annotations

import ipaddress
import math
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from enum import Enum
from typing import Any, Final

from clickhouse_connect.driver import Client

from sinks.client import RESULT_LIMITS, is_read_only
from sinks.readonly import check_read_only, strip_trailing_semicolon

DEFAULT_MAX_ROWS: Final = 10_000
_INT64: Final = 2**63


@dataclass(frozen=True, slots=True)
class QueryAnswer:
    """A query result ready for ``orjson.dumps``: ``rows`` hold JSON-safe values only."""

    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    truncated: bool = False
    elapsed_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "types": self.types,
            "rows": self.rows,
            "truncated": self.truncated,
            "elapsed_ms": round(self.elapsed_ms, 3),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueryAnswer:
        return cls(
            columns=list(data["columns"]),
            types=list(data.get("types") or []),
            rows=[list(r) for r in data["rows"]],
            truncated=bool(data.get("truncated", False)),
            elapsed_ms=float(data.get("elapsed_ms", 0.0)),
        )


def run_read_only(client: Client, sql: str, *, max_rows: int = DEFAULT_MAX_ROWS) -> QueryAnswer:
    """Check ``sql`` with :func:`check_read_only`, run it, return at most ``max_rows`` rows.

    Blocking (call through ``asyncio.to_thread`` on an event loop). On a client that is not
    read-only (``make_client(read_only=True)``) the read-only and FINAL settings ride with the
    query instead. Raises :class:`~sinks.readonly.ReadOnlyQueryError` for a refused query
    and clickhouse-connect errors for a failing one.
    """
    check_read_only(sql)
    query = strip_trailing_semicolon(sql)
    settings = None if is_read_only(client) else {"readonly": 2, "final": 1, **RESULT_LIMITS}
    started = time.perf_counter()
    result = client.query(query, settings=settings)
    elapsed_ms = (time.perf_counter() - started) * 1000
    rows = result.result_rows
    truncated = len(rows) > max_rows
    return QueryAnswer(
        columns=list(result.column_names),
        types=[t.name for t in result.column_types],
        rows=[[jsonable(v) for v in row] for row in rows[:max_rows]],
        truncated=truncated,
        elapsed_ms=elapsed_ms,
    )


def jsonable(value: Any) -> Any:
    """One ClickHouse value as a JSON-safe Python value (see the module docstring)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -_INT64 <= value < _INT64 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return format(value, "f")  # fixed point: str() would give '1E-9' / '0E-9'
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (uuid.UUID, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return raw.hex()
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    return str(value)


def recorded_alerts(client: Any, alert_ids: list[str]) -> set[tuple[str, str]]:
    """``(alert_id, status)`` pairs of ``alert_ids`` the ``alerts`` table already holds."""
    rows = client.query(
        "SELECT DISTINCT alert_id, status FROM alerts WHERE alert_id IN {ids:Array(String)}",
        parameters={"ids": alert_ids},
    ).result_rows
    return {(str(a), str(s)) for a, s in rows}
