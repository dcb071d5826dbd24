"""The hot path's cost per event, stage by stage, in one process (no broker).

    .venv/bin/python bench/bench_hot_path.py [--events 100000] [--batch 5000] [--profile]

The realistic mix of bench_pipeline.py, SDK-shaped, run through the worker's own code in
batches: decode + validate, the whole batch build (dedupe, price, rows, detector, deltas),
the ClickHouse write (embedded chDB, JSONEachRow), and the ledger (``apply_delta``). Pricing
and the detector are also timed alone over the same events. Reference in the same run:
``orjson.loads`` of the same bytes (what the raw consume rate pays per event). CPU time of
this thread (``time.thread_time``), so other load on the machine matters less.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from bench.bench_drain import BUDGETS, sdk_events  # noqa: E402
from schemas.events import decode_event  # noqa: E402
from sinks.client import make_client  # noqa: E402
from sinks.migrate import migrate  # noqa: E402
from sinks.settings import ClickHouseSettings  # noqa: E402
from streams.budgets import apply_delta, load_budgets  # noqa: E402
from streams.config import load_settings  # noqa: E402
from streams.detect import DetectStream  # noqa: E402
from streams.hot.batch import BatchBuilder  # noqa: E402
from streams.hot.dedupe import StoredIds  # noqa: E402
from streams.hot.writer import UsageWriter  # noqa: E402
from streams.pricing import Pricer  # noqa: E402

PRICES = """
[[prices]]
provider = "polygon"
unit = "request"
usd_per_unit = "0.004"

[[prices]]
provider = "twilio"
unit = "minute"
usd_per_unit = "0.014"
"""


def cpu(fn: object, *args: object) -> tuple[float, object]:
    started = time.thread_time()
    result = fn(*args)  # type: ignore[operator]
    return time.thread_time() - started, result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    n, size = args.events, args.batch
    settings = load_settings(text=PRICES + BUDGETS)
    budgets = list(settings.budgets)
    raw = sdk_events(n)
    records = [
        SimpleNamespace(topic="usage", partition=i % 2, offset=i // 2, key=k, value=v)
        for i, (k, v) in enumerate(raw)
    ]
    batches = [records[i : i + size] for i in range(0, n, size)]
    now_us = time.time_ns() // 1000

    t_ref, _ = cpu(lambda: [orjson.loads(r.value) for r in records])
    t_decode, decoded = cpu(lambda: [decode_event(r.value) for r in records])
    events = [d[0] for d in decoded if not hasattr(d, "code")]
    pricer = Pricer(settings.prices)
    t_price, _ = cpu(lambda: [pricer.price(e) for e in events])
    detect = DetectStream(settings.detect)
    t_detect, _ = cpu(
        lambda: [
            detect.minutes.add_event(
                0,
                e.service,
                now_us,
                1,
                1,
                e.model or e.unit or "",
                e.provider or "",
                False,
                None,
                e.tags or None,
            )
            for e in events
        ]
    )
    builder = BatchBuilder(
        pricer=Pricer(settings.prices),
        budgets=budgets,
        stored=StoredIds(window_s=3600, max_ids=1_000_000, skew_s=300),
        detect=DetectStream(settings.detect),
        ttl_days=90,
    )
    builder.epoch = "bench"
    for p in (0, 1):
        builder.stored.reset(p, now_us - 3_600_000_000, [])
    profile = cProfile.Profile() if args.profile else None
    built = []
    t_build = 0.0
    for chunk in batches:
        if profile:
            profile.enable()
        spent, batch = cpu(lambda c=chunk: builder.build(builder.decode(c), now_us))
        if profile:
            profile.disable()
        t_build += spent
        built.append(batch)
    with tempfile.TemporaryDirectory() as tmp:
        ch = ClickHouseSettings(dsn=f"chdb://{tmp}/chdb")
        client = make_client(ch)
        migrate(client, ch)
        writer = UsageWriter(client)

        async def write_all() -> float:
            total = 0.0
            for batch in built:
                started = time.perf_counter()
                await writer.write(batch)
                total += time.perf_counter() - started
            return total

        t_write_wall = asyncio.run(write_all())
        stored = int(client.query("SELECT count() FROM usage_events").result_rows[0][0])
        client.close()
    assert stored == n, stored
    by_name = {b.name: b for b in load_budgets([], "") or budgets}
    t_ledger = 0.0
    for name, budget in by_name.items():
        state = None
        for batch in built:
            for delta in batch.deltas[name].build("bench") if name in batch.deltas else []:
                spent, (state, _) = cpu(apply_delta, budget, state, delta)
                t_ledger += spent
    us = 1e6 / n
    print(f"events: {n:,} in batches of {size:,}")
    print(f"reference orjson.loads:          {t_ref * us:6.2f} µs/event")
    print(f"decode + validate (msgspec):     {t_decode * us:6.2f} µs/event")
    print(f"  price alone:                   {t_price * us:6.2f} µs/event")
    print(f"  detector minutes alone:        {t_detect * us:6.2f} µs/event")
    print(f"batch build (decode..deltas):    {t_build * us:6.2f} µs/event")
    print(f"ClickHouse write (chDB, wall):   {t_write_wall * us:6.2f} µs/event")
    print(f"ledgers (apply_delta, 2 budgets):{t_ledger * us:6.2f} µs/event")
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
