"""A ledger seeded from real chDB rows with a distinct tag value per event (issue 12): it
keeps the top MAX_NAMES_PER_DIMENSION names per dimension plus "(other)", and its tallies add
up to its spend to the nano-dollar, before and after counting more distinct values."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver import Client

from sinks.client import make_client
from sinks.migrate import migrate
from sinks.settings import ClickHouseSettings
from streams.budgets import Budget, Match, apply_delta, period_bounds
from streams.budgets.delta import DeltaBuilder
from streams.budgets.ledger import MAX_NAMES_PER_DIMENSION, OTHER
from streams.budgets.stored import literal_scope_sql, scope_sql, seeded_state, stored_spend
from streams.hot.batch import BatchBuilder
from streams.hot.dedupe import StoredIds
from streams.hot.writer import UsageWriter
from streams.pricing import Pricer

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
NOW_US = int(NOW.timestamp() * 1e6)
N = 300


def cost_nusd(i: int) -> int:
    return 1_000 + 37 * i  # distinct per event, so the top 50 is unambiguous


def make_event(i: int) -> dict[str, Any]:
    event: dict[str, Any] = {
        "schema_version": 1,
        "event_id": str(uuid.UUID(int=i + 1)),
        "ts": (NOW - timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "service": "voice",
        "operation": "call",
        "status": "ok",
        "unit": "request",
        "cost_usd": f"0.{cost_nusd(i):09d}",
        "tags": {"customer": f"cust-{i}", "team": "alpha" if i % 2 else "beta"},
    }
    if i % 3:
        event["model"] = f"model-{i % 90}"  # 60 distinct models, on two events in three
    return event


EVENTS = [make_event(i) for i in range(N)]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    path: Path = tmp_path_factory.mktemp("chdb-cardinality") / "data"
    ch = ClickHouseSettings(dsn=f"chdb://{path}", database="cardinality")
    c = make_client(ch)
    migrate(c, ch)
    builder = BatchBuilder(
        pricer=Pricer(),
        budgets=[],
        stored=StoredIds(window_s=3600, max_ids=100_000, skew_s=300),
        detect=None,
        ttl_days=90,
    )
    builder.epoch = "e1"
    builder.stored.reset(0, NOW_US - 3_600_000_000, [])
    records = [
        SimpleNamespace(topic="u", partition=0, offset=i, key=None, value=orjson.dumps(e))
        for i, e in enumerate(EVENTS)
    ]
    asyncio.run(UsageWriter(c).write(builder.build(builder.decode(records), NOW_US)))
    yield c
    c.close()


def test_seeded_tallies_keep_the_top_names_and_add_up(client: Client) -> None:
    budget = Budget(name="voice", limit_nusd=10**15, match=Match(services=("voice",)))
    start, end = period_bounds(budget, NOW)
    stored = stored_spend(client, budget, start, end)
    total = sum(cost_nusd(i) for i in range(N))
    assert (stored.events, stored.spent_nusd) == (N, total)

    # customer: the 50 costliest values by name, the other 250 under "(other)".
    customers = stored.tallies["tag:customer"]
    top = {f"cust-{i}": cost_nusd(i) for i in range(N - MAX_NAMES_PER_DIMENSION, N)}
    assert customers == {**top, OTHER: total - sum(top.values())}
    # model: 60 names on 200 events; the rows without a model are in no model tally.
    by_model: dict[str, int] = {}
    for i in range(N):
        if i % 3:
            by_model[f"model-{i % 90}"] = by_model.get(f"model-{i % 90}", 0) + cost_nusd(i)
    kept = dict(sorted(by_model.items(), key=lambda kv: -kv[1])[:MAX_NAMES_PER_DIMENSION])
    model_total = sum(by_model.values())
    assert stored.tallies["model"] == {**kept, OTHER: model_total - sum(kept.values())}
    # Few values: no "(other)".
    assert stored.tallies["tag:team"] == {
        "alpha": sum(cost_nusd(i) for i in range(1, N, 2)),
        "beta": sum(cost_nusd(i) for i in range(0, N, 2)),
    }
    assert stored.tallies["service"] == {"voice": total}

    # The seeded ledger goes on counting new distinct values into "(other)".
    state = seeded_state(budget, stored, start, end)
    builder = DeltaBuilder("voice")
    for j in range(1_000):
        builder.add((0, N + j, NOW_US + j, 5, 0))
        builder.tally("tag:customer", f"new-{j}", 5)
    [delta] = builder.build("e1")
    state, _ = apply_delta(budget, state, delta)
    customers = state.tallies["tag:customer"]
    assert len(customers) == MAX_NAMES_PER_DIMENSION + 1
    assert {n: c for n, c in customers.items() if n != OTHER} == top
    assert sum(customers.values()) == state.spent_nusd == total + 5_000


@pytest.mark.parametrize(
    "match",
    [
        Match(),
        Match(tags=(("customer", "cust-1*"),)),
        Match(tags=(("team", "alpha"),), models=("model-1*",)),
        Match(tags=(("team", "o'x\\"),)),  # quoted as a literal, matches nothing
        Match(services=("voice",), models=("model-3", "model-4*")),
    ],
)
def test_literal_scope_is_the_bound_scope(client: Client, match: Match) -> None:
    """The reports sum a budget's spend with its scope written as literals (one row however
    many distinct tag values): the same rows as the bound scope and as ``Match.matches``."""
    params: dict[str, Any] = {}
    sql = "SELECT toInt64(sum(cost_nusd)) FROM usage_events WHERE "
    [[bound]] = client.query(sql + scope_sql(match, params), parameters=params).result_rows
    [[literal]] = client.query(sql + literal_scope_sql(match)).result_rows
    python = sum(cost_nusd(i) for i, e in enumerate(EVENTS) if match.matches(e))
    assert bound == literal == python
