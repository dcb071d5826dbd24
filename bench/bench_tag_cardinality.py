"""Tag cardinality: a client sending a distinct tag value on every event, against a client
sending the same events with a handful of tag values. Peak RSS of the worker, and whether the
data stays queryable.

    .venv/bin/python bench/bench_tag_cardinality.py [--events N] [--detect-off] [--max-batch N]
        [--only reference|cardinality] [--memtrace '[py:|burst:]/dir/{run}.log[@s]']
        [--worker-env K=V]

``--memtrace`` sets ``SPENDWATCH_MEMTRACE`` for each worker (``{run}`` becomes ``seven-N`` or
``distinct-N``; see ``streams/memtrace.py``); ``--worker-env`` adds a variable to the worker's
environment (e.g. ``JE_MALLOC_CONF=dirty_decay_ms:1000``).

Two runs, each on a fresh embedded Tansu broker and a fresh chDB: ``--events`` SDK-shaped
usage events (the realistic mix of bench_pipeline.py) are produced to the usage topic, then
one worker (``spendwatch worker``, default detector - whose ``tag_keys`` include
``customer`` - and three budgets, one matching on the ``customer`` tag) drains them. The two
runs differ only in the ``customer`` tag:

* reference: 7 distinct values (``c0`` .. ``c6``);
* cardinality: one per event (``cust-0`` .. ``cust-N``).

Reported per run: the worker's peak RSS (``VmHWM``), its RSS at the end, the drain time, and
the time of ``SELECT uniqExact(tags['customer'])`` through the worker's SQL endpoint; then the
ratio of the two peaks. The worker's per-tag state is bounded by design (detector breakdowns
``max_breakdown_keys``, ledger contributors 50 names per dimension, batch-local budget
routing, the report's budget spend summed in ClickHouse), so the ratio should stay near 1
whatever ``--events`` is.

Prints the figures and the machine; not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from bench.bench_drain import config, produce  # noqa: E402
from bench.bench_pipeline import mix_event  # noqa: E402
from streams import topics  # noqa: E402
from streams.broker import TansuBroker, create_topics  # noqa: E402
from tests.support.worker import running_worker, wait_for  # noqa: E402

BUDGETS = """
[[budgets]]
name = "everything"
period = "day"
limit_usd = "100000000"

[[budgets]]
name = "growth"
period = "day"
limit_usd = "100000000"
match = { tags = { team = "growth" } }

