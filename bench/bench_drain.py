"""Drain: how fast one worker empties a backlog, as a ratio of the raw consume rate.

    .venv/bin/python bench/bench_drain.py [--events 200000] [--partitions 2] [--two-workers]

In one run, on one embedded Tansu broker:

1. ``--events`` SDK-shaped usage events (the realistic mix of bench_pipeline.py: five LLM
   services and models, a third with cached tokens, one in ten a metered call) are produced
   to the usage topic, keyed by service.
2. Reference: a bare aiokafka ``getmany`` + ``orjson.loads`` loop drains the same topic (its
   own consumer group): events/s.
3. One worker (``spendwatch worker``, embedded chDB, two budgets: everything and one service)
   starts on the backlog. Timed from the ingest time of its first batch until every row is in
   ClickHouse *and* every budget status the worker publishes equals the ClickHouse ``FINAL``
   sum of its scope (the status topic is tailed from the start, so that moment is known to
   within one fetch; rows are polled on /health every 50 ms). Reported: events/s, the ratio
   to the reference, CPU of worker and broker, the hot path's stages per event.
4. ``--two-workers``: the same events again, on a fresh broker, to two workers in one group
   (each with its own chDB, since one chDB path belongs to one process) that joined before the
   events arrived: rows/s from the first row ingested to the last, and the ratio to one
   worker. Ledger equality needs one shared ClickHouse, so it is not checked here.

Prints the figures and the machine; not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from bench.bench_pipeline import mix_event  # noqa: E402
from streams import topics  # noqa: E402
from streams.broker import TansuBroker, create_topics  # noqa: E402
from tests.support.worker import WorkerProcess, running_worker  # noqa: E402

BUDGETS = """
[[budgets]]
name = "everything"
period = "day"
limit_usd = "1000000"

[[budgets]]
name = "support"
period = "day"
limit_usd = "1000000"
match = { service = "support-bot" }
"""
SCOPES = {"everything": "1", "support": "service = 'support-bot'"}


EXTRA = ""  # --detect-off (diagnosis: what detection costs in the drain)


def config(bootstrap: str, partitions: int, directory: Path) -> str:
    return (
        EXTRA
        + f"""
[kafka]
bootstrap_servers = "{bootstrap}"
partitions = {partitions}

[worker]
http_port = {{http_port}}
state_dir = "{directory / "state"}"
status_interval_s = 0.2

[clickhouse]
dsn = "chdb://{directory / "chdb"}"

[[prices]]
provider = "polygon"
unit = "request"
usd_per_unit = "0.004"

