"""A budget's stored spend, read back from real chDB: the SQL scope equals the Python scope
(random scopes), and the positions, contributors and samples a seeded ledger starts from."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sinks.client import make_client
from sinks.migrate import migrate
from sinks.settings import ClickHouseSettings
from streams.budgets import Budget, Match, period_bounds
from streams.budgets.stored import announced_thresholds, stored_spend
from streams.hot.batch import BatchBuilder
from streams.hot.dedupe import StoredIds
from streams.hot.writer import UsageWriter
from streams.pricing import Pricer

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
NOW_US = int(NOW.timestamp() * 1e6)
SERVICES = ("chat-api", "chat-batch", "voice", "search")
PROVIDERS = ("openai", "anthropic", None)
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-haiku-latest", None)
TAGS = {"team": ("alpha", "alps", "beta"), "env": ("prod", "dev")}


def make_events(n: int) -> list[dict[str, Any]]:
    rng = random.Random(20261202)
    out = []
    for i in range(n):
        tags = {k: rng.choice(v) for k, v in TAGS.items() if rng.random() < 0.7}
        event: dict[str, Any] = {
            "schema_version": 1,
            "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "ts": (NOW - timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "service": rng.choice(SERVICES),
            "operation": "call",
            "status": "ok",
            "unit": "request",
            "cost_usd": f"0.{rng.randint(1, 999_999_999):09d}",
        }
        for key, value in (("provider", rng.choice(PROVIDERS)), ("model", rng.choice(MODELS))):
            if value:
                event[key] = value
        if tags:
            event["tags"] = tags
        out.append(event)
    return out


EVENTS = make_events(400)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    path: Path = tmp_path_factory.mktemp("chdb-stored") / "data"
    ch = ClickHouseSettings(dsn=f"chdb://{path}", database="stored")
    c = make_client(ch)
    migrate(c, ch)
    builder = BatchBuilder(
        pricer=Pricer(),
        budgets=[],
        stored=StoredIds(window_s=3600, max_ids=100_000, skew_s=300),
        detect=None,
        ttl_days=90,
    )
    builder.epoch = "e7"
    builder.stored.reset(0, NOW_US - 3_600_000_000, [])
    builder.stored.reset(1, NOW_US - 3_600_000_000, [])
    records = [
        SimpleNamespace(topic="u", partition=i % 2, offset=i // 2, key=None, value=orjson.dumps(e))
        for i, e in enumerate(EVENTS)
    ]
    asyncio.run(UsageWriter(c).write(builder.build(builder.decode(records), NOW_US)))
    yield c
    c.close()


def cost(event: dict[str, Any]) -> int:
    whole, frac = event["cost_usd"].split(".")
    return int(whole) * 10**9 + int(frac.ljust(9, "0"))


def patterns(values: tuple[str | None, ...]) -> st.SearchStrategy[tuple[str, ...]]:
    names = [v for v in values if v]
    prefixes = sorted({n[:k] + "*" for n in names for k in range(0, 4)})
    return st.lists(st.sampled_from(names + prefixes), max_size=2, unique=True).map(tuple)


matches = st.builds(
    Match,
    services=patterns(SERVICES),
    providers=patterns(PROVIDERS),
    models=patterns(MODELS),
    tags=st.lists(
        st.tuples(
            st.sampled_from(sorted(TAGS)),
            st.sampled_from(["alpha", "al*", "beta", "prod", "*", "d*"]),
        ),
        max_size=2,
        unique_by=lambda t: t[0],
    ).map(tuple),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(matches)
def test_the_sql_scope_is_the_python_scope(client: Client, match: Match) -> None:
    budget = Budget(name="b", limit_nusd=10**12, match=match)
    start, end = period_bounds(budget, NOW)
    in_scope = [e for e in EVENTS if match.matches(e) and start <= _ts(e) < end]
    stored = stored_spend(client, budget, start, end)
    assert stored.spent_nusd == sum(cost(e) for e in in_scope)
    assert stored.events == len(in_scope)


def _ts(event: dict[str, Any]) -> datetime:
    return datetime.strptime(event["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def test_positions_contributors_and_burn_samples(client: Client) -> None:
    budget = Budget(name="voice", limit_nusd=10**12, match=Match(services=("voice",)))
    start, end = period_bounds(budget, NOW)
    stored = stored_spend(client, budget, start, end, burn_since=NOW - timedelta(minutes=15))
    mine = [(i, e) for i, e in enumerate(EVENTS) if e["service"] == "voice" and _ts(e) >= start]
    last = {p: max(i // 2 for i, _ in mine if i % 2 == p) for p in (0, 1)}
    assert stored.positions == {f"e7:{p}": o for p, o in last.items()}
    assert stored.tallies["service"] == {"voice": sum(cost(e) for _, e in mine)}
    teams: dict[str, int] = {}
    for _, e in mine:
        team = (e.get("tags") or {}).get("team")
        if team:
            teams[team] = teams.get(team, 0) + cost(e)
    assert stored.tallies["tag:team"] == teams
    assert sum(c for _, c in stored.burn) == sum(
        cost(e) for _, e in mine if _ts(e) >= NOW - timedelta(minutes=15)
    )


def test_announced_thresholds_read_from_the_alerts_table(client: Client) -> None:
    from schemas.alerts import Alert
    from sinks.rows import ALERTS, alert_row

    def alert(threshold: str, fired: datetime, budget: str = "daily") -> Alert:
        return Alert(
            alert_id=f"{budget}-{threshold}-{fired.isoformat()}",
            kind="threshold",
            severity="info",
            title="t",
            summary="s",
            fired_at=fired,
            labels={"budget": budget, "threshold": threshold},
        )

    rows = [
        alert_row(alert("0.5", NOW - timedelta(days=2)), recorded_at=NOW),  # an earlier period
        alert_row(alert("0.8", NOW - timedelta(minutes=5)), recorded_at=NOW),
        alert_row(alert("0.95", NOW, budget="other"), recorded_at=NOW),
    ]
    client.insert(ALERTS.table, rows, column_names=list(ALERTS.columns))
    since = NOW - timedelta(hours=1)
    assert announced_thresholds(client, "daily", since) == {"0.8"}
