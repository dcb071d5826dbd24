"""The whole pipeline on this machine: SDK -> Tansu -> worker process -> chDB -> Slack.

Prints figures and the machine; not a test.

    .venv/bin/python bench/bench_pipeline.py [--events 50000] [--rates 500,2000] [--seconds 20]

Everything runs here: a real Tansu broker, the real worker (``python -m streams.cli worker``,
embedded chDB) and a loopback Slack webhook server; all are stopped on exit.

1. Throughput - ``--events`` calls (five LLM services/models, a third with cached tokens,
   one in ten a metered ``unit``/``quantity`` call priced by a ``[[prices]]`` entry) recorded
   through the SDK as fast as the loop can; the SDK queue holds them all (``queue_size =
   max(10000, --events)``) so nothing is dropped (checked). Reported: ``record()`` calls/s,
   events/s acknowledged by the broker (until ``flush`` returns) and events/s until
   ``usage_events`` holds every row.
2. Latency at steady rates (``--rates``, ``--seconds`` each): the same mix, paced. Per event,
   ``ts`` (set at ``record``) -> ``ingested_at`` (priced by the worker) from SQL; and
   ``ts`` -> visible in ClickHouse for ~20 probe events a second, found by polling the SQL
   endpoint every ``--poll-ms`` (the poll period bounds the resolution; the figure is when the
   answering query returned).
3. Budget alert latency: one daily budget per rate, matching a ``budget-probe-<rate>`` service
   that gets one $0.004 call in twenty; its limit is crossed by a known call half-way through
   the phase. From that call's ``ts`` to the alert's ``recorded_at`` (the alerts agent had
   it), to the row being visible in ``alerts``, and to the Slack webhook receiving it.

Each phase also reports the CPU seconds of the worker, Tansu and this process (from
``/proc``), and what the poller alone costs an idle worker. Steady phases start from an idle
worker. Rows of a phase are told apart by their ``ts`` range.
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import spendwatch  # noqa: E402

from streams import topics  # noqa: E402
from streams.broker import TansuBroker, create_topics  # noqa: E402
from tests.support.slack_server import SlackServer  # noqa: E402
from tests.support.worker import WorkerProcess, running_worker, wait_for  # noqa: E402

# (service, provider, model): several services and models, as in tests/integration.
LLM_CALLS = (
    ("research-agent", "openai", "gpt-4o"),
    ("research-agent", "anthropic", "claude-sonnet-4-5"),
    ("support-bot", "openai", "gpt-4o-mini"),
    ("lead-enricher", "anthropic", "claude-3-5-haiku-latest"),
    ("planner", "openai", "o3-mini"),
)
UNIT_PRICES = {("polygon", "request"): Decimal("0.004"), ("twilio", "minute"): Decimal("0.014")}
PROBE_COST_USD = UNIT_PRICES[("polygon", "request")]  # one budget-probe call
BUDGET_PROBE_EVERY = 20  # one event in 20 of a steady phase is a budget-probe call
VISIBILITY_PROBES_PER_S = 20
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def mix_event(i: int, rng: random.Random) -> dict[str, Any]:
    """``record`` keyword arguments for the i-th call of the realistic mix."""
    if i % 10 == 9:
        provider, unit = ("polygon", "request") if i % 20 == 9 else ("twilio", "minute")
        return {
            "service": "market-data",
            "provider": provider,
            "unit": unit,
            "quantity": str(Decimal(rng.randint(1, 40)) / 4),
        }
    service, provider, model = LLM_CALLS[i % len(LLM_CALLS)]
    inp = rng.randint(50, 20_000)
    out = rng.randint(10, 3_000)
    kwargs: dict[str, Any] = {
        "service": service,
        "provider": provider,
        "model": model,
        "input_tokens": inp,
        "output_tokens": out,
    }
    if i % 3 == 0:
        kwargs["cache_read_tokens"] = rng.randint(1, inp // 2)
    if model == "o3-mini":
        kwargs["reasoning_tokens"] = rng.randint(0, out)
    return kwargs


def config_text(bootstrap: str, partitions: int, tmp: Path, slack_url: str, budgets: str) -> str:
    return f"""
[kafka]
bootstrap_servers = "{bootstrap}"
partitions = {partitions}

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
{budgets}
[alerting]
group_wait_s = 0

