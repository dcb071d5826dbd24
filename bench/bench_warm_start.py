"""Detector warm start: reading seven days of minute rollups back from embedded chDB.

Prints figures and the machine; not a test.

    .venv/bin/python bench/bench_warm_start.py [--services 10,50] [--models 3]

Per service count, into a fresh chDB path: every minute of the detector's history
(``history_min``, 7 days + 6 minutes) for every service and model is written straight into
``spend_by_minute`` (the rollup the worker reads; no raw events needed), then:
* ``read``  - ``read_history`` as the worker runs it at start-up (in a thread): the per-minute
              query, the provider split of the last hour, numpy arrays per service;
* ``held``  - memory the loaded history holds until each service is seeded (tracemalloc);
* ``seed``  - ``SpikeMonitor.seed_history`` of one service's minutes (what the first live
              minute of each service triggers, on the event loop), per service; and the
              bucket-by-bucket ``seed`` it replaces, for comparison.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

from sinks.client import make_client
from sinks.migrate import migrate
from sinks.settings import ClickHouseSettings
from streams.detect import DetectSettings, DetectStream, minute_index, minute_start
from streams.detect.history import read_history

COLUMNS = ("minute", "service", "provider", "model", "events", "errors", "input_tokens",
           "output_tokens", "cost_nusd")  # fmt: skip


def fill(client: object, services: int, models: int, first: int, end: int) -> int:
    rng = np.random.default_rng(7)
    n = end - first
    rows = 0
    for s in range(services):
        for k in range(models):
            events = rng.integers(5, 30, n)
            tokens = events * 1_000
            data = [
                [minute_start(first + i) for i in range(n)],
                [f"svc-{s}"] * n,
                ["openai"] * n,
                [f"model-{k}"] * n,
                events.tolist(),
                (events // 20).tolist(),
                tokens.tolist(),
                (tokens // 4).tolist(),
                (tokens * (150, 2_500, 12_500)[k % 3]).tolist(),
            ]
            client.insert("spend_by_minute", data, column_names=COLUMNS, column_oriented=True)  # type: ignore[attr-defined]
            rows += n
    return rows


def run(services: int, models: int) -> None:
    settings = DetectSettings()
    now = datetime.now(UTC)
    first, end = minute_index(now) - settings.history_min, minute_index(now)
    with tempfile.TemporaryDirectory() as tmp:
        ch = ClickHouseSettings(dsn=f"chdb://{Path(tmp) / 'chdb'}")
        writer = make_client(ch)
        migrate(writer, ch)
        rows = fill(writer, services, models, first, end)
        reader = make_client(ch, read_only=True)
        tracemalloc.start()
        started = time.perf_counter()
        history = read_history(reader.query_np, settings, now)
        read_s = time.perf_counter() - started
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        monitor = DetectStream(settings).monitor
        started = time.perf_counter()
        for name in sorted(history):  # what each service's first live minute triggers
            monitor.seed_history(name, history[name], before=end)
        seed_s = time.perf_counter() - started
        one = DetectStream(settings).monitor
        name = min(history)
        started = time.perf_counter()
        one.seed(history[name].buckets(name, before=end))
        one_s = time.perf_counter() - started
        minutes = sum(len(h) for h in history.values())
        print(
            f"{services:>4} services x {models} models: {rows:,} rollup rows -> {minutes:,} "
            f"service-minutes; read {read_s:.2f} s; held {held / 1e6:.1f} MB "
            f"(peak {peak / 1e6:.1f} MB); seed {seed_s / services * 1000:.1f} ms/service "
            f"(bucket by bucket: {one_s * 1000:.0f} ms)"
        )
        reader.close()
        writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", default="10,50")
    parser.add_argument("--models", type=int, default=3)
    args = parser.parse_args()
    print(
        f"{platform.platform()}, {platform.python_version()}, "
        f"chdb {metadata.version('chdb')}, numpy {np.__version__}"
    )
    for services in (int(s) for s in args.services.split(",")):
        run(services, args.models)


if __name__ == "__main__":
    main()
