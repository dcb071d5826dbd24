"""What one console refresh and one report cost on embedded chDB, against a plain full-table
sum in the same run (the reference). Prints figures and the machine; not a test.

    .venv/bin/python bench/bench_console.py [--events 200000] [--repeat 5]

Events spread over this month (a quarter of them today, across 40 services, 12 models and
tags), inserted through the real schema (the rollups fill by materialized view). Timed
(median of ``--repeat``): ``reference`` = ``SELECT sum(cost_nusd) FROM usage_events``;
``console`` = ``build_figures`` (every query of one console refresh); ``report day/week/month``
= ``build_report`` for the period so far. The console runs at most once per ``refresh_s``
however many viewers, and only while someone watches.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sinks.client import make_client
from sinks.migrate import migrate
from sinks.rows import USAGE_EVENTS, usage_row
from sinks.settings import ClickHouseSettings
from streams.console.snapshot import build_figures
from streams.report.build import build_report
from streams.report.periods import span_of
from streams.report.settings import ReportSettings

MODELS = ("gpt-4o", "gpt-4o-mini", "o3-mini", "claude-sonnet-4-5", "claude-3-5-haiku-latest")


def rows(n: int, now: datetime, seed: int = 7) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    for i in range(n):
        start = day if i % 4 == 0 else month
        ts = start + (now - start) * rng.random()
        out.append(
            usage_row(
                {
                    "event_id": str(uuid.uuid4()),
                    "ts": ts.isoformat(),
                    "service": f"svc-{rng.randint(1, 40)}",
                    "operation": "chat",
                    "status": "error" if rng.random() < 0.03 else "ok",
                    "provider": "openai",
                    "model": MODELS[rng.randrange(len(MODELS))],
                    "input_tokens": 1000,
                    "output_tokens": 100,
                    "cache_hit": rng.random() < 0.1,
                    "tags": {"team": f"t{rng.randint(1, 8)}", "lead": f"L{rng.randint(1, 5000)}"},
                    "cost_nusd": rng.randint(1_000, 50_000_000),
                    "cost_source": "catalog",
                }
            )
        )
    return out


def timed(fn: Any, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        settings = ClickHouseSettings(dsn=f"chdb://{tmp}/chdb")
        client = make_client(settings)
        migrate(client, settings)
        data = rows(args.events, now)
        for i in range(0, len(data), 10_000):
            client.insert("usage_events", data[i : i + 10_000], column_names=USAGE_EVENTS.columns)
        reader = make_client(settings, read_only=True)

        def run(sql: str) -> list[list[Any]]:
            return [list(r) for r in reader.query(sql).result_rows]

        report = ReportSettings(unit_tags=("lead",), tiers={"small": ("*mini*", "*haiku*")})
        ref = timed(lambda: run("SELECT sum(cost_nusd) FROM usage_events"), args.repeat)
        results = {"reference (full-table sum)": ref}
        results["console refresh"] = timed(
            lambda: build_figures(run, datetime.now(UTC), "team", report), args.repeat
        )
        for period in ("day", "week", "month"):
            span = span_of(period, datetime.now(UTC), "UTC", complete=False)  # type: ignore[arg-type]
            results[f"report {period}"] = timed(
                lambda span=span: build_report(run, span, report), args.repeat
            )
        reader.close()
        client.close()
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"{args.events:,} events this month (a quarter today); median of {args.repeat}")
    for name, ms in results.items():
        print(f"  {name:28s} {ms:8.1f} ms   x{ms / ref:5.1f} reference")


if __name__ == "__main__":
    main()