[[alerting.receivers]]
name = "oncall"
type = "slack"
webhook_url = "{slack_url}"
"""


def budget_toml(rate: int, limit_usd: Decimal) -> str:
    return f"""
[[budgets]]
name = "steady-{rate}"
period = "day"
limit_usd = "{limit_usd}"
thresholds = [1.0]
match = {{ service = "budget-probe-{rate}" }}
"""


# -- SQL helpers ---------------------------------------------------------------------------


def sql_time(when: datetime) -> str:
    return f"toDateTime64('{when.strftime('%Y-%m-%d %H:%M:%S.%f')}', 6, 'UTC')"


def micros(when: datetime) -> int:
    return (when - EPOCH) // timedelta(microseconds=1)


def percentiles_ms(worker: WorkerProcess, start: datetime, end: datetime) -> list[float]:
    """p50, p95, p99, max of ts -> ingested_at (ms) for rows with ts in [start, end]."""
    [[qs, top, rows]] = worker.query(
        "SELECT quantilesExact(0.5, 0.95, 0.99)(d), max(d), count() FROM ("
        " SELECT (toUnixTimestamp64Micro(ingested_at) - toUnixTimestamp64Micro(ts)) / 1000 AS d"
        f" FROM usage_events WHERE ts BETWEEN {sql_time(start)} AND {sql_time(end)})"
    )
    return [*map(float, qs), float(top), rows]


def count_between(worker: WorkerProcess, start: datetime, end: datetime) -> int:
    return int(
        worker.scalar(
            "SELECT count() FROM usage_events"
            f" WHERE ts BETWEEN {sql_time(start)} AND {sql_time(end)}"
        )
    )


def cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (None: this process)."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuMeter:
    """CPU seconds used by the worker, the broker and this process (SDK sender, poller)."""

    pids: dict[str, int | None]
    _start: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._start = {name: cpu_s(pid) for name, pid in self.pids.items()}

    def used(self) -> dict[str, float]:
        return {name: cpu_s(pid) - self._start[name] for name, pid in self.pids.items()}

    def describe(self, events: int, wall_s: float) -> str:
        used = self.used()
        parts = [
            f"{name} {sec:.1f} s ({sec * 1e6 / events:,.0f} µs/event)" for name, sec in used.items()
        ]
        return f"{', '.join(parts)}; {sum(used.values()) / wall_s:.2f} cores busy"


def wait_idle(pid: int, max_cores: float = 0.25, timeout_s: float = 120.0) -> float:
    """Wait until process ``pid`` used under ``max_cores`` of CPU over one second (its
    backlogs are drained); returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        before = cpu_s(pid)
        time.sleep(1.0)
        if cpu_s(pid) - before < max_cores:
            break
    return time.monotonic() - started


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- phase 2/3: the poller ------------------------------------------------------------------


