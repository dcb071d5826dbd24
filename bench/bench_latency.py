"""Latency at a steady rate through the whole pipeline: SDK -> Tansu -> worker -> chDB / Slack.

    .venv/bin/python bench/bench_latency.py [--rate 5000] [--seconds 30] [--crossings 40]

One worker (``spendwatch worker``, embedded chDB, two partitions) takes ``--rate`` events a
second of the realistic mix (bench_pipeline.py), recorded through the SDK in 5 ms ticks, for
``--seconds``. Measured, each as p50 / p95 / p99 / max:

* **queryable**: event ``ts`` (set at ``record``) -> the row is visible through the worker's
  SQL endpoint, for 20 probe events a second found by polling every 100 ms (the poll period
  bounds the resolution from above);
* **ts -> ingested_at**: for every event, from SQL (when the hot path built its row);
* **budget crossing -> Slack**: ``--crossings`` budgets, each over its own service with a
  single 100 % threshold, each crossed by one known call spread over the run (further apart
  than Slack's one message a second per channel, which the notifier honours); from that
  call's ``ts`` to the loopback Slack webhook receiving the alert, and to the alert's
  ``recorded_at`` in ClickHouse.

Reference in the same run: the broker round trip of one record (produce -> a consumer's
fetch) on the same broker while the load runs. Prints the figures and the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import spendwatch  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from bench.bench_drain import machine  # noqa: E402
from bench.bench_pipeline import mix_event  # noqa: E402
from streams.broker import TansuBroker, create_topics  # noqa: E402
from tests.support.slack_server import SlackServer  # noqa: E402
from tests.support.worker import WorkerProcess, running_worker  # noqa: E402

PROBES_PER_S = 20


def config(bootstrap: str, tmp: Path, slack_url: str, crossings: int) -> str:
    budgets = "".join(
        f"""
[[budgets]]
name = "cross-{i}"
limit_usd = "0.004"
thresholds = [1.0]
match = {{ service = "cross-{i}" }}
"""
        for i in range(crossings)
    )
    return f"""
[kafka]
bootstrap_servers = "{bootstrap}"
partitions = 2

[worker]
http_port = {{http_port}}
state_dir = "{tmp / "state"}"

[clickhouse]
dsn = "chdb://{tmp / "chdb"}"

[[prices]]
provider = "polygon"
unit = "request"
usd_per_unit = "0.004"

[[prices]]
provider = "twilio"
unit = "minute"
usd_per_unit = "0.014"

[[budgets]]
name = "everything"
limit_usd = "1000000"
{budgets}
[alerting]
group_wait_s = 0
group_by = ["alert_id"]

