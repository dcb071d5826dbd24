"""The detector's history read from ClickHouse equals the minutes the stream would have built.

Real chDB: events go into ``usage_events`` (the materialized view fills ``spend_by_minute``),
``read_history`` reads them back; the oracle is ``MinuteAggregator`` run over the same events.
History carries no model, tag or error-type breakdowns, and the provider split only for the
error-rate window (the last ``window_min`` + 1 minutes).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.alerts import Alert, Contributor
from sinks.client import make_client
from sinks.migrate import migrate
from sinks.rows import ALERTS, USAGE_EVENTS, alert_row, usage_row
from sinks.settings import ClickHouseSettings
from streams.detect import DetectSettings, MinuteAggregator, minute_index
from streams.detect.history import read_history, read_open_alerts

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 13, 0, 30, tzinfo=UTC)
# (provider, model, nano-USD per token): $12.50/Mtok is expensive by price, o1-preview by
# the name pattern, gpt-4o-mini neither; metered email has no model and no tokens.
MODELS = (("openai", "gpt-4o", 12_500), ("openai", "o1-preview", 5_000),
          ("anthropic", "claude-haiku", 1_000), ("openai", "gpt-4o-mini", 150))  # fmt: skip
SETTINGS = DetectSettings.from_config({"expensive_models": ["o1*"]})


@pytest.fixture
def clients(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    settings = ClickHouseSettings(dsn=f"chdb://{tmp_path / 'chdb'}")
    writer = make_client(settings)
    migrate(writer, settings)
    reader = make_client(settings, read_only=True)  # as the worker reads it
    yield writer, reader
    reader.close()
    writer.close()


def events() -> list[dict[str, Any]]:
    rng = random.Random(20261120)
    out = []
    start = NOW.replace(second=0) - timedelta(hours=3)
    for second in range(0, 3 * 3600 + 30, 7):  # three hours up to 13:00:30, one call in 7 s
        ts = start + timedelta(seconds=second)
        if rng.random() < 0.2:
            out.append(event(ts, "mail", None, None, 0, 2_000_000, ok=True, unit="email"))
            continue
        provider, model, rate = rng.choice(MODELS)
        tokens = rng.randint(100, 4000)
        ok = rng.random() > 0.05
        out.append(event(ts, "search", provider, model, tokens, tokens * rate, ok=ok))
    old = NOW - timedelta(days=8)  # beyond the seven days of history
    out.append(event(old, "search", "openai", "gpt-4o", 100, 1_250_000, ok=True))
    return out


def event(
    ts: datetime,
    service: str,
    provider: str | None,
    model: str | None,
    tokens: int,
    cost_nusd: int,
    *,
    ok: bool,
    unit: str | None = None,
) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "ts": ts.isoformat(),
        "service": service,
        "operation": "call",
        "status": "ok" if ok else "error",
        "error_type": None if ok else "RateLimitError",
        "provider": provider,
        "model": model,
        "unit": unit,
        "quantity": 1 if unit else None,
        "input_tokens": tokens * 3 // 4,
        "output_tokens": tokens - tokens * 3 // 4,
        "cost_nusd": cost_nusd,
        "cost_source": "catalog",
    }


def test_history_equals_the_streams_minutes(clients: tuple[Any, Any]) -> None:
    writer, reader = clients
    evs = events()
    writer.insert("usage_events", [usage_row(e) for e in evs], column_names=USAGE_EVENTS.columns)

    history = read_history(reader.query_np, SETTINGS, NOW)

    end = minute_index(NOW)
    recent = end - SETTINGS.window_min - 1
    first = end - SETTINGS.history_min
    agg = MinuteAggregator(SETTINGS)
    buckets = []
    for e in sorted(evs, key=lambda e: e["ts"]):
        buckets += agg.add(e)
    buckets += agg.flush()
    expected: dict[str, list[Any]] = {}
    for b in buckets:
        if not first <= b.index < end:
            continue
        keep = b.index >= recent
        expected.setdefault(b.service, []).append(
            replace(
                b,
                by_model={},
                by_tag={},
                errors_by_type={},
                requests_by_provider=dict(b.requests_by_provider) if keep else {},
                errors_by_provider=dict(b.errors_by_provider) if keep else {},
            )
        )
    assert sorted(history) == ["mail", "search"]
    for service, want in expected.items():
        got = list(history[service].buckets(service, before=end))
        assert got == want, service
    # every call of the window is in some minute, none outside it; the mix is not trivial
    in_window = [
        e for e in evs if first * 60 <= datetime.fromisoformat(e["ts"]).timestamp() < end * 60
    ]
    # 1,548 calls every 7 s from 10:00:00 to 13:00:29, less the 5 in the current minute
    assert (len(evs), len(in_window)) == (1_548 + 1, 1_543)
    assert sum(int(h.values[1].sum()) for h in history.values()) == len(in_window)
    search = expected["search"]
    assert sum(b.errors for b in search) > 0
    assert 0 < sum(b.expensive_requests for b in search) < sum(b.requests for b in search)


def test_open_detector_alerts_are_read_back_whole(clients: tuple[Any, Any]) -> None:
    writer, reader = clients
    at = NOW - timedelta(minutes=30)

    def alert(aid: str, detector: str, status: str = "firing", kind: str = "spike") -> Alert:
        return Alert(
            alert_id=aid,
            kind=kind,
            severity="warning",
            title=f"{aid}: spend 4x baseline",
            summary="s'quoted\nsummary",
            fired_at=at,
            status=status,
            labels={"service": "search", "detector": detector},
            figures={"episode_start": (at - timedelta(minutes=2)).isoformat(), "baseline": "1"},
            contributors=(Contributor("model", "gpt-4o", 1_000, "0.50"),),
        )

    still_open = alert("open", "spike")
    rows = [
        still_open,
        alert("closed", "spike"),
        alert("closed", "spike", "resolved"),
        alert("drop", "traffic_drop", kind="failure"),
        alert("budget", "budget", kind="threshold"),  # not a detector alert
        replace(alert("old", "spike"), fired_at=NOW - timedelta(days=8)),  # beyond the history
    ]
    writer.insert(
        "alerts", [alert_row(a, recorded_at=NOW) for a in rows], column_names=ALERTS.columns
    )
    found = read_open_alerts(lambda sql: reader.query(sql).result_rows, SETTINGS, NOW)
    assert found == [alert("drop", "traffic_drop", kind="failure"), still_open]  # by time, id
