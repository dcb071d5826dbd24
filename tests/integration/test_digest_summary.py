"""The digest's figures come from ClickHouse exactly (real chDB, rows written by the sink)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerting.digest import BudgetLine, SpendLine
from schemas.alerts import Alert
from sinks.client import make_client
from sinks.migrate import migrate
from sinks.rows import alert_row, usage_row
from sinks.settings import ClickHouseSettings
from streams.digest import build_summary

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 20)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Any]:
    settings = ClickHouseSettings(dsn=f"chdb://{tmp_path / 'chdb'}")
    client = make_client(settings)
    migrate(client, settings)
    yield client
    client.close()


def event(ts: datetime, service: str, model: str, cost_nusd: int) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "ts": ts.isoformat(),
        "service": service,
        "operation": "chat",
        "status": "ok",
        "provider": "openai",
        "model": model,
        "input_tokens": 10,
        "output_tokens": 1,
        "cost_nusd": cost_nusd,
        "cost_source": "catalog",
    }


def test_summary_of_one_day(client: Any) -> None:
    start = datetime(2026, 11, 20, tzinfo=UTC)
    rows = [
        event(start + timedelta(hours=1), "search", "gpt-4o", 1_500_000_000),
        event(start + timedelta(hours=2), "search", "gpt-4o-mini", 250_000_000),
        event(start + timedelta(hours=23, minutes=59), "chat", "gpt-4o", 700_000_000),
        event(start - timedelta(seconds=1), "chat", "gpt-4o", 9_000_000_000),  # the day before
        event(start + timedelta(days=1), "chat", "gpt-4o", 9_000_000_000),  # the day after
    ]
    client.insert("usage_events", [usage_row(r) for r in rows], column_names=_usage_columns())
    alert = Alert(
        "a1", "threshold", "critical", "Budget fleet passed 95%", "s", start + timedelta(hours=3)
    )
    client.insert("alerts", [alert_row(alert, recorded_at=start)], column_names=_alert_columns())
    budgets = (BudgetLine("fleet", 2_450_000_000, 2_000_000_000, "2026-11-20"),)

    summary = build_summary(client, DAY, "UTC", budgets)

    assert summary is not None
    assert summary.total_cost_nusd == 2_450_000_000
    assert summary.by_service == (
        SpendLine("search", 1_750_000_000, 2),
        SpendLine("chat", 700_000_000, 1),
    )
    assert summary.by_model == (
        SpendLine("gpt-4o", 2_200_000_000, 2),
        SpendLine("gpt-4o-mini", 250_000_000, 1),
    )
    assert [(a.severity, a.title) for a in summary.alerts] == [
        ("critical", "Budget fleet passed 95%")
    ]
    assert summary.budgets == budgets


def test_an_empty_day_sends_nothing(client: Any) -> None:
    assert build_summary(client, DAY, "UTC", ()) is None


def _usage_columns() -> tuple[str, ...]:
    from sinks.rows import USAGE_EVENTS

    return USAGE_EVENTS.columns


def _alert_columns() -> tuple[str, ...]:
    from sinks.rows import ALERTS

    return ALERTS.columns