@dataclass
class Poller:
    """Polls the SQL endpoint every ``period_s`` for probe rows and threshold alerts, noting
    the wall-clock time (``time.time()``) of the answer that first showed each."""

    worker: WorkerProcess
    period_s: float
    since: datetime
    probes_seen_at: dict[int, float] = field(default_factory=dict)
    alerts_seen_at: dict[str, float] = field(default_factory=dict)
    queries: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        # One query per poll: each costs the worker an HTTP request and a chDB query.
        sql = (
            "SELECT 'probe', tags['probe'] FROM usage_events"
            f" WHERE service = 'latency-probe' AND ts >= {sql_time(self.since)}"
            " UNION ALL SELECT 'alert', labels['budget'] FROM alerts WHERE kind = 'threshold'"
        )
        while not self._stop.is_set():
            started = time.monotonic()
            with contextlib.suppress(OSError):
                rows = self.worker.query(sql)
                now = time.time()
                self.queries += 1
                for kind, key in rows:
                    if kind == "probe":
                        self.probes_seen_at.setdefault(int(key), now)
                    else:
                        self.alerts_seen_at.setdefault(key, now)
            self._stop.wait(max(0.0, self.period_s - (time.monotonic() - started)))

    @contextlib.contextmanager
    def running(self) -> Iterator[Poller]:
        thread = threading.Thread(target=self.run, name="poller", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(10)


@dataclass
class Steady:
    rate: int
    start: datetime
    end: datetime
    sent: int
    achieved_per_s: float
    probes_ts: dict[int, float]  # probe number -> ts (epoch s)
    crossing_ts: datetime  # ts of the budget-probe call that reaches 100 %


def run_steady(rate: int, seconds: float, crossing_call: int, probe_base: int) -> Steady:
    """Record ``rate`` events/s for ``seconds``: the mix, budget-probe calls, visibility probes.

    Events are sent in 5 ms ticks (each tick records the ones that fell due); ``ts`` is set at
    ``record``. ``crossing_call`` is the number (1-based) of the budget-probe call that reaches
    the budget's limit; its ts is returned.
    """
    rng = random.Random(rate)
    total = int(rate * seconds)
    probe_every = max(1, rate // VISIBILITY_PROBES_PER_S)
    probes: dict[int, float] = {}
    budget_calls = 0
    crossing_ts: datetime | None = None
    start = datetime.now(UTC)
    t0 = time.monotonic()
    i = 0
    while i < total:
        due = min(total, int((time.monotonic() - t0) * rate) + 1)
        while i < due:
            if i % BUDGET_PROBE_EVERY == BUDGET_PROBE_EVERY - 1:
                budget_calls += 1
                ts = datetime.now(UTC)
                spendwatch.record(
                    "quote",
                    service=f"budget-probe-{rate}",
                    provider="polygon",
                    unit="request",
                    quantity=1,
                    ts=ts,
                )
                if budget_calls == crossing_call:
                    crossing_ts = ts
            elif i % probe_every == 0:
                number = probe_base + len(probes)
                ts = datetime.now(UTC)
                spendwatch.record(
                    "chat",
                    service="latency-probe",
                    provider="openai",
                    model="gpt-4o-mini",
                    input_tokens=1_000,
                    output_tokens=100,
                    tags={"probe": str(number)},
                    ts=ts,
                )
                probes[number] = ts.timestamp()
            else:
                spendwatch.record("chat", **mix_event(i, rng))
            i += 1
        time.sleep(0.005)
    elapsed = time.monotonic() - t0
    end = datetime.now(UTC)
    assert crossing_ts is not None, "the phase ended before the budget's crossing call"
    return Steady(rate, start, end, total, total / elapsed, probes, crossing_ts)


# -- the phases ----------------------------------------------------------------------------

Figures = list[tuple[str, str]]


def quad_ms(p50: float, p95: float, p99: float, top: float) -> str:
    return f"{p50:,.0f} / {p95:,.0f} / {p99:,.0f} / {top:,.0f} ms"


def throughput(worker: WorkerProcess, cpu: CpuMeter, n: int, queue_size: int) -> Figures:
    """Phase 1: ``n`` events recorded flat out; checks rows, dead letters and metered costs."""
    rng = random.Random(20261123)
    planned = [mix_event(i, rng) for i in range(n)]
    sent_before = spendwatch.stats().sent
    start = datetime.now(UTC)
    cpu.start()
    t0 = time.monotonic()
    for kwargs in planned:
        spendwatch.record("chat", **kwargs)
    t_recorded = time.monotonic()
    assert spendwatch.flush(300.0), "the SDK did not flush within 300 s"
    t_acked = time.monotonic()
    end = datetime.now(UTC)
    stats = spendwatch.stats()
    assert stats.dropped == 0 and stats.failed == 0, stats
    assert stats.sent - sent_before == n, stats
    deadline = time.monotonic() + 300
    while count_between(worker, start, end) < n:
        assert time.monotonic() < deadline, "rows missing in ClickHouse after 300 s"
        time.sleep(0.1)
    t_stored = time.monotonic()
    cpu_text = cpu.describe(n, t_stored - t0)

    [[rows, deadletters, metered_nusd, catalog, first_in, last_in]] = worker.query(
        "SELECT count(), (SELECT count() FROM deadletter), sumIf(cost_nusd, unit != ''),"
        " countIf(cost_source = 'catalog'),"
        " toUnixTimestamp64Micro(min(ingested_at)), toUnixTimestamp64Micro(max(ingested_at))"
        f" FROM usage_events WHERE ts BETWEEN {sql_time(start)} AND {sql_time(end)}"
    )
    expected_metered_nusd = sum(
        int(Decimal(k["quantity"]) * UNIT_PRICES[(k["provider"], k["unit"])] * 10**9)
        for k in planned
        if "unit" in k
    )
    expected_catalog = sum("unit" not in k for k in planned)
    assert rows == n and deadletters == 0, (rows, deadletters)
    assert metered_nusd == expected_metered_nusd, (metered_nusd, expected_metered_nusd)
    assert catalog == expected_catalog, (catalog, expected_catalog)
    p50, p95, p99, top, _ = percentiles_ms(worker, start, end)
    priced_s = (last_in - first_in) / 1e6
    return [
        ("throughput: events", f"{n:,} (SDK queue_size {queue_size:,}, dropped 0)"),
        ("  record() calls/s (caller loop)", f"{n / (t_recorded - t0):,.0f}"),
        ("  into the broker (acked, flush returned)", f"{n / (t_acked - t0):,.0f} events/s"),
        ("  priced by the worker (first..last ingested_at)", f"{n / priced_s:,.0f} events/s"),
        ("  all rows in ClickHouse", f"{n / (t_stored - t0):,.0f} events/s"),
        ("  wall time record -> all rows stored", f"{t_stored - t0:.1f} s"),
        ("  ts -> ingested_at (backlog)", quad_ms(p50, p95, p99, top)),
        ("  CPU until all rows stored", cpu_text),
    ]


def steady_rate(
    worker: WorkerProcess,
    slack: SlackServer,
    cpu: CpuMeter,
    rate: int,
    args: argparse.Namespace,
    crossing_call: int,
    probe_base: int,
    clock_offset_s: float,
) -> Figures:
    """Phases 2 and 3 at one rate: latency percentiles, probe visibility, the budget alert."""
    budget = f"steady-{rate}"
    poller = Poller(worker, args.poll_ms / 1000, datetime.now(UTC))
    with poller.running():
        cpu.start()
        t0 = time.monotonic()
        steady = run_steady(rate, args.seconds, crossing_call, probe_base)
        assert spendwatch.flush(60.0)
        wait_for(
            lambda: count_between(worker, steady.start, steady.end) == steady.sent,
            300,
            f"{steady.sent} rows at {rate}/s",
        )
        cpu_text = cpu.describe(steady.sent, time.monotonic() - t0)
        wait_for(
            lambda: (
                budget in poller.alerts_seen_at
                and set(steady.probes_ts) <= set(poller.probes_seen_at)
            ),
            120,
            "probes and the alert visible",
        )
        wait_for(
            lambda: any(budget in m.text for m in slack.delivered),
            60,
            f"the Slack message of {budget}",
        )
    assert spendwatch.stats().dropped == 0
    p50, p95, p99, top, rows = percentiles_ms(worker, steady.start, steady.end)
    visible_ms = [(poller.probes_seen_at[k] - ts) * 1000 for k, ts in steady.probes_ts.items()]

    [[fired_us, recorded_us]] = worker.query(
        "SELECT toUnixTimestamp64Micro(fired_at), toUnixTimestamp64Micro(recorded_at)"
        f" FROM alerts WHERE kind = 'threshold' AND labels['budget'] = '{budget}'"
    )
    crossing_us = micros(steady.crossing_ts)
    # fired_at is the crossing call's ts (stored to the millisecond): the alert is the one
    # the known call caused, not an earlier or later one.
    assert fired_us == crossing_us // 1000 * 1000, (fired_us, crossing_us)
    crossing_s = crossing_us / 1e6
    slack_s = min(m.received_monotonic for m in slack.delivered if budget in m.text)

    def since_crossing(when_s: float) -> str:
        return f"{(when_s - crossing_s) * 1000:,.0f} ms"

    visible = quad_ms(
        pct(visible_ms, 0.5), pct(visible_ms, 0.95), pct(visible_ms, 0.99), max(visible_ms)
    )
    achieved = f"achieved {steady.achieved_per_s:,.0f}/s, {rows:,} rows, dropped 0"
    print(f"  ({poller.queries} poll queries during {rate}/s)")
    return [
        (f"steady {rate}/s for {args.seconds:g} s", achieved),
        ("  ts -> ingested_at", quad_ms(p50, p95, p99, top)),
        (f"  ts -> visible in ClickHouse ({len(visible_ms)} probes)", visible),
        ("  budget 100 %: crossing ts -> alert recorded_at", since_crossing(recorded_us / 1e6)),
        ("  budget 100 %: -> alert row visible", since_crossing(poller.alerts_seen_at[budget])),
        ("  budget 100 %: -> Slack webhook received", since_crossing(slack_s + clock_offset_s)),
        ("  CPU until all rows stored (incl. polling)", cpu_text),
    ]


# -- main ----------------------------------------------------------------------------------


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {load}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="throughput phase size")
    parser.add_argument("--rates", default="500,2000", help="steady rates (events/s)")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each rate")
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--poll-ms", type=int, default=50, help="visibility poll period")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    print(f"machine: {machine()}")
    print(f"command: .venv/bin/python {' '.join(['bench/bench_pipeline.py', *sys.argv[1:]])}")

    # The budget of each rate is crossed by the budget-probe call half-way through its phase.
    crossing = {r: max(1, int(r * args.seconds) // BUDGET_PROBE_EVERY // 2) for r in rates}
    budgets = "".join(budget_toml(r, PROBE_COST_USD * crossing[r]) for r in rates)
    # The SDK queue holds the whole throughput phase: the loop records faster than the sender
    # thread drains on 2 shared cores (see bench_sdk), and a drop would spoil the count.
    queue_size = max(10_000, args.events)
    clock_offset_s = time.time() - time.monotonic()  # Slack records monotonic receive times
    figures: Figures = []
    begun = time.monotonic()

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pipeline-")))
        broker = stack.enter_context(TansuBroker())
        asyncio.run(create_topics(broker.bootstrap_servers, topics.ALL, args.partitions))
        slack = stack.enter_context(SlackServer().running_in_thread())
        text = config_text(
            broker.bootstrap_servers, args.partitions, tmp, slack.webhook_url(), budgets
        )
        started = time.monotonic()
        worker = stack.enter_context(running_worker(text, tmp))
        print(f"worker SQL endpoint up after {time.monotonic() - started:.1f} s")
        spendwatch.configure(
            bootstrap_servers=broker.bootstrap_servers, service="bench", queue_size=queue_size
        )
        stack.callback(spendwatch.shutdown, 10.0)

        # Warm-up: the consumer group joins and chDB opens before anything is timed.
        warm_start = datetime.now(UTC)
        started = time.monotonic()
        for i in range(200):
            spendwatch.record("chat", **mix_event(i, random.Random(1)))
        assert spendwatch.flush(60.0)
        wait_for(
            lambda: count_between(worker, warm_start, datetime.now(UTC)) == 200,
            120,
            "200 warm-up rows",
        )
        print(f"warm-up (group join, first batch) {time.monotonic() - started:.1f} s")

        assert broker.process is not None
        pids = {"worker": worker.process.pid, "tansu": broker.process.pid, "bench": None}
        cpu = CpuMeter(pids)
        figures += throughput(worker, cpu, args.events, queue_size)
        # What the visibility poller alone costs an idle worker (it runs in phases 2 and 3).
        wait_idle(worker.process.pid)
        poller = Poller(worker, args.poll_ms / 1000, datetime.now(UTC))
        cpu.start()
        with poller.running():
            time.sleep(5.0)
        poll_cpu_s = cpu.used()["worker"]
        figures.append(
            (
                f"poller alone ({args.poll_ms} ms), idle worker",
                f"worker CPU {poll_cpu_s / 5.0:.2f} cores, {poller.queries / 5.0:.0f} queries/s",
            )
        )
        for number, rate in enumerate(rates):
            # The previous phase left work in the worker's other agents (detection, the
            # minute-spend table): start from an idle worker.
            print(f"worker idle after {wait_idle(worker.process.pid):.0f} s")
            figures += steady_rate(
                worker, slack, cpu, rate, args, crossing[rate], number * 1_000_000, clock_offset_s
            )

    print(f"total wall time {time.monotonic() - begun:.0f} s")
    width = max(len(label) for label, _ in figures)
    print()
    print(f"| {'figure':<{width}} | value |")
    print(f"| {'-' * width} | ---: |")
    for label, value in figures:
        print(f"| {label:<{width}} | {value} |")
    print("(latencies: p50 / p95 / p99 / max; 'bench' CPU = SDK sender, caller loop, poller)")
    print(f"machine at the end: {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
