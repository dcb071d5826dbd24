"""``spendwatch report``: the day, week or month so far (or the last complete one, ``--last``)
against the previous one, from the running worker's SQL endpoint or, when none answers,
straight from ClickHouse (as ``spendwatch sql`` does).

    spendwatch report --period day                      # text on stdout
    spendwatch report --period week --format markdown
    spendwatch report --period month --last --format html --output month.html
    spendwatch report --period week --format png        # writes the chart, prints its path

Exit codes: 0 printed; 1 ClickHouse could not be read; 2 bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas.errors import ConfigError
from streams.report.periods import PERIODS, span_of

FORMATS = ("text", "markdown", "html", "png")
Run = Callable[[str], list[list[Any]]]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "report",
        help="spend report for a day, week or month against the previous one",
        description=(
            "Spend by service, model and tag against the previous period, top movers, budget "
            "use, cache savings, model tiers ([report.tiers]) and cost per unit "
            "([report] unit_tags). Reads the running worker's SQL endpoint, else ClickHouse."
        ),
    )
    parser.add_argument("--period", choices=PERIODS, default="day")
    parser.add_argument("--format", choices=FORMATS, default="text")
    parser.add_argument(
        "--last",
        action="store_true",
        help="the last complete period (default: the current one so far)",
    )
    parser.add_argument("--output", type=Path, default=None, help="write to this file")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config file (default: $SPENDWATCH_CONFIG or ./spendwatch.toml)",
    )
    parser.add_argument("--endpoint", default=None, help="worker SQL endpoint URL")
    parser.add_argument("--dsn", default=None, help="ClickHouse DSN for the direct path")
    parser.set_defaults(func=report_command)


def open_runner(settings: Any, endpoint: str) -> tuple[Run, Callable[[], None], str]:
    """``(run, close, via)``: the worker endpoint when it answers, else a read-only client."""
    from sinks.client import make_client
    from sinks.query import DEFAULT_MAX_ROWS
    from sinks.sql import EndpointUnreachableError, QueryFailedError, query_endpoint

    try:
        query_endpoint(endpoint, "SELECT 1", timeout_s=5.0)

        def via_endpoint(sql: str) -> list[list[Any]]:
            answer = query_endpoint(endpoint, sql, max_rows=DEFAULT_MAX_ROWS * 10)
            return answer.rows

        return via_endpoint, lambda: None, "endpoint"
    except EndpointUnreachableError:
        pass
    path = settings.clickhouse.chdb_path
    if path is not None and not path.exists():
        raise QueryFailedError(f"no chDB data at {path} (nothing written there yet? see --dsn)")
    client = make_client(settings.clickhouse, create_database=False, read_only=True)

    def direct(sql: str) -> list[list[Any]]:
        return [list(r) for r in client.query(sql).result_rows]

    return direct, client.close, "direct"


def _demo_config() -> Path | None:
    """``spendwatch up`` without a config runs on ``<state dir>/demo.toml``: so does the report
    then (its budget, tiers and unit tags), when no config is named and none is here."""
    import os

    from streams.config import DEFAULT_CONFIG, DEFAULT_STATE_DIR, ENV_CONFIG, ENV_STATE_DIR

    if os.environ.get(ENV_CONFIG) or DEFAULT_CONFIG.exists():
        return None
    demo = Path(os.environ.get(ENV_STATE_DIR) or DEFAULT_STATE_DIR) / "demo.toml"
    if not demo.exists():
        return None
    print(f"spendwatch report: no spendwatch.toml here: using {demo}", file=sys.stderr)
    return demo


def report_command(args: argparse.Namespace) -> int:
    import dataclasses

    from sinks.sql import resolve_endpoint
    from streams.config import load_settings
    from streams.report.build import build_report
    from streams.report.chart import report_chart
    from streams.report.render import render_html, render_markdown, render_text
    from streams.report.settings import ReportSettings

    try:
        settings = load_settings(args.config or _demo_config())
        if args.dsn:
            settings = dataclasses.replace(
                settings, clickhouse=dataclasses.replace(settings.clickhouse, dsn=args.dsn)
            )
    except ConfigError as exc:
        print(f"spendwatch report: configuration error: {exc}", file=sys.stderr)
        return 2
    report_settings = settings.report or ReportSettings()
    endpoint = resolve_endpoint(args.endpoint, settings.worker.http_host, settings.worker.http_port)
    span = span_of(args.period, datetime.now(UTC), report_settings.timezone, complete=args.last)
    try:
        run, close, _ = open_runner(settings, endpoint)
        try:
            report = build_report(run, span, report_settings, settings.budgets)
        finally:
            close()
    except Exception as exc:
        print(f"spendwatch report: cannot read ClickHouse: {exc}", file=sys.stderr)
        return 1
    if args.format == "png":
        target = args.output or Path(f"spendwatch-{span.key.replace(':', '-')}.png")
        target.write_bytes(report_chart(report))
        print(target)
        return 0
    if args.format == "html":
        text = render_html(report, chart_png=report_chart(report))
    elif args.format == "markdown":
        text = render_markdown(report)
    else:
        text = render_text(report)
    if args.output:
        args.output.write_text(text)
        print(args.output)
    else:
        sys.stdout.write(text)
    return 0
