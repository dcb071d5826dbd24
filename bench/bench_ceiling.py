"""What bounds the drain: the least a worker must do per event, against the raw consume rate.

    .venv/bin/python bench/bench_ceiling.py [--events 200000]

On one embedded Tansu broker, over the same topic of SDK-shaped events (bench_drain.py's mix),
in one run:

1. reference: bare aiokafka ``getmany`` + ``orjson.loads`` (bench_drain.py's reference);
2. ``getmany`` + the contract's msgspec decode + the row splice of the hot path, committing
   each batch - no ClickHouse;
3. the same with each batch inserted into chDB (``usage_events`` with its rollup views) in a
   thread, overlapping the next batch, as JSONEachRow lines;
4. the same as the worker stores rows today: the decoded events as the hot path's Arrow block
   (``streams.hot.arrow.usage_block``, built on the loop's thread), inserted in a thread.

Everything the worker does beyond (3) or (4) - validation, dedupe, pricing, detector minutes, budget
deltas - comes on top. Prints events/s and ratios; not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer  # noqa: E402

from bench.bench_drain import machine, produce, raw_rate, sdk_events  # noqa: E402
from schemas.events import _DECODER  # noqa: E402
from sinks.client import make_client  # noqa: E402
from sinks.migrate import migrate  # noqa: E402
from sinks.settings import ClickHouseSettings  # noqa: E402
from streams import topics  # noqa: E402
from streams.broker import TansuBroker, create_topics  # noqa: E402
from streams.hot.arrow import FORMAT, usage_block  # noqa: E402
from streams.hot.batch import Rows  # noqa: E402
from streams.hot.writer import INSERT_SETTINGS  # noqa: E402


async def minimal(bootstrap: str, n: int, client: Any | None, arrow: bool = False) -> float:
    consumer = AIOKafkaConsumer(
        topics.USAGE,
        bootstrap_servers=bootstrap,
        group_id="ceiling-" + uuid.uuid4().hex,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 << 20,
        fetch_max_bytes=32 << 20,
    )
    await consumer.start()
    seen, started, inflight = 0, None, None
    decode = _DECODER.decode
    try:
        while seen < n:
            got = await consumer.getmany(timeout_ms=500, max_records=20000)
            if not got:
                continue
            if started is None:
                started = time.perf_counter()
            rows = []
            block = Rows(epoch="ceiling", ingested_us=time.time_ns() // 1000)
            for records in got.values():
                for r in records:
                    event = decode(r.value)
                    if arrow:
                        block.events.append(event)
                        block.costs.append(1)
                        block.partitions.append(r.partition)
                        block.offsets.append(r.offset)
                        block.keys.append(0)
                        block.ts_us.append(block.ingested_us)
                        seen += 1
                        continue
                    rows.append(
                        b"".join(
                            (
                                r.value[:-1],
                                b',"cost_source":"catalog","cost_nusd":1,"kafka_offset":',
                                str(r.offset).encode(),
                                b"}",
                            )
                        )
                    )
                    seen += 1
            if inflight is not None:
                await inflight
            if client is not None and arrow:
                columns, body = usage_block(block, range(len(block)))
                inflight = asyncio.ensure_future(
                    asyncio.to_thread(
                        client.raw_insert,
                        "usage_events",
                        columns,
                        insert_block=body,
                        fmt=FORMAT,
                        settings=INSERT_SETTINGS,
                    )
                )
            elif client is not None:
                body = b"\n".join(rows)
                inflight = asyncio.ensure_future(
                    asyncio.to_thread(
                        client.raw_insert,
                        "usage_events",
                        None,
                        insert_block=body,
                        fmt="JSONEachRow",
                        settings=INSERT_SETTINGS,
                    )
                )
            await consumer.commit()
        if inflight is not None:
            await inflight
    finally:
        await consumer.stop()
    assert started is not None
    return n / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    n = args.events
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp, TansuBroker() as broker:
        bootstrap = broker.bootstrap_servers
        asyncio.run(create_topics(bootstrap, [topics.USAGE], 2))
        asyncio.run(produce(bootstrap, sdk_events(n)))
        settings = ClickHouseSettings(dsn=f"chdb://{tmp}/chdb")
        client = make_client(settings)
        migrate(client, settings)
        raw = asyncio.run(raw_rate(bootstrap, n))
        decoded = asyncio.run(minimal(bootstrap, n, None))
        inserted = asyncio.run(minimal(bootstrap, n, client))
        arrowed = asyncio.run(minimal(bootstrap, n, client, arrow=True))
        client.close()
    print(f"reference, bare getmany + orjson.loads: {raw:,.0f} events/s")
    print(
        f"getmany + msgspec decode + row splice:  {decoded:,.0f} events/s = {decoded / raw:.2f} x"
    )
    print(
        f"  + chDB insert (rollup views), overlapped: {inserted:,.0f} events/s = "
        f"{inserted / raw:.2f} x"
    )
    print(
        f"  + the worker's Arrow block and chDB insert instead: {arrowed:,.0f} events/s = "
        f"{arrowed / raw:.2f} x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
