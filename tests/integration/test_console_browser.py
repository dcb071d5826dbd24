"""The console in a real browser: headless Debian Chromium (Selenium + chromedriver) on the page
a real worker serves, while the demo fleet (``streams.demo``, as ``spendwatch up --demo`` runs
it) spends through the SDK → Tansu → worker → chDB.

Asserted:
- the page first shows the budget below 50 %, then at >= 50 % and then exhausted (>= 100 %),
  each within ``LAG_S`` of the matching threshold alert being recorded in ClickHouse (times
  measured here and printed);
- once the fleet has stopped and everything is stored, every figure on the page equals the
  answer of an independent SQL query on ``usage_events`` / ``alerts`` / ``deadletter`` (the
  console reads the rollups): totals, spend by service, model, provider and tag (exact
  nano-USD in ``data-nusd`` and the displayed text), calls, cost per call / lead / call id,
  cache hits and avoided cost, errors per provider, alerts, dead letters, the per-minute chart;
  and the budget's spent equals the SQL sum of the budget's events;
- a screenshot is saved (``SW_CONSOLE_SCREENSHOT=path`` saves it there too, for the README).

Needs ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` (``make browser`` installs them with
apt). Without them this test FAILS naming what is missing: it never skips silently.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import spendwatch

from streams.broker import TansuBroker
from streams.config import load_settings
from streams.console.snapshot import model_label
from streams.demo import DemoFleet, demo_config
from streams.digest import ch_time
from streams.report.figures import per_unit, percent, usd
from tests.support.worker import WorkerProcess, running_worker, wait_for

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1900",
)
LAG_S = 10.0  # generous: a shared 2-core machine; the measured lag is printed
CROSS_AFTER_S = 20.0


def _missing_browser() -> list[str]:
    return [
        p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.exists(p) and os.access(p, os.X_OK))
    ]


@pytest.fixture
def browser() -> Iterator[Any]:
    missing = _missing_browser()
    if missing:
        pytest.fail(
            f"the console's browser test needs Debian's chromium and chromium-driver; missing "
            f"{missing}. Install them: `make browser` (as root) or "
            "`sudo apt-get install chromium chromium-driver`.",
            pytrace=False,
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="sw-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    # An explicit driver path: Selenium Manager never tries to download a browser or driver.
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _config(run_id: str, broker: TansuBroker, tmp: Path) -> str:
    text = demo_config(run_id)
    text = text.replace("http_port = 8787", f'http_port = {{http_port}}\nstate_dir = "{tmp}/state"')
    text = text.replace("chdb:///.spendwatch/chdb", f"chdb://{tmp}/chdb")
    assert "{http_port}" in text and f"chdb://{tmp}" in text
    return f'[kafka]\nbootstrap_servers = "{broker.bootstrap_servers}"\n\n' + text


_BUDGET_JS = """
const row = document.querySelector('#budgets .budget[data-key="fleet-daily"]');
if (!row) return null;
return {state: row.dataset.state, percent: row.dataset.percent,
        spent: row.dataset.spentNusd, limit: row.dataset.limitNusd,
        text: row.querySelector('[data-col=used]').textContent};