[[budgets]]
name = "big-customer"
period = "month"
limit_usd = "100000000"
match = { tags = { customer = "cust-1*" } }
"""


def status_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def event_chunks(
    n: int, distinct: bool, chunk: int = 100_000
) -> Iterator[list[tuple[bytes, bytes]]]:
    """bench_drain.sdk_events(n) with the ``customer`` tag set, ``chunk`` events at a time
    (2,000,000 events in one list take several GB in this process)."""
    rng = random.Random(20261123)
    now = time.time_ns()
    out: list[tuple[bytes, bytes]] = []
    for i in range(n):
        fields = mix_event(i, rng)
        service = fields.pop("service")
        secs, rest = divmod(now - (n - i) * 1000, 1_000_000_000)
        event = {
            "schema_version": 1,
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{rest // 1000:06d}Z",
            "service": service,
            "operation": "chat",
            "status": "ok",
            **fields,
            "environment": "prod",
            "tags": {
                "team": "growth",
                "agent": f"agent-{i % 7}",
                "customer": f"cust-{i}" if distinct else f"c{i % 7}",
            },
        }
        out.append((service.encode(), orjson.dumps(event)))
        if len(out) == chunk:
            yield out
            out = []
    if out:
        yield out


DETECT = ""  # --detect-off: "[detect] enabled = false" (to locate what grows)
MAX_BATCH = 0  # --max-batch N: [kafka] max_batch_records (0: the default, 20,000)
WORKER_ENV: dict[str, str] = {}  # --worker-env K=V: e.g. MALLOC_ARENA_MAX=2
MEMTRACE: str | None = None  # --memtrace '[py:]/dir/{run}.log[@s]': SPENDWATCH_MEMTRACE


def one_run(n: int, distinct: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, TansuBroker() as broker:
        asyncio.run(create_topics(broker.bootstrap_servers, topics.ALL, 1))
        for payloads in event_chunks(n, distinct):
            asyncio.run(produce(broker.bootstrap_servers, payloads))
        text = config(broker.bootstrap_servers, 1, Path(tmp))
        text = DETECT + text[: text.index("[[budgets]]")] + BUDGETS
        if MAX_BATCH:
            text = text.replace("[kafka]\n", f"[kafka]\nmax_batch_records = {MAX_BATCH}\n", 1)
        env = dict(WORKER_ENV)
        if MEMTRACE is not None:
            run = f"{'distinct' if distinct else 'seven'}-{n}"
            env["SPENDWATCH_MEMTRACE"] = MEMTRACE.format(run=run)
        with running_worker(text, Path(tmp), ready_timeout_s=180, env=env) as worker:
            pid = worker.process.pid
            samples: list[int] = []
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    samples.append(status_kb(pid).get("VmRSS", 0))
                    time.sleep(0.5)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.perf_counter()
            wait_for(
                lambda: worker.scalar("SELECT count() FROM usage_events") == n,
                3600,
                f"{n} rows",
            )
            drained_s = time.perf_counter() - started
            time.sleep(3)  # the ledgers and the detector settle on the last batch
            stop.set()
            sampler.join()
            q_started = time.perf_counter()
            distinct_values = worker.scalar("SELECT uniqExact(tags['customer']) FROM usage_events")
            query_s = time.perf_counter() - q_started
            mem = status_kb(pid)
            status, health = worker.health()
    return {
        "peak_mb": mem["VmHWM"] / 1024,
        "end_mb": mem["VmRSS"] / 1024,
        "sampled_peak_mb": max(samples, default=0) / 1024,
        "drain_s": drained_s,
        "distinct": distinct_values,
        "query_s": query_s,
        "healthy": status == 200 and health.get("status") == "ok",
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--detect-off", action="store_true")
    parser.add_argument("--max-batch", type=int, default=0)
    parser.add_argument("--memtrace", default=None)
    parser.add_argument("--only", choices=("reference", "cardinality"), default=None)
    parser.add_argument("--worker-env", action="append", default=[], metavar="K=V")
    args = parser.parse_args()
    WORKER_ENV.update(item.split("=", 1) for item in args.worker_env)
    global DETECT, MAX_BATCH, MEMTRACE
    MAX_BATCH = args.max_batch
    MEMTRACE = args.memtrace
    if args.detect_off:
        DETECT = "[detect]\nenabled = false\n"
    n = args.events
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    results = {}
    runs = (
        ("reference", "reference (7 values)", False),
        ("cardinality", f"cardinality ({n} values)", True),
    )
    for kind, name, distinct in runs:
        if args.only not in (None, kind):
            continue
        r = results[name] = one_run(n, distinct)
        print(
            f"{name}: peak RSS {r['peak_mb']:.0f} MB (sampled {r['sampled_peak_mb']:.0f}), "
            f"end {r['end_mb']:.0f} MB; "
            f"drained {n} events in {r['drain_s']:.1f} s; "
            f"uniqExact(customer) = {r['distinct']} in {r['query_s'] * 1000:.0f} ms; "
            f"healthy: {r['healthy']}",
            flush=True,
        )
    if len(results) < 2:
        return 0
    ref, card = results.values()
    print(f"peak RSS ratio, cardinality / reference: {card['peak_mb'] / ref['peak_mb']:.2f}")
    ok = card["distinct"] == n and ref["distinct"] == 7 and card["healthy"] and ref["healthy"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
