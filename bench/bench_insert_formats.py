"""What one ``usage_events`` row costs ClickHouse (embedded chDB) to take, by input format.

    .venv/bin/python bench/bench_insert_formats.py [--events 80000] [--repeats 2]

The rows are the hot path's own (the realistic mix of bench_pipeline.py, built by
``BatchBuilder`` in batches of 20,000), as JSONEachRow lines (``Rows.body``) and as the
worker's own Arrow blocks (``streams.hot.arrow.usage_block``, what the hot path inserts).
ClickHouse then exports the same rows in other formats, and each set of blocks is inserted
into a fresh database with the rollup views and the worker's insert settings: process CPU
(all of chDB's threads) and wall time per row. Also: the JSONEachRow blocks with the settings
the worker used before (insert-time collapse and parallel parsing on). Reference in the same
run: ``orjson.loads`` of the same events. It measures ClickHouse's side only: building a
block from Python objects costs the worker its own time (see bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from bench.bench_drain import BUDGETS, machine, sdk_events  # noqa: E402
from bench.bench_hot_path import PRICES  # noqa: E402
from sinks.client import make_client  # noqa: E402
from sinks.migrate import migrate  # noqa: E402
from sinks.settings import ClickHouseSettings  # noqa: E402
from streams.config import load_settings  # noqa: E402
from streams.hot.arrow import FORMAT as ARROW_STREAM  # noqa: E402
from streams.hot.arrow import usage_block  # noqa: E402
from streams.hot.batch import BatchBuilder  # noqa: E402
from streams.hot.dedupe import StoredIds  # noqa: E402
from streams.hot.writer import INSERT_SETTINGS  # noqa: E402
from streams.pricing import Pricer  # noqa: E402

BLOCK = 20_000
FORMATS = ("JSONEachRow", "JSONCompactEachRow", "TabSeparated", "RowBinary", "Arrow", "Native")
BEFORE = {**INSERT_SETTINGS, "optimize_on_insert": 1, "input_format_parallel_parsing": 1}


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def json_blocks(n: int) -> tuple[list[bytes], float]:
    """The hot path's JSONEachRow blocks for ``n`` events; orjson.loads µs/event."""
    settings = load_settings(text=PRICES + BUDGETS)
    raw = sdk_events(n)
    records = [
        SimpleNamespace(topic="usage", partition=i % 2, offset=i // 2, key=k, value=v)
        for i, (k, v) in enumerate(raw)
    ]
    now_us = time.time_ns() // 1000
    builder = BatchBuilder(
        pricer=Pricer(settings.prices),
        budgets=list(settings.budgets),
        stored=StoredIds(window_s=3600, max_ids=1_000_000, skew_s=300),
        detect=None,
        ttl_days=90,
    )
    builder.epoch = "bench"
    for partition in (0, 1):
        builder.stored.reset(partition, now_us - 3_600_000_000, [])
    blocks = []
    for i in range(0, n, BLOCK):
        batch = builder.build(builder.decode(records[i : i + BLOCK]), now_us)
        rows = batch.rows
        blocks.append(b"\n".join(rows.body(j) for j in range(len(rows))))
        WORKER_ARROW.append(usage_block(rows, range(len(rows))))
    started = time.thread_time()
    for _, value in raw:
        orjson.loads(value)
    return blocks, (time.thread_time() - started) * 1e6 / n


def insert(
    blocks: list[bytes],
    fmt: str,
    settings: dict[str, object],
    n: int,
    columns: list[str] | None = None,
) -> tuple[float, float]:
    """(CPU µs, wall µs) per row to insert ``blocks`` into a fresh database."""
    with tempfile.TemporaryDirectory() as tmp:
        ch = ClickHouseSettings(dsn=f"chdb://{tmp}/chdb")
        client = make_client(ch)
        migrate(client, ch)
        if columns is None and fmt != "JSONEachRow":
            columns = COLUMNS
        cpu0, wall0 = cpu_s(), time.perf_counter()
        for i, block in enumerate(blocks):
            client.raw_insert(
                "usage_events",
                columns,
                block,
                fmt=fmt,
                settings={**settings, "insert_deduplication_token": f"b{i}"},
            )
        cpu, wall = cpu_s() - cpu0, time.perf_counter() - wall0
        stored = int(client.query("SELECT count() FROM usage_events").result_rows[0][0])
        client.close()
    assert stored == n, (fmt, stored)
    return cpu * 1e6 / n, wall * 1e6 / n


COLUMNS: list[str] = []
# The hot path's own blocks: (column names, ArrowStream bytes), built from the same rows.
WORKER_ARROW: list[tuple[list[str], bytes]] = []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=80_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    n = args.events
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC")
    blocks, ref_us = json_blocks(n)
    with tempfile.TemporaryDirectory() as tmp:
        ch = ClickHouseSettings(dsn=f"chdb://{tmp}/chdb")
        client = make_client(ch)
        migrate(client, ch)
        for block in blocks:
            client.raw_insert("usage_events", None, block, fmt="JSONEachRow")
        COLUMNS.extend(  # all but the two USD columns ClickHouse computes
            name
            for (name,) in client.query(
                "SELECT name FROM system.columns WHERE database = currentDatabase() "
                "AND table = 'usage_events' ORDER BY position"
            ).result_rows
            if name not in ("cost_usd", "avoided_cost_usd")
        )
        cols = ", ".join(COLUMNS)
        exported = {
            fmt: [
                client.raw_query(
                    f"SELECT {cols} FROM usage_events ORDER BY kafka_offset, kafka_partition "
                    f"LIMIT {BLOCK} OFFSET {i}",
                    fmt=fmt,
                )
                for i in range(0, n, BLOCK)
            ]
            for fmt in FORMATS
            if fmt != "JSONEachRow"
        }
        client.close()
    exported["JSONEachRow"] = blocks
    runs: dict[str, list[tuple[float, float]]] = {}
    for _ in range(args.repeats):
        runs.setdefault("JSONEachRow, settings before", []).append(
            insert(blocks, "JSONEachRow", BEFORE, n)
        )
        for fmt in FORMATS:
            runs.setdefault(fmt, []).append(insert(exported[fmt], fmt, INSERT_SETTINGS, n))
        runs.setdefault("the worker's own Arrow blocks", []).append(
            insert(
                [b for _, b in WORKER_ARROW], ARROW_STREAM, INSERT_SETTINGS, n, WORKER_ARROW[0][0]
            )
        )
    print(f"rows: {n:,} in blocks of {BLOCK:,}; reference orjson.loads {ref_us:.2f} µs/event")
    print("| format | bytes/row | ClickHouse CPU µs/row (x orjson.loads) | wall µs/row |")
    print("| --- | ---: | --- | --- |")
    for name, results in runs.items():
        fmt = name.split(",")[0]
        sent = [b for _, b in WORKER_ARROW] if fmt not in exported else exported[fmt]
        size = sum(map(len, sent)) / n
        cpu = " / ".join(f"{c:.2f} ({c / ref_us:.2f})" for c, _ in results)
        wall = " / ".join(f"{w:.2f}" for _, w in results)
        print(f"| {name} | {size:.0f} | {cpu} | {wall} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
