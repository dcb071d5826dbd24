"""The provisioned Grafana dashboard: every panel's SQL, with the ClickHouse data source's
macros and the dashboard variables expanded as Grafana would, runs on the real schema in chDB
(a plain session, as Grafana's, without the ``final`` setting) over a known dataset; the
money panels return exact figures. Plus the provisioning wiring: data source uid, dashboard
provider path and the docker-compose mount agree.

The macro expansions follow the grafana-clickhouse-datasource plugin (``pkg/macros``):
``$__timeFilter(c)`` -> ``c >= toDateTime(from) AND c <= toDateTime(to)``, ``_ms`` variants with
``fromUnixTimestamp64Milli``, ``$__dateFilter(c)`` with ``toDate('YYYY-MM-DD')``,
``$__timeInterval(c)`` -> ``toStartOfInterval(toDateTime(c), INTERVAL n second)``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.alerts import Alert
from tests.support.spend_data import EVENTS, chdb_client, write

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/spendwatch.json"
NANO = Decimal("1e-9")


def expand(
    sql: str, start: datetime, end: datetime, interval_s: int, variables: dict[str, str]
) -> str:
    """``sql`` as the data source sends it to ClickHouse."""

    def dt(ts: datetime) -> str:
        return f"toDateTime({int(ts.timestamp())})"

    def dt64(ts: datetime) -> str:
        return f"fromUnixTimestamp64Milli({int(ts.timestamp() * 1000)})"

    def date(ts: datetime) -> str:
        return f"toDate('{ts:%Y-%m-%d}')"

    functions = {
        "timeFilter": lambda c: f"{c} >= {dt(start)} AND {c} <= {dt(end)}",
        "timeFilter_ms": lambda c: f"{c} >= {dt64(start)} AND {c} <= {dt64(end)}",
        "dateFilter": lambda c: f"{c} >= {date(start)} AND {c} <= {date(end)}",
        "timeInterval": lambda c: (
            f"toStartOfInterval(toDateTime({c}), INTERVAL {interval_s} second)"
        ),
        "timeInterval_ms": lambda c: (
            f"toStartOfInterval(toDateTime64({c}, 3), INTERVAL {interval_s * 1000} millisecond)"
        ),
    }
    plain = {
        "fromTime_ms": dt64(start),
        "toTime_ms": dt64(end),
        "fromTime": dt(start),
        "toTime": dt(end),
        "interval_s": str(interval_s),
    }
    out = re.sub(r"\$__(\w+)\(([^()]*)\)", lambda m: functions[m.group(1)](m.group(2).strip()), sql)
    for name, value in plain.items():
        out = out.replace(f"$__{name}", value)
    for name, value in variables.items():
        out = out.replace(f"${{{name}}}", value).replace(f"${name}", value)
    assert "$" not in out, f"unexpanded macro or variable left in: {out}"
    return out


def panels() -> list[dict[str, Any]]:
    return list(json.loads(DASHBOARD.read_text())["panels"])


@pytest.fixture
def dataset(tmp_path: Path) -> Iterator[tuple[Any, datetime]]:
    now = datetime.now(UTC).replace(microsecond=0)
    ts = max(now - timedelta(seconds=30), now.replace(hour=0, minute=0, second=0))
    with chdb_client(tmp_path / "chdb") as client:
        threshold = Alert(
            "a-threshold",
            "threshold",
            "warning",
            "Budget fleet passed 80%",
            "s",
            ts,
            labels={"budget": "fleet"},
            figures={"spent_usd": "1.60", "limit_usd": "2.00", "percent": "80.00"},
        )
        spike = Alert("a-spike", "spike", "critical", "research spend spike", "s", ts)
        resolved = Alert(
            "a-spike", "spike", "critical", "research spend back", "s", ts, status="resolved"
        )
        write(
            client,
            [(e, ts) for e in EVENTS],
            alerts=[(threshold, ts), (spike, ts), (resolved, ts + timedelta(seconds=1))],
            deadletters=[("schema", "input_tokens < 0", ts), ("schema", "bad ts", ts)],
        )
        yield client, now


def run_panel(client: Any, panel: dict[str, Any], now: datetime) -> list[tuple[Any, ...]]:
    [target] = panel["targets"]
    sql = expand(
        target["rawSql"],
        now - timedelta(hours=24),
        now + timedelta(seconds=1),
        60,
        {"tag": "team", "unit_tag": "lead"},
    )
    return [tuple(r) for r in client.query(sql).result_rows]


def test_every_panel_runs_on_the_real_schema(dataset: tuple[Any, datetime]) -> None:
    client, now = dataset
    ran = 0
    for panel in panels():
        rows = run_panel(client, panel, now)
        assert rows, f"panel {panel['title']!r} returned nothing on data it should show"
        ran += 1
    assert ran == len(panels()) >= 14


def test_money_panels_give_exact_figures(dataset: tuple[Any, datetime]) -> None:
    client, now = dataset
    by_title = {p["title"]: p for p in panels()}

    def usd(nusd: int) -> Decimal:
        return (Decimal(nusd) * NANO).quantize(NANO)

    per_service: dict[str, tuple[int, int]] = {}
    for e in EVENTS:
        cost, calls = per_service.get(e.service, (0, 0))
        per_service[e.service] = (cost + e.cost_nusd, calls + 1)
    rows = run_panel(client, by_title["Spend by service: today and this month (UTC days)"], now)
    assert {r[0]: (r[1], r[2], r[3], r[4]) for r in rows} == {
        s: (usd(c), n, usd(c), n) for s, (c, n) in per_service.items()
    }

    minute_rows = run_panel(client, by_title["Spend per minute by service (USD)"], now)
    assert sum(Decimal(r[2]) for r in minute_rows) == usd(sum(e.cost_nusd for e in EVENTS))

    tag_rows = run_panel(
        client, by_title["Spend by tag ${tag}: today and this month (UTC days)"], now
    )
    team: dict[str, int] = {}
    for e in EVENTS:
        team[e.tags.get("team", "")] = team.get(e.tags.get("team", ""), 0) + e.cost_nusd
    assert {r[0]: r[3] for r in tag_rows} == {k: usd(v) for k, v in team.items()}

    [(unit, units, cost, per)] = run_panel(client, by_title["Cost per ${unit_tag}"], now)
    lead_cost = sum(e.cost_nusd for e in EVENTS if "lead" in e.tags)
    assert (unit, units, cost) == ("lead", 3, usd(lead_cost))
    assert per == pytest.approx(Decimal(lead_cost) * NANO / 3, rel=Decimal("1e-9"))

    cache = run_panel(client, by_title["Cache hit rate and avoided cost by service"], now)
    assert [(r[0], r[1], r[2], r[4]) for r in cache] == [("support", 1, 3, usd(9_999_999))]

    [budget] = run_panel(client, by_title["Budgets (as of each budget's latest alert)"], now)
    assert budget[:4] == ("fleet", "1.60", "2.00", "80.00")
    open_ids = [r[0] for r in run_panel(client, by_title["Open alerts"], now)]
    assert open_ids == ["a-threshold"]  # the spike resolved
    recent = {r[0]: r[3] for r in run_panel(client, by_title["Recent and resolved alerts"], now)}
    assert recent == {"a-threshold": "firing", "a-spike": "resolved"}
    reasons = run_panel(client, by_title["Dead letters by reason"], now)
    assert reasons == [("schema", 2)]


def test_provisioning_wiring_agrees() -> None:
    root = ROOT / "deploy/grafana"
    [source] = yaml.safe_load((root / "provisioning/datasources/clickhouse.yml").read_text())[
        "datasources"
    ]
    uids = {p["datasource"]["uid"] for p in panels()}
    uids |= {t["datasource"]["uid"] for p in panels() for t in p["targets"]}
    assert uids == {source["uid"]}
    [provider] = yaml.safe_load((root / "provisioning/dashboards/spendwatch.yml").read_text())[
        "providers"
    ]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    # the console's sections all have a panel
    titles = " ".join(p["title"].lower() for p in panels())
    for word in (
        "budget",
        "per minute",
        "service",
        "model",
        "provider",
        "tag",
        "cost per",
        "cache",
        "error rate",
        "alerts",
        "dead letters",
    ):
        assert word in titles, word