[[prices]]
provider = "twilio"
unit = "minute"
usd_per_unit = "0.014"
{BUDGETS}"""
    )


def sdk_events(n: int) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` as the SDK sends them: its field set and timestamp form."""
    rng = random.Random(20261123)
    now = time.time_ns()
    out = []
    for i in range(n):
        fields = mix_event(i, rng)
        service = fields.pop("service")
        ts = now - (n - i) * 1000
        secs, rest = divmod(ts, 1_000_000_000)
        event = {
            "schema_version": 1,
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{rest // 1000:06d}Z",
            "service": service,
            "operation": "chat",
            "status": "ok",
            **fields,
            "environment": "prod",
            "tags": {"team": "growth", "agent": f"agent-{i % 7}"},
        }
        out.append((service.encode(), orjson.dumps(event)))
    return out


async def produce(bootstrap: str, events: list[tuple[bytes, bytes]]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=256 * 1024
    )
    await producer.start()
    started = time.perf_counter()
    try:
        for key, value in events:
            await producer.send(topics.USAGE, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
    return len(events) / (time.perf_counter() - started)


async def raw_rate(bootstrap: str, n: int) -> float:
    """The reference: bare getmany + orjson.loads over the usage topic."""
    consumer = AIOKafkaConsumer(
        topics.USAGE,
        bootstrap_servers=bootstrap,
        group_id="raw-" + uuid.uuid4().hex,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
    )
    await consumer.start()
    seen, started = 0, None
    try:
        while seen < n:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for records in batch.values():
                if started is None:
                    started = time.perf_counter()
                for record in records:
                    orjson.loads(record.value)
                    seen += 1
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()
    assert started is not None
    return n / (time.perf_counter() - started)


class StatusTail:
    """Reads the budget-status topic as it is written, in a thread of its own, and keeps when
    each budget's published spend first reached each value: the moment the ledgers equalled
    ClickHouse is then known to within one fetch, not one poll of the topic."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.first_seen: dict[tuple[str, int], float] = {}  # (budget, spent) -> time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> StatusTail:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(
            topics.BUDGET_STATUS,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            metadata_max_age_ms=500,
        )
        await consumer.start()
        try:
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=50)
                now = time.time()
                for records in batch.values():
                    for r in records:
                        spent = orjson.loads(r.value)["spent_nusd"]
                        self.first_seen.setdefault((r.key.decode(), spent), now)
        finally:
            await consumer.stop()

    def equal_at(self, expected: dict[str, int]) -> float | None:
        """When every budget had published its expected spend (None: not yet)."""
        times = [self.first_seen.get(item) for item in expected.items()]
        return None if None in times else max(t for t in times if t is not None)


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def health(worker: WorkerProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"{worker.endpoint}/health", timeout=5) as response:
        result: dict[str, Any] = orjson.loads(response.read())
        return result


def drain_one(
    bootstrap: str, broker_pid: int, n: int, partitions: int, tmp: Path
) -> dict[str, Any]:
    with (
        StatusTail(bootstrap) as tail,
        running_worker(config(bootstrap, partitions, tmp), tmp, ready_timeout_s=120) as worker,
    ):
        pid = worker.process.pid
        cpu_worker, cpu_broker = cpu_s(pid), cpu_s(broker_pid)
        deadline = time.monotonic() + 600
        rows = 0
        while rows < n:  # /health, not SQL: a poll must not cost the worker a chDB query
            assert time.monotonic() < deadline, f"only {rows} rows after 600 s"
            time.sleep(0.05)
            rows = int(health(worker).get("hot_path", {}).get("rows", 0))
        t_rows = time.time()
        used_worker, used_broker = cpu_s(pid) - cpu_worker, cpu_s(broker_pid) - cpu_broker
        assert int(worker.scalar("SELECT count() FROM usage_events")) == n
        expected = {
            name: int(worker.scalar(f"SELECT sum(cost_nusd) FROM usage_events FINAL WHERE {w}"))
            for name, w in SCOPES.items()
        }
        while (t_done := tail.equal_at(expected)) is None:
            assert time.monotonic() < deadline, "ledgers never equalled ClickHouse"
            time.sleep(0.05)
        first_us = int(
            worker.scalar("SELECT toUnixTimestamp64Micro(min(ingested_at)) FROM usage_events")
        )
        last_us = int(
            worker.scalar("SELECT toUnixTimestamp64Micro(max(ingested_at)) FROM usage_events")
        )
        stats = health(worker).get("hot_path", {})
    wall = max(t_done, t_rows) - first_us / 1e6
    return {
        "rate": n / wall,
        "wall_s": wall,
        "rows_s": t_rows - first_us / 1e6,
        "ingest_span_s": (last_us - first_us) / 1e6,
        "ledger_lag_s": t_done - t_rows,
        "worker_cpu_us": used_worker * 1e6 / n,
        "broker_cpu_us": used_broker * 1e6 / n,
        "batches": stats.get("batches"),
        "stages_us": {k: v * 1e6 / n for k, v in (stats.get("seconds") or {}).items()},
        "expected": expected,
    }


def drain_two(
    bootstrap: str, events: list[tuple[bytes, bytes]], partitions: int, tmp: Path
) -> float:
    """Two workers join the group on an empty topic, then the backlog arrives."""
    n = len(events)
    with contextlib.ExitStack() as stack:
        workers = [
            stack.enter_context(
                running_worker(config(bootstrap, partitions, tmp / f"w{i}"), _mkdir(tmp / f"w{i}"))
            )
            for i in range(2)
        ]
        deadline = time.monotonic() + 120
        while not all(health(w).get("hot_path", {}).get("assigned") for w in workers):
            assert time.monotonic() < deadline, "the two workers never shared the partitions"
            time.sleep(0.5)
        asyncio.run(produce(bootstrap, events))
        deadline = time.monotonic() + 600
        while True:
            counts = [int(health(w).get("hot_path", {}).get("rows", 0)) for w in workers]
            if sum(counts) >= n:
                break
            assert time.monotonic() < deadline, f"only {counts} rows after 600 s"
            time.sleep(0.05)
        t_done = time.time()
        first_us = min(
            int(w.scalar("SELECT toUnixTimestamp64Micro(min(ingested_at)) FROM usage_events"))
            for w, c in zip(workers, counts, strict=True)
            if c
        )
        print(f"  rows per worker: {counts}")
    return n / (t_done - first_us / 1e6)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def machine() -> str:
    return (
        f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--two-workers", action="store_true")
    parser.add_argument("--detect-off", action="store_true")
    args = parser.parse_args()
    if args.detect_off:
        global EXTRA
        EXTRA = "[detect]\nenabled = false\n"
    n = args.events
    print(f"machine: {machine()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    events = sdk_events(n)
    print(f"events: {n:,}, {sum(len(v) for _, v in events) / n:.0f} B average")
    with tempfile.TemporaryDirectory() as tmp, TansuBroker() as broker:
        bootstrap = broker.bootstrap_servers
        asyncio.run(create_topics(bootstrap, [topics.USAGE], args.partitions))
        produced = asyncio.run(produce(bootstrap, events))
        raw = asyncio.run(raw_rate(bootstrap, n))
        assert broker.process is not None
        one = drain_one(bootstrap, broker.process.pid, n, args.partitions, Path(tmp))
    print(f"produce (aiokafka): {produced:,.0f} events/s")
    print(f"reference, bare getmany + orjson.loads: {raw:,.0f} events/s")
    print(
        f"one worker: {one['rate']:,.0f} events/s = {one['rate'] / raw:.3f} x the reference "
        f"(first batch -> rows and ledgers exact: {one['wall_s']:.2f} s; rows stored after "
        f"{one['rows_s']:.2f} s, ledgers equal {one['ledger_lag_s']:.2f} s later; "
        f"{one['batches']} batches)"
    )
    print(
        f"  CPU per event: worker {one['worker_cpu_us']:.1f} µs, broker "
        f"{one['broker_cpu_us']:.1f} µs; ledgers {one['expected']}"
    )
    stages = ", ".join(f"{k} {v:.1f}" for k, v in one["stages_us"].items())
    print(f"  hot path per event (µs; decode/build CPU, write/send/commit wall): {stages}")
    if args.two_workers:
        with tempfile.TemporaryDirectory() as tmp, TansuBroker() as broker:
            bootstrap = broker.bootstrap_servers
            asyncio.run(create_topics(bootstrap, [topics.USAGE], args.partitions))
            two = drain_two(bootstrap, events, args.partitions, Path(tmp))
        print(f"two workers: {two:,.0f} events/s = {two / one['rate']:.2f} x one worker")
    return 0


if __name__ == "__main__":
    sys.exit(main())
