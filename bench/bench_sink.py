"""ClickHouse sink throughput into embedded chDB for batches of 1k / 5k / 10k rows.

Prints figures and the machine; not a test.

    .venv/bin/python bench/bench_sink.py [--rows 50000] [--batches 1000,5000,10000]

Per batch size, into a fresh database on a fresh chDB path:
* ``convert``  - ``usage_row`` on priced-event dicts (pure Python, no I/O);
* ``sink``     - ``ClickHouseSink`` for ``usage_events`` as the worker runs it: add + flush,
                 in-batch dedupe, the "already written?" lookup per batch, insert in a thread;
* ``no-dedupe``- the same sink without the lookup (the cost of replay safety);
* ``replay``   - every row again through a new sink (all found already written, none inserted);
* ``loop lag`` - worst delay of a 1 ms ticker on the event loop during the ``sink`` run
                 (inserts run in a thread; chDB releases the GIL while it works, the Python
                 side of the insert - pivot, Native encoding - holds it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from importlib import metadata
from typing import Any

from sinks.clickhouse import ClickHouseSink
from sinks.client import make_client
from sinks.migrate import migrate
from sinks.rows import USAGE_COLUMNS, USAGE_EVENTS, usage_row
from sinks.settings import ClickHouseSettings


def events(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    base = datetime.now(UTC) - timedelta(days=1)
    out = []
    for i in range(n):
        ts = base + timedelta(milliseconds=rng.randrange(86_400_000))
        out.append(
            {
                "schema_version": 1,
                "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "ts": ts.isoformat(),
                "service": f"svc-{i % 20}",
                "operation": "chat",
                "status": "ok",
                "provider": "openai",
                "model": ("gpt-4o", "gpt-4o-mini", "o3-mini")[i % 3],
                "input_tokens": rng.randrange(50_000),
                "output_tokens": rng.randrange(4_000),
                "cache_read_tokens": 0,
                "cost_nusd": rng.randrange(10**9),
                "cost_source": "catalog",
                "tags": {"team": f"t{i % 7}", "feature": "search"},
                "ingested_at": (ts + timedelta(seconds=1)).isoformat(),
                "latency_ms": 350.0,
            }
        )
    return out


async def write(sink: ClickHouseSink, rows: list[tuple[Any, ...]]) -> tuple[float, float]:
    """Seconds to add + flush all rows, and the worst event-loop lag meanwhile."""
    worst = 0.0
    running = True

    async def ticker() -> None:
        nonlocal worst
        while running:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - start - 0.001)

    tick = asyncio.create_task(ticker())
    start = time.perf_counter()
    for i, row in enumerate(rows):
        await sink.add(row)
        if i % 200 == 0:
            await asyncio.sleep(0)  # like a consumer between fetches: let the ticker run
    await sink.flush()
    elapsed = time.perf_counter() - start
    running = False
    await tick
    await sink.close()
    return elapsed, worst


async def bench(batch_rows: int, n: int, path: str) -> dict[str, float]:
    settings = ClickHouseSettings(
        dsn=f"chdb://{path}", database=f"bench_{batch_rows}", batch_rows=batch_rows
    )
    client = make_client(settings)
    migrate(client, settings)
    data = events(n, seed=batch_rows)
    start = time.perf_counter()
    rows = [usage_row(e) for e in data]
    convert_s = time.perf_counter() - start

    sink = ClickHouseSink.for_table(client, USAGE_EVENTS, settings)
    sink_s, lag_s = await write(sink, rows)
    replay = ClickHouseSink.for_table(client, USAGE_EVENTS, settings)
    replay_s, _ = await write(replay, rows)
    assert replay.stats.rows_written == 0

    client.command("TRUNCATE TABLE usage_events")
    plain = ClickHouseSink(client, "usage_events", USAGE_COLUMNS, batch_rows=batch_rows)
    plain_s, _ = await write(plain, rows)
    count = client.query("SELECT count() FROM usage_events").result_rows[0][0]
    assert count == n, count
    client.command(f"DROP DATABASE `{settings.database}`")
    client.close()
    return {
        "convert": n / convert_s,
        "sink": n / sink_s,
        "no-dedupe": n / plain_s,
        "replay": n / replay_s,
        "lag_ms": lag_s * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--batches", default="1000,5000,10000")
    args = parser.parse_args()
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        f", chdb {metadata.version('chdb')}, clickhouse-connect "
        f"{metadata.version('clickhouse-connect')}"
    )
    print(f"rows per run: {args.rows:,}")
    print(
        f"{'batch':>7} {'convert rows/s':>15} {'sink rows/s':>12} {'no-dedupe rows/s':>17}"
        f" {'replay rows/s':>14} {'loop lag ms':>12}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (int(b) for b in args.batches.split(",")):
            r = asyncio.run(bench(batch, args.rows, os.path.join(tmp, "chdb")))
            print(
                f"{batch:>7,} {r['convert']:>15,.0f} {r['sink']:>12,.0f} {r['no-dedupe']:>17,.0f}"
                f" {r['replay']:>14,.0f} {r['lag_ms']:>12.1f}"
            )


if __name__ == "__main__":
    main()