[[alerting.receivers]]
name = "oncall"
type = "slack"
webhook_url = "{slack_url}"
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def quad(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (
        f"{pct(values, 0.5):,.0f} / {pct(values, 0.95):,.0f} / {pct(values, 0.99):,.0f} / "
        f"{max(values):,.0f} ms (n={len(values)})"
    )


class Poller:
    """Polls the SQL endpoint for probe rows; notes when each was first seen."""

    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()

    def run(self) -> None:
        sql = "SELECT tags['probe'] FROM usage_events WHERE service = 'latency-probe'"
        while not self._stop.is_set():
            started = time.monotonic()
            with contextlib.suppress(OSError):
                rows = self.worker.query(sql)
                now = time.time()
                for (key,) in rows:
                    self.seen.setdefault(int(key), now)
            self._stop.wait(max(0.0, 0.1 - (time.monotonic() - started)))

    @contextlib.contextmanager
    def running(self) -> contextlib.AbstractContextManager[Poller]:  # type: ignore[misc]
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(10)


async def round_trips(bootstrap: str, n: int) -> list[float]:
    """Produce one record, fetch it back: ms each (the broker hop itself)."""
    consumer = AIOKafkaConsumer(
        "latency-reference", bootstrap_servers=bootstrap, fetch_max_wait_ms=100
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await consumer.start()
    await producer.start()
    out = []
    try:
        await consumer.seek_to_end()
        for i in range(n):
            started = time.perf_counter()
            await producer.send_and_wait("latency-reference", str(i).encode())
            while True:
                got = await consumer.getmany(timeout_ms=1000)
                if any(r.value == str(i).encode() for rs in got.values() for r in rs):
                    break
            out.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.2)
    finally:
        await producer.stop()
        await consumer.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=40.0)
    # Slack takes one message a second per channel (the notifier paces itself): crossings
    # come further apart than that, so what is measured is the pipeline, not the queue.
    parser.add_argument("--crossings", type=int, default=30)
    args = parser.parse_args()
    print(f"machine: {machine()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    rng = random.Random(5)
    with (
        tempfile.TemporaryDirectory() as tmp,
        TansuBroker() as broker,
        SlackServer().running_in_thread() as slack,
    ):
        bootstrap = broker.bootstrap_servers
        asyncio.run(create_topics(bootstrap, ["latency-reference"], 1))
        text = config(bootstrap, Path(tmp), slack.webhook_url(), args.crossings)
        with running_worker(text, Path(tmp), ready_timeout_s=120) as worker:
            spendwatch.configure(bootstrap_servers=bootstrap, service="bench", queue_size=1_000_000)
            time.sleep(8.0)  # the hot path joins its group
            probes: dict[int, float] = {}
            crossings: dict[str, float] = {}
            total = int(args.rate * args.seconds)
            cross_every = total // (args.crossings + 1)
            probe_every = max(1, args.rate // PROBES_PER_S)
            reference: list[float] = []
            ref_thread = threading.Thread(
                target=lambda: reference.extend(asyncio.run(round_trips(bootstrap, 40))),
                daemon=True,
            )
            with Poller(worker).running() as poller:
                ref_thread.start()
                t0 = time.monotonic()
                i = 0
                while i < total:
                    due = min(total, int((time.monotonic() - t0) * args.rate) + 1)
                    while i < due:
                        if i % cross_every == cross_every - 1 and len(crossings) < args.crossings:
                            name = f"cross-{len(crossings)}"
                            ts = datetime.now(UTC)
                            spendwatch.record(
                                "quote",
                                service=name,
                                provider="polygon",
                                unit="request",
                                quantity=1,
                                ts=ts,
                            )
                            crossings[name] = ts.timestamp()
                        elif i % probe_every == 0:
                            ts = datetime.now(UTC)
                            spendwatch.record(
                                "chat",
                                service="latency-probe",
                                provider="openai",
                                model="gpt-4o-mini",
                                input_tokens=1000,
                                output_tokens=100,
                                tags={"probe": str(len(probes))},
                                ts=ts,
                            )
                            probes[len(probes)] = ts.timestamp()
                        else:
                            spendwatch.record("chat", **mix_event(i, rng))
                        i += 1
                    time.sleep(0.005)
                achieved = total / (time.monotonic() - t0)
                spendwatch.flush(60.0)
                deadline = time.monotonic() + 60
                while len(poller.seen) < len(probes) and time.monotonic() < deadline:
                    time.sleep(0.2)
                while (
                    len({m.text for m in slack.delivered}) < len(crossings)
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.2)
                ref_thread.join(60)
            stats = spendwatch.stats()
            hot = worker.health()[1]["hot_path"]
            recorded = {
                b: (r - f) * 1000
                for b, f, r in worker.query(
                    "SELECT labels['budget'], toUnixTimestamp64Micro(fired_at) / 1e6,"
                    " toUnixTimestamp64Micro(recorded_at) / 1e6 FROM alerts"
                    " WHERE kind = 'threshold'"
                )
            }
            [[p50, p95, p99, top]] = worker.query(
                "SELECT quantileExact(0.5)(d), quantileExact(0.95)(d), quantileExact(0.99)(d),"
                " max(d) FROM (SELECT (toUnixTimestamp64Micro(ingested_at) -"
                " toUnixTimestamp64Micro(ts)) / 1000 AS d FROM usage_events)"
            )
            queryable = [
                (poller.seen[k] - ts) * 1000 for k, ts in probes.items() if k in poller.seen
            ]
            to_slack = []
            # received_monotonic -> wall clock: the offset now between the two clocks
            offset = time.time() - time.monotonic()
            for message in slack.delivered:
                for name, ts in crossings.items():
                    if f"budget {name} " in message.text:
                        to_slack.append((message.received_monotonic + offset - ts) * 1000)
                        break
        spendwatch.shutdown(5.0)
    print(
        f"steady rate: asked {args.rate:,}/s, recorded {achieved:,.0f}/s for {args.seconds:.0f} s; "
        f"SDK sent {stats.sent:,}, dropped {stats.dropped}"
    )
    print(
        f"ts -> ingested_at (all events):     {p50:,.0f} / {p95:,.0f} / {p99:,.0f} / {top:,.0f} ms"
    )
    print(f"ts -> queryable (probes, 100 ms poll): {quad(queryable)}")
    print(f"budget crossing ts -> Slack:        {quad(to_slack)}")
    print(f"budget crossing ts -> alert recorded: {quad(list(recorded.values()))}")
    print(f"reference, one broker round trip:   {quad(reference)}")
    per_batch = {k: f"{v * 1000 / hot['batches']:.1f}" for k, v in hot["seconds"].items()}
    print(f"hot path: {hot['batches']} batches, ms per batch {per_batch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