"""

_TABLES_JS = """
const out = {};
for (const t of document.querySelectorAll('table[data-figure]')) {
  const rows = {};
  for (const tr of t.querySelectorAll('tr[data-key]')) {
    const cells = {};
    for (const td of tr.querySelectorAll('td[data-col]')) {
      cells[td.dataset.col] = {text: td.textContent, nusd: td.dataset.nusd ?? null};
    }
    rows[tr.dataset.key] = cells;
  }
  out[t.dataset.figure] = rows;
}
const v = (id) => document.getElementById(id);
out.scalars = {
  total_today: [v('total-today').textContent, v('total-today').dataset.nusd],
  total_month: [v('total-month').textContent, v('total-month').dataset.nusd],
  calls_today: v('calls-today').dataset.value,
  cache_rate: v('cache-rate').textContent,
  cache_avoided: [v('cache-avoided').textContent, v('cache-avoided').dataset.nusd],
  alerts_open: v('alerts-open').textContent,
  alerts_resolved: v('alerts-resolved').textContent,
  dead_count: v('dead-count').textContent,
  generated_at: v('generated-at').textContent,
};
out.minutes = window.spendwatchConsole.last.minutes;
return out;
"""


def _rows(worker: WorkerProcess, sql: str) -> list[list[Any]]:
    return worker.query(sql)


def test_console_follows_the_demo_and_matches_sql(
    broker: TansuBroker, browser: Any, tmp_path: Path
) -> None:
    run_id = f"b{int(time.time()) % 10_000_000:07d}"
    config = _config(run_id, broker, tmp_path)
    settings = load_settings(text=config.replace("{http_port}", "1"))
    with running_worker(config, tmp_path) as worker:
        browser.get(f"{worker.endpoint}/")
        wait_for(
            lambda: (
                browser.execute_script("return document.getElementById('live').dataset.state")
                == "live"
            ),
            30,
            "the console to go live",
        )
        spendwatch.configure(bootstrap_servers=broker.bootstrap_servers, service="demo-fleet")
        fleet = DemoFleet(run_id=run_id, cross_after_s=CROSS_AFTER_S)
        seen: dict[str, float] = {}
        first_percent: Decimal | None = None
        fleet.start(settings.prices)
        try:
            deadline = time.monotonic() + 6 * CROSS_AFTER_S + 60
            while "100" not in seen and time.monotonic() < deadline:
                budget = browser.execute_script(_BUDGET_JS)
                if budget is not None:
                    pct = Decimal(budget["percent"].rstrip("%"))
                    first_percent = pct if first_percent is None else first_percent
                    if pct >= 50 and "50" not in seen:
                        seen["50"] = time.time()
                    if budget["state"] == "exhausted" and "100" not in seen:
                        seen["100"] = time.time()
                time.sleep(0.2)
        finally:
            fleet.stop()
            assert spendwatch.flush(30.0)
            spendwatch.shutdown(5.0)
        assert set(seen) == {"50", "100"}, f"the page never showed {seen=}"
        assert first_percent is not None and first_percent < 50, first_percent
        assert seen["50"] < seen["100"]

        # The threshold alerts as ClickHouse recorded them (worker clock = this machine's).
        wait_for(
            lambda: worker.scalar("SELECT count() FROM alerts WHERE kind = 'threshold'") == 4,
            30,
            "four threshold alerts",
        )
        recorded = {
            str(k): int(ms) / 1000
            for k, ms in _rows(
                worker,
                "SELECT labels['threshold'], toInt64(toUnixTimestamp64Milli(min(recorded_at))) "
                "FROM alerts WHERE kind = 'threshold' GROUP BY labels['threshold']",
            )
        }
        lag_50 = seen["50"] - recorded["0.5"]
        lag_100 = seen["100"] - recorded["1"]
        print(
            f"\nconsole lag behind the alert record: 50 % {lag_50:+.2f} s, 100 % {lag_100:+.2f} s"
        )
        assert abs(lag_50) <= LAG_S and abs(lag_100) <= LAG_S, (lag_50, lag_100)

        # Everything sent is stored: then the page must settle on the SQL answers.
        run = f"tags['demo_run'] = '{run_id}'"
        wait_for(
            lambda: (
                worker.scalar(f"SELECT count() FROM usage_events WHERE {run}") == fleet.sent_valid
            ),
            60,
            f"{fleet.sent_valid} events stored",
        )
        wait_for(
            lambda: worker.scalar("SELECT count() FROM deadletter") == fleet.sent_invalid,
            30,
            f"{fleet.sent_invalid} dead letters",
        )
        spent = int(worker.scalar(f"SELECT sum(cost_nusd) FROM usage_events WHERE {run}"))
        wait_for(
            lambda: int(browser.execute_script(_BUDGET_JS)["spent"]) == spent,
            30,
            f"the page's budget to show the stored spend {spent}",
        )
        settled_at = time.time()
        # two refreshes after the data settled, so every table is from settled data
        wait_for(
            lambda: _page_time(browser) >= settled_at + 1,
            30,
            "a page refresh after the data settled",
        )
        page = browser.execute_script(_TABLES_JS)
        budget = browser.execute_script(_BUDGET_JS)
        shot = tmp_path / "console.png"
        assert browser.save_screenshot(str(shot))
        print(f"console screenshot: {shot}")
        if os.environ.get("SW_CONSOLE_SCREENSHOT"):
            shutil.copy(shot, os.environ["SW_CONSOLE_SCREENSHOT"])
        _assert_page_equals_sql(worker, page, budget, spent, fleet)


def _page_time(browser: Any) -> float:
    text = browser.execute_script("return document.getElementById('generated-at').textContent")
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return 0.0


def _assert_page_equals_sql(
    worker: WorkerProcess, page: dict[str, Any], budget: dict[str, Any], spent: int, fleet: Any
) -> None:
    now = datetime.now(UTC)
    day = ch_time(now.replace(hour=0, minute=0, second=0, microsecond=0))
    usage = f"usage_events WHERE ts >= {day}"  # a fresh database: this run's events only

    # budget: spent of limit, exhausted
    assert budget["state"] == "exhausted"
    assert int(budget["limit"]) == 2_000_000_000
    assert budget["percent"] == percent(spent, 2_000_000_000, floor=True)
    assert budget["text"] == f"{usd(spent)} of {usd(2_000_000_000)} ({budget['percent']})"

    # totals (the fresh database holds today's events only, so month == today)
    [[total, calls]] = _rows(worker, f"SELECT toInt64(sum(cost_nusd)), count() FROM {usage}")
    assert calls == fleet.sent_valid
    assert page["scalars"]["total_today"] == [usd(total), str(total)]
    assert page["scalars"]["total_month"] == [usd(total), str(total)]
    assert int(page["scalars"]["calls_today"]) == calls

    def by(expr: str) -> dict[str, tuple[int, int]]:
        return {
            str(k): (int(c), int(n))
            for k, c, n in _rows(
                worker,
                f"SELECT {expr} AS k, toInt64(sum(cost_nusd)), count() FROM {usage} GROUP BY k",
            )
        }

    model_rows = _rows(
        worker,
        f"SELECT provider, model, toInt64(sum(cost_nusd)), count() FROM {usage} "
        "GROUP BY provider, model",
    )
    models: dict[str, tuple[int, int]] = {}
    for provider, model, cost, n in model_rows:
        key = model_label(str(provider), str(model))
        c0, n0 = models.get(key, (0, 0))
        models[key] = (c0 + int(cost), n0 + int(n))
    expected = {
        "service": by("service"),
        "provider": by("provider"),
        "model": models,
        "tag": {("(none)" if k == "" else k): v for k, v in by("tags['team']").items()},
    }
    for figure, want in expected.items():
        shown = page[figure]
        assert set(shown) == set(want), (figure, sorted(shown), sorted(want))
        for key, (cost, n) in want.items():
            cells = shown[key]
            assert cells["today"] == {"text": usd(cost), "nusd": str(cost)}, (figure, key)
            assert cells["month"] == {"text": usd(cost), "nusd": str(cost)}, (figure, key)
            assert int(cells["today_calls"]["text"]) == n, (figure, key)
            assert cells["per_call"]["text"] == per_unit(cost, n), (figure, key)

    # cost per unit: per call, per lead, per call id
    units = page["units"]
    assert units["call"]["tp"]["text"] == per_unit(total, calls)
    for tag in ("lead", "call_id"):
        [[distinct, cost]] = _rows(
            worker,
            f"SELECT uniqExact(tags['{tag}']), toInt64(sum(cost_nusd)) FROM {usage} "
            f"AND mapContains(tags, '{tag}')",
        )
        assert int(distinct) > 1, tag  # the demo tags its leads and calls
        assert int(units[tag]["tu"]["text"]) == int(distinct)
        assert units[tag]["tp"]["text"] == per_unit(int(cost), int(distinct))

    # cache: hit rate and avoided cost, per service
    [[hits, avoided]] = _rows(
        worker, f"SELECT countIf(cache_hit), toInt64(sum(avoided_cost_nusd)) FROM {usage}"
    )
    assert int(hits) > 0  # the demo's support-bot hits its cache
    assert page["scalars"]["cache_rate"] == percent(int(hits), calls)
    assert page["scalars"]["cache_avoided"] == [usd(int(avoided)), str(avoided)]
    for svc, h, n, av in _rows(
        worker,
        f"SELECT service, countIf(cache_hit) AS h, count(), toInt64(sum(avoided_cost_nusd)) "
        f"FROM {usage} GROUP BY service HAVING h > 0",
    ):
        row = page["cache"][svc]
        assert int(row["hits"]["text"]) == int(h) and int(row["calls"]["text"]) == int(n)
        assert row["hit_rate"]["text"] == percent(int(h), int(n))
        assert row["avoided"] == {"text": usd(int(av)), "nusd": str(av)}

    # errors per provider
    error_rows = _rows(
        worker,
        f"SELECT provider, countIf(status = 'error'), count() FROM {usage} GROUP BY provider",
    )
    assert sum(int(e) for _, e, _ in error_rows) > 0  # the demo has rate-limited calls
    assert set(page["errors"]) == {str(p) for p, _, _ in error_rows}
    for provider, errors, n in error_rows:
        row = page["errors"][str(provider)]
        assert int(row["errors"]["text"]) == int(errors) and int(row["calls"]["text"]) == int(n)
        assert row["error_rate"]["text"] == percent(int(errors), int(n))

    # alerts: every alert recorded, with its latest status; dead letters
    alerts = {
        str(aid): str(st)
        for aid, st in _rows(
            worker,
            "SELECT alert_id, argMax(status, (recorded_at, status = 'resolved')) FROM alerts "
            "GROUP BY alert_id",
        )
    }
    assert set(page["alerts"]) == set(alerts)
    assert {k: v["status"]["text"] for k, v in page["alerts"].items()} == alerts
    assert int(page["scalars"]["alerts_open"]) == sum(s == "firing" for s in alerts.values())
    assert int(page["scalars"]["alerts_resolved"]) == sum(s == "resolved" for s in alerts.values())
    assert int(page["scalars"]["dead_count"]) == fleet.sent_invalid > 0

    # the per-minute chart's series
    chart: dict[tuple[int, str], int] = {}
    minutes = page["minutes"]
    for service, values in minutes["series"].items():
        for t, v in zip(minutes["t"], values, strict=True):
            if v:
                chart[(int(t), service)] = int(v)
    want_chart = {
        (int(m), str(s)): int(c)
        for m, s, c in _rows(
            worker,
            "SELECT toInt64(toUnixTimestamp(toStartOfMinute(ts))) AS m, service, "
            f"toInt64(sum(cost_nusd)) AS c FROM {usage} GROUP BY m, service HAVING c != 0",
        )
    }
    assert chart == want_chart
