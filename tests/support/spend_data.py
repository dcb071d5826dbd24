"""A small, known spend dataset written into a fresh chDB through the real schema and rows,
for tests that check figures read back by SQL (console snapshot, Grafana panels, reports).

Every figure is known here in advance: :data:`EVENTS` lists (service, provider, model, cost,
tags, status, cache hit, avoided cost); :func:`write` places them at given times.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from schemas.alerts import Alert
from sinks.client import make_client
from sinks.migrate import migrate
from sinks.rows import ALERTS, DEADLETTER, USAGE_EVENTS, alert_row, deadletter_row, usage_row
from sinks.settings import ClickHouseSettings


@dataclass(frozen=True)
class Spend:
    service: str
    provider: str
    model: str
    cost_nusd: int
    tags: dict[str, str] = field(default_factory=dict)
    status: str = "ok"
    cache_hit: bool = False
    avoided_nusd: int = 0
    unit: str = ""


# Odd amounts on purpose: a rounding or float slip shows.
EVENTS: tuple[Spend, ...] = (
    Spend("research", "openai", "gpt-4o", 1_234_567_891, {"team": "r", "lead": "L1"}),
    Spend("research", "openai", "gpt-4o", 765_432_109, {"team": "r", "lead": "L2"}),
    Spend("research", "anthropic", "claude-sonnet-4-5", 333_333_333, {"team": "r", "lead": "L1"}),
    Spend("support", "openai", "gpt-4o-mini", 11_111_111, {"team": "s"}),
    Spend(
        "support", "openai", "gpt-4o-mini", 0, {"team": "s"}, cache_hit=True, avoided_nusd=9_999_999
    ),
    Spend("support", "openai", "gpt-4o-mini", 0, {"team": "s"}, status="error"),
    Spend("enrich", "anthropic", "claude-3-5-haiku-latest", 42_000_001, {"lead": "L3"}),
    Spend("enrich", "polygon", "", 4_000_000, {"lead": "L3"}, unit="request"),
    Spend("voice", "twilio", "", 21_000_000, {"team": "v", "call_id": "c-1"}, unit="minute"),
)


def event(spend: Spend, ts: datetime) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "ts": ts.isoformat(),
        "service": spend.service,
        "operation": "call",
        "status": spend.status,
        "provider": spend.provider,
        "model": spend.model or None,
        "unit": spend.unit or None,
        "input_tokens": 10,
        "output_tokens": 1,
        "cache_hit": spend.cache_hit,
        "tags": spend.tags,
        "cost_nusd": spend.cost_nusd,
        "avoided_cost_nusd": spend.avoided_nusd,
        "cost_source": "catalog" if spend.model else "price_table",
    }
    if spend.status == "error":
        data["error_type"] = "RateLimitError"
    return data


@contextmanager
def chdb_client(path: Path) -> Iterator[Any]:
    """A client on a fresh chDB at ``path`` with the spendwatch schema applied."""
    settings = ClickHouseSettings(dsn=f"chdb://{path}")
    client = make_client(settings)
    migrate(client, settings)
    try:
        yield client
    finally:
        client.close()


def write(
    client: Any,
    placed: Sequence[tuple[Spend, datetime]],
    alerts: Sequence[tuple[Alert, datetime]] = (),
    deadletters: Sequence[tuple[str, str, datetime]] = (),
) -> None:
    """Insert usage rows (the materialized views fill the rollups), alerts (with their
    recorded time) and dead letters ``(reason_code, reason, received_at)``."""
    if placed:
        client.insert(
            "usage_events",
            [usage_row(event(s, ts)) for s, ts in placed],
            column_names=USAGE_EVENTS.columns,
        )
    if alerts:
        client.insert(
            "alerts",
            [alert_row(a, recorded_at=at) for a, at in alerts],
            column_names=ALERTS.columns,
        )
    if deadletters:
        client.insert(
            "deadletter",
            [
                deadletter_row(
                    received_at=at,
                    topic="spendwatch.usage.v1",
                    partition=0,
                    offset=i,
                    reason_code=code,
                    reason=reason,
                    original=b"{}",
                )
                for i, (code, reason, at) in enumerate(deadletters)
            ],
            column_names=DEADLETTER.columns,
        )
