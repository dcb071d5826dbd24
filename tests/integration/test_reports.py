"""Reports on real chDB: every figure equals an independent SQL answer on ``usage_events``;
the chart is a real PNG of the expected size that is not blank; weekly reports reach a real
SMTP server (chart embedded by ``cid``) and a loopback Slack API (short summary) once; the
schedule sends on Monday after ``at`` and not before; ``spendwatch report`` (the real CLI)
prints the day."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image

from alerting.config import AlertingSettings
from alerting.delivery import AlertDispatcher
from alerting.deliverylog import MemoryDeliveryLog
from alerting.notifiers.factory import build_notifiers
from alerting.notifiers.recording import RecordingNotifier
from alerting.render.charts import DIGEST_SIZE_PX
from schemas.alerts import Alert
from streams.budgets import load_budgets
from streams.console.snapshot import model_label
from streams.digest import ch_time
from streams.report.build import build_report
from streams.report.chart import SIZE_PX, report_chart
from streams.report.figures import per_unit, percent, usd
from streams.report.periods import span_of
from streams.report.render import render_html, render_markdown, render_summary, render_text
from streams.report.schedule import ReportSchedule, report_message
from streams.report.settings import ReportSettings
from tests.support.slack_server import SlackServer
from tests.support.smtp_server import SmtpServer
from tests.support.spend_data import EVENTS, Spend, chdb_client, write

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday
SETTINGS = ReportSettings(
    tag="team",
    unit_tags=("lead", "call_id"),
    tiers={"tier 1": ("*haiku*", "gpt-4o-mini*"), "tier 2": ("gpt-4o", "*sonnet*")},
)
BUDGETS = tuple(
    load_budgets(
        [
            {
                "name": "research-weekly",
                "period": "week",
                "limit_usd": "5",
                "match": {"service": "research"},
            },
            {"name": "all-daily", "period": "day", "limit_usd": "1"},
        ],
        "",
    )
)
PREVIOUS = (  # the week before, inside the like-for-like window (Mon 16 to Wed 18 12:00)
    Spend("research", "openai", "gpt-4o", 500_000_007, {"team": "r", "lead": "L9"}),
    Spend(
        "support",
        "openai",
        "gpt-4o-mini",
        22_222_222,
        {"team": "s"},
        cache_hit=True,
        avoided_nusd=1_000_001,
    ),
)
LATE_PREVIOUS = Spend("voice", "twilio", "", 77_000_000, {"team": "v"}, unit="minute")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Any]:
    with chdb_client(tmp_path / "chdb") as c:
        write(
            c,
            [(e, datetime(2026, 11, 24, 10, 0, tzinfo=UTC)) for e in EVENTS]
            + [(EVENTS[0], datetime(2026, 11, 25, 9, 30, tzinfo=UTC))]
            + [(e, datetime(2026, 11, 17, 10, 0, tzinfo=UTC)) for e in PREVIOUS]
            + [(LATE_PREVIOUS, datetime(2026, 11, 18, 13, 0, tzinfo=UTC))],
            alerts=[
                (
                    Alert(
                        "t1",
                        "threshold",
                        "info",
                        "research-weekly passed 50%",
                        "s",
                        datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
                        labels={"budget": "research-weekly"},
                    ),
                    datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
                )
            ],
        )
        yield c


def rows(client: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in client.query(sql).result_rows]


def run_of(client: Any) -> Any:
    return lambda sql: [list(r) for r in client.query(sql).result_rows]


def test_weekly_report_figures_equal_sql(client: Any) -> None:
    span = span_of("week", NOW, "UTC", complete=False)
    assert span.previous.end == datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # like for like
    report = build_report(run_of(client), span, SETTINGS, BUDGETS)

    def where(s: Any) -> str:
        return f"ts >= {ch_time(s.start)} AND ts < {ch_time(s.end)}"

    cur, prev = where(span.current), where(span.previous)

    def grouped(expr: str, w: str) -> dict[str, tuple[int, int]]:
        return {
            str(k): (int(c), int(n))
            for k, c, n in rows(
                client,
                f"SELECT {expr} AS k, sum(cost_nusd), count() FROM usage_events "
                f"WHERE {w} GROUP BY k",
            )
        }

    [(total, calls)] = rows(client, f"SELECT sum(cost_nusd), count() FROM usage_events WHERE {cur}")
    [(ptotal, pcalls)] = rows(
        client, f"SELECT sum(cost_nusd), count() FROM usage_events WHERE {prev}"
    )
    assert (report.total.cost_nusd, report.total.calls) == (total, calls)
    assert (report.total.previous_nusd, report.total.previous_calls) == (ptotal, pcalls)
    assert total == sum(e.cost_nusd for e in EVENTS) + EVENTS[0].cost_nusd  # the data's own sum
    assert ptotal == sum(e.cost_nusd for e in PREVIOUS)  # the late one is outside the window

    for lines, expr in ((report.by_service, "service"), (report.by_tag, "tags['team']")):
        now_sql, before_sql = grouped(expr, cur), grouped(expr, prev)
        got = {line.name: line for line in lines}
        keys = {k or "(none)" for k in set(now_sql) | set(before_sql)}
        assert set(got) == keys
        for k in set(now_sql) | set(before_sql):
            line = got[k or "(none)"]
            assert (line.cost_nusd, line.calls) == now_sql.get(k, (0, 0))
            assert (line.previous_nusd, line.previous_calls) == before_sql.get(k, (0, 0))

    models: dict[str, tuple[int, int]] = {}
    tiers: dict[str, int] = {}
    for provider, model, cost, n in rows(
        client,
        f"SELECT provider, model, sum(cost_nusd), count() FROM usage_events WHERE {cur} "
        "GROUP BY provider, model",
    ):
        label = model_label(provider, model)
        c0, n0 = models.get(label, (0, 0))
        models[label] = (c0 + cost, n0 + n)
        tiers[SETTINGS.tier_of(model)] = tiers.get(SETTINGS.tier_of(model), 0) + cost
    assert {line.name: (line.cost_nusd, line.calls) for line in report.by_model} == models
    assert {t.name: t.cost_nusd for t in report.tiers} == {
        **{name: 0 for name in ("tier 1", "tier 2")},
        **tiers,
    }
    assert [t.name for t in report.tiers][:2] == ["tier 1", "tier 2"]  # config order
    assert tiers["not an LLM"] == 4_000_000 + 21_000_000

    [(hits, avoided)] = rows(
        client, f"SELECT countIf(cache_hit), sum(avoided_cost_nusd) FROM usage_events WHERE {cur}"
    )
    [(phits, pavoided)] = rows(
        client, f"SELECT countIf(cache_hit), sum(avoided_cost_nusd) FROM usage_events WHERE {prev}"
    )
    assert (report.cache_hits, report.avoided_nusd) == (hits, avoided) == (1, 9_999_999)
    assert (report.previous_cache_hits, report.previous_avoided_nusd) == (phits, pavoided)

    units = {u.unit: u for u in report.units}
    assert (units["call"].units, units["call"].cost_nusd) == (calls, total)
    for tag in ("lead", "call_id"):
        [(n, c)] = rows(
            client,
            f"SELECT uniqExact(tags['{tag}']), sum(cost_nusd) FROM usage_events "
            f"WHERE {cur} AND mapContains(tags, '{tag}')",
        )
        assert (units[tag].units, units[tag].cost_nusd) == (n, c)
    assert units["lead"].units == 3

    movers = {(m.dimension, m.line.name): m.line.delta_nusd for m in report.movers}
    biggest = max(abs(v) for v in movers.values())
    assert biggest == abs(models["gpt-4o"][0] - 500_000_007) or biggest == abs(
        grouped("service", cur)["research"][0] - 500_000_007
    )

    week_start = datetime(2026, 11, 23, tzinfo=UTC)
    [(research,)] = rows(
        client,
        f"SELECT sum(cost_nusd) FROM usage_events WHERE service = 'research' "
        f"AND ts >= {ch_time(week_start)} AND ts < {ch_time(week_start + timedelta(days=7))}",
    )
    [(today,)] = rows(
        client,
        f"SELECT sum(cost_nusd) FROM usage_events WHERE ts >= {ch_time(NOW.replace(hour=0))} "
        f"AND ts < {ch_time(NOW.replace(hour=0) + timedelta(days=1))}",
    )
    assert [(b.name, b.spent_nusd, b.limit_nusd, b.alerts) for b in report.budgets] == [
        ("all-daily", today, 1_000_000_000, 0),
        ("research-weekly", research, 5_000_000_000, 1),
    ]

    per_day = {
        (str(d)[:10], s): c
        for d, s, c in rows(
            client,
            f"SELECT toDate(ts), service, sum(cost_nusd) FROM usage_events "
            f"WHERE {cur} GROUP BY 1, 2",
        )
    }
    shown = {(label[:10], s): c for label, costs in report.series for s, c in costs}
    assert shown == per_day
    assert [label[:10] for label, _ in report.series] == ["2026-11-23", "2026-11-24", "2026-11-25"]

    # the rendered figures are the built ones
    text = render_text(report)
    assert f"{usd(total)} spent over {calls:,} calls" in text
    assert f"research-weekly  {usd(research)}" in text
    assert per_unit(units["lead"].cost_nusd, 3) in text
    assert percent(1, calls) in text
    md = render_markdown(report)
    assert md.startswith("# spendwatch weekly report: week 48 of 2026 (Nov 23) (so far)\n")
    assert f"| research | {usd(grouped('service', cur)['research'][0])} |" in md
    assert "data:image/png;base64," in render_html(report, chart_png=report_chart(report))
    summary = render_summary(report)
    assert summary.splitlines()[1] == text.splitlines()[3]


def assert_real_chart(data: bytes, size: tuple[int, int]) -> None:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(data)).convert("RGB")
    assert image.size == size
    pixels = list(image.getdata())
    colored = sum(1 for r, g, b in pixels if max(r, g, b) - min(r, g, b) > 60)
    assert colored > 0.02 * len(pixels), f"chart looks blank: {colored} colored pixels"
    assert len(set(pixels)) > 20


def test_charts_are_real_pngs(client: Any) -> None:
    for period in ("day", "week", "month"):
        report = build_report(run_of(client), span_of(period, NOW, "UTC", complete=False), SETTINGS)  # type: ignore[arg-type]
        assert_real_chart(report_chart(report), SIZE_PX)
    from alerting.render.charts import bar_chart

    assert_real_chart(bar_chart("t", [("a", 5_000_000_000), ("b", 1_000_000_000)]), DIGEST_SIZE_PX)


async def test_weekly_report_by_email_with_chart_and_slack_summary_once(client: Any) -> None:
    report = build_report(run_of(client), span_of("week", NOW, "UTC", complete=True), SETTINGS)
    message = report_message(report)
    with SmtpServer() as smtp, SlackServer().running_in_thread() as slack:
        cfg = AlertingSettings.from_config(
            {
                "receivers": [
                    {"name": "slack", "type": "slack", "webhook_url": slack.webhook_url()},
                    {
                        "name": "mail",
                        "type": "email",
                        "to": ["finance@example.com"],
                        "from": "spendwatch@example.com",
                        "smtp_host": smtp.host,
                        "smtp_port": smtp.port,
                    },
                ]
            }
        )
        d = AlertDispatcher(cfg, build_notifiers(cfg), MemoryDeliveryLog())
        await d.send_report(message, ["mail", "slack"], NOW)
        await d.send_report(message, ["mail", "slack"], NOW + timedelta(minutes=1))  # once
        await d.close()
    [mail] = smtp.messages
    m = mail.message
    assert m["Subject"] == message.subject
    assert m.get_content_type() == "multipart/alternative"
    html_part = m.get_payload()[1]
    assert html_part.get_content_type() == "multipart/related"
    [image] = [p for p in m.walk() if p.get_content_type() == "image/png"]
    assert image["Content-ID"] == f"<{message.chart_cid}>"
    assert f'src="cid:{message.chart_cid}"' in mail.html
    assert_real_chart(image.get_content(), SIZE_PX)
    assert mail.text == message.text
    [post] = slack.requests
    assert post.blocks[0]["text"]["text"] == message.summary
    assert message.summary.startswith("*spendwatch weekly report: week 47 of 2026 (Nov 16)*")


async def test_digest_email_gains_the_chart() -> None:
    from tests.unit.alerting.test_digest import SUMMARY

    with SmtpServer() as smtp:
        cfg = AlertingSettings.from_config(
            {
                "receivers": [
                    {
                        "name": "mail",
                        "type": "email",
                        "to": ["finance@example.com"],
                        "from": "spendwatch@example.com",
                        "smtp_host": smtp.host,
                        "smtp_port": smtp.port,
                    }
                ]
            }
        )
        d = AlertDispatcher(cfg, build_notifiers(cfg), MemoryDeliveryLog())
        await d.send_digest(SUMMARY, datetime(2025, 3, 15, 8, tzinfo=UTC))
        await d.close()
    [mail] = smtp.messages
    [image] = [p for p in mail.message.walk() if p.get_content_type() == "image/png"]
    assert f'src="cid:{image["Content-ID"].strip("<>")}"' in mail.html
    assert_real_chart(image.get_content(), DIGEST_SIZE_PX)


async def test_schedule_sends_weekly_on_monday_after_at_and_monthly_on_the_first(
    client: Any,
) -> None:
    recorder = RecordingNotifier("finance")
    cfg = AlertingSettings.from_config({"receivers": [{"name": "finance", "type": "console"}]})
    dispatcher = AlertDispatcher(cfg, {"finance": recorder}, MemoryDeliveryLog())
    ready = SimpleNamespace(is_set=lambda: True)
    runtime = SimpleNamespace(ready=ready, dispatcher=dispatcher, query_client=client)
    settings = SimpleNamespace(
        report=SETTINGS.model_copy(update={"at": time(8, 0)}), budgets=BUDGETS
    )
    schedule = ReportSchedule(settings, runtime)
    monday = datetime(2026, 11, 30, tzinfo=UTC)
    assert await schedule.run_once(monday + timedelta(hours=7, minutes=59)) == []
    assert await schedule.run_once(monday + timedelta(hours=8, minutes=1)) == ["week:2026-11-23"]
    assert await schedule.run_once(monday + timedelta(hours=9)) == []  # sent already
    first = datetime(2026, 12, 1, 8, 1, tzinfo=UTC)
    assert await schedule.run_once(first) == ["month:2026-11-01"]
    await dispatcher.close()
    keys = [m.report.key for m in recorder.sent if m.report is not None]
    assert keys == ["week:2026-11-23", "month:2026-11-01"]


def test_cli_prints_the_day(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    ts = max(now - timedelta(seconds=30), now.replace(hour=0, minute=0, second=0))
    path = tmp_path / "cli-chdb"
    with chdb_client(path) as c:
        write(c, [(e, ts) for e in EVENTS])
    total = sum(e.cost_nusd for e in EVENTS)
    config = tmp_path / "spendwatch.toml"
    config.write_text(
        f'[clickhouse]\ndsn = "chdb://{path}"\n[worker]\nhttp_port = 1\n'
        f'[report]\nunit_tags = ["lead"]\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPENDWATCH_")}
    out = subprocess.run(
        [sys.executable, "-m", "streams.cli", "report", "--period", "day", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"spendwatch daily report: {ts:%Y-%m-%d} (so far)"
    assert lines[3].startswith(f"{usd(total)} spent over {len(EVENTS)} calls (new against ")
    assert re.search(rf"^  research +{re.escape(usd(2_333_333_333))} ", out.stdout, re.M)
    png = tmp_path / f"{uuid.uuid4().hex}.png"
    out = subprocess.run(
        [sys.executable, "-m", "streams.cli", "report", "--period", "day", "--format", "png",
         "--output", str(png), "--config", str(config)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert_real_chart(png.read_bytes(), SIZE_PX)
