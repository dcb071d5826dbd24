"""The console's API on the real endpoint (aiohttp on loopback) over chDB: the snapshot's
figures equal independent SQL on a known dataset; budgets come from the status follower;
the bearer token guards the data (and only the data); a disabled console serves nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from schemas.alerts import Alert
from schemas.budget_status import BudgetStatus
from schemas.settings import Secret
from sinks.http_endpoint import start_sql_endpoint
from streams.console import console_app
from streams.console.settings import ConsoleSettings
from streams.report.figures import per_unit, percent, usd
from streams.report.settings import ReportSettings
from tests.support.spend_data import EVENTS, chdb_client, write

pytestmark = pytest.mark.integration


class Follower:
    """Stands in for the Kafka status follower (the browser test uses the real one)."""

    def __init__(self, statuses: dict[str, BudgetStatus]) -> None:
        self._statuses = statuses
        self.age_s = 0.1
        self.started = self.stopped = False

    def start(self) -> Follower:
        self.started = True
        return self

    def stop(self) -> None:
        self.stopped = True

    def statuses(self) -> dict[str, BudgetStatus]:
        return dict(self._statuses)


@pytest.fixture
def data(tmp_path: Path) -> Iterator[tuple[Any, datetime]]:
    now = datetime.now(UTC).replace(microsecond=0)
    ts = max(now - timedelta(seconds=30), now.replace(hour=0, minute=0, second=0))
    with chdb_client(tmp_path / "chdb") as client:
        write(
            client,
            [(e, ts) for e in EVENTS],
            alerts=[
                (Alert("a1", "spike", "critical", "spike", "s", ts), ts),
                (Alert("a1", "spike", "critical", "back", "s", ts, status="resolved"), ts),
                (Alert("a2", "threshold", "info", "50%", "s", ts), ts),
            ],
            deadletters=[("schema", "bad tokens", ts), ("too_large", "event too large", ts)],
        )
        yield client, ts


def settings(token: str | None = None, enabled: bool = True) -> Any:
    return SimpleNamespace(
        console=ConsoleSettings(
            enabled=enabled, token=Secret(token) if token else None, refresh_s=0.2
        ),
        report=ReportSettings(tag="team", unit_tags=("lead", "call_id")),
    )


STATUS = BudgetStatus(
    budget="fleet",
    period_start=datetime(2026, 1, 1, tzinfo=UTC),
    reset_at=datetime(2099, 1, 1, tzinfo=UTC),
    spent_nusd=1_234_567_891,
    limit_nusd=2_000_000_000,
    fraction="0.617283",
    state="warning",
    updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    override_until=datetime(2099, 1, 1, tzinfo=UTC),
)


async def test_snapshot_figures_equal_sql(data: tuple[Any, datetime]) -> None:
    client, _ = data
    follower = Follower({"fleet": STATUS})
    endpoint = await start_sql_endpoint(
        client, "127.0.0.1", 0, extend=console_app(settings(), client, follower=follower)
    )
    try:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{endpoint.port}"
            async with http.get(f"{base}/") as page:
                assert (
                    page.status == 200 and "<title>spendwatch console</title>" in await page.text()
                )
            async with http.get(f"{base}/console/static/vendor/uPlot.iife.min.js") as js:
                assert js.status == 200
            async with http.get(f"{base}/console/api/snapshot") as resp:
                assert resp.status == 200
                snap = await resp.json()
            async with http.get(f"{base}/console/api/snapshot?tag=bad%20tag") as bad:
                assert bad.status == 400
    finally:
        await endpoint.stop()
    assert follower.started and follower.stopped

    def sql(q: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in client.query(q).result_rows]

    [(total, calls)] = sql("SELECT toInt64(sum(cost_nusd)), count() FROM usage_events")
    today = snap["spend"]["today"]
    assert (today["total_nusd"], today["total"], today["calls"]) == (total, usd(total), calls)
    assert snap["spend"]["month"]["total_nusd"] == total
    for dim, expr in (("service", "service"), ("provider", "provider"), ("tag", "tags['team']")):
        want = {
            (k or "(none)"): (c, n)
            for k, c, n in sql(
                f"SELECT {expr} AS k, toInt64(sum(cost_nusd)), count() FROM usage_events GROUP BY k"
            )
        }
        got = {r["name"]: (r["cost_nusd"], r["calls"]) for r in today[dim]}
        assert got == want, dim
        for r in today[dim]:
            assert r["cost"] == usd(r["cost_nusd"]) and r["per_call"] == per_unit(*want[r["name"]])
    [(hits, avoided)] = sql(
        "SELECT countIf(cache_hit), toInt64(sum(avoided_cost_nusd)) FROM usage_events"
    )
    assert (
        (snap["cache"]["hits"], snap["cache"]["avoided_nusd"]) == (hits, avoided) == (1, 9_999_999)
    )
    assert snap["cache"]["hit_rate"] == percent(1, calls)
    errors = {r["name"]: (r["errors"], r["calls"]) for r in snap["errors"]}
    assert errors == {
        p: (e, n)
        for p, e, n in sql(
            "SELECT provider, countIf(status = 'error'), count() FROM usage_events "
            "GROUP BY provider"
        )
    }
    units = {u["unit"]: u["today"] for u in snap["units"]}
    assert units["call"] == {"units": calls, "cost_nusd": total, "per_unit": per_unit(total, calls)}
    lead_cost = sum(e.cost_nusd for e in EVENTS if "lead" in e.tags)
    assert units["lead"] == {"units": 3, "cost_nusd": lead_cost, "per_unit": per_unit(lead_cost, 3)}
    assert units["call_id"]["units"] == 1
    assert sum(sum(v) for v in snap["minutes"]["series"].values()) == total
    assert {a["id"]: a["status"] for a in snap["alerts"]["recent"]} == {
        "a1": "resolved",
        "a2": "firing",
    }
    assert (snap["alerts"]["open_count"], snap["alerts"]["resolved_count"]) == (1, 1)
    assert snap["deadletters"]["today_count"] == 2
    assert {r["code"] for r in snap["deadletters"]["recent"]} == {"schema", "too_large"}
    assert snap["tags"] == ["call_id", "lead", "team"]
    [budget] = snap["budgets"]
    assert budget["spent"] == usd(1_234_567_891) and budget["limit"] == usd(2_000_000_000)
    assert (budget["percent"], budget["state"]) == ("61.7%", "warning")
    assert budget["override_until"] == "2099-01-01 00:00:00 UTC"
    assert budget["reset_at"] == "2099-01-01 00:00:00 UTC"


async def test_bearer_token_guards_the_data(data: tuple[Any, datetime]) -> None:
    client, _ = data
    endpoint = await start_sql_endpoint(
        client,
        "127.0.0.1",
        0,
        extend=console_app(settings("s3cret"), client, follower=Follower({})),
    )
    url = f"http://127.0.0.1:{endpoint.port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/console/api/snapshot") as resp:
                assert resp.status == 401
            bad = {"Authorization": "Bearer nope"}
            async with http.get(f"{url}/console/api/snapshot", headers=bad) as resp:
                assert resp.status == 401
            good = {"Authorization": "Bearer s3cret"}
            async with http.get(f"{url}/console/api/snapshot", headers=good) as resp:
                assert resp.status == 200  # the positive control
            async with http.get(f"{url}/") as resp:
                assert resp.status == 200  # the page itself holds no data
    finally:
        await endpoint.stop()


async def test_disabled_console_serves_nothing(data: tuple[Any, datetime]) -> None:
    client, _ = data
    endpoint = await start_sql_endpoint(
        client, "127.0.0.1", 0, extend=console_app(settings(enabled=False), client)
    )
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{endpoint.port}/") as resp:
                assert resp.status == 404
            async with http.get(f"http://127.0.0.1:{endpoint.port}/health") as resp:
                assert resp.status == 200  # the endpoint itself still answers
    finally:
        await endpoint.stop()
