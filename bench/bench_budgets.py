"""Budget ledger and SDK guard speed.

    .venv/bin/python bench/bench_budgets.py [--events 200000] [--repeat 3]

- ``apply_spend``: events spread over two days through three budgets (default thresholds, a
  per-request limit, quotas), as the worker calls it per (event, matching budget); includes the
  threshold / forecast / quota alerts it raises and two day rollovers.
- ``LedgerState`` JSON round trip (what a Faust table write/read costs per event).
- ``status_of``; ``Guard.check`` (local status look-up); ``Guard.before_call`` with a
  per-request limit, i.e. a cost estimate: a ~1,000-token OpenAI chat prompt through the bundled
  cl100k tokenizer, and the same for a Claude model (chars/4 fallback).
Prints best-of-``repeat`` figures and the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import uuid
from datetime import UTC, datetime, timedelta

from spendwatch.estimate import preload_tokenizer
from spendwatch.guard import guard
from spendwatch.status import BudgetStatus as SdkStatus
from spendwatch.status import StaticStatuses

from streams.budgets import LedgerState, apply_spend, load_budgets, status_of

USD = 1_000_000_000


def best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--follower-records", type=int, default=50_000, help="0 skips the Tansu follower part"
    )
    args = parser.parse_args()
    n = args.events

    budgets = load_budgets(
        [
            {"name": "all", "limit_usd": "500"},
            {"name": "growth", "limit_usd": "200", "match": {"tags": {"team": "growth"}},
             "per_request_limit_usd": "0.05", "requests_per_minute": 300, "tokens_per_day": 10**8},
            {"name": "gpt4o", "period": "month", "timezone": "America/New_York",
             "limit_usd": "2000", "match": {"model": "gpt-4o*"}},
        ]
    )  # fmt: skip
    start = datetime(2024, 5, 17, 0, 0, tzinfo=UTC)
    step = timedelta(seconds=2 * 86400 / n)
    services = [f"svc-{i}" for i in range(12)]
    models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5"]
    events = []
    for i in range(n):
        event = {
            "event_id": str(uuid.UUID(int=i)),
            "service": services[i % 12],
            "provider": "openai",
            "model": models[i % 3],
            "input_tokens": 900,
            "output_tokens": 200,
            "tags": {"team": "growth" if i % 4 else "core", "feature": f"f{i % 7}"},
        }
        events.append((event, start + step * i, 1_000_000 + (i % 97) * 100_000))
    matches = [[b for b in budgets if b.matches(e)] for e, _, _ in events]
    pairs = sum(len(m) for m in matches)

    alerts_seen = 0

    def run_ledger() -> None:
        nonlocal alerts_seen
        states: dict[str, LedgerState | None] = {b.name: None for b in budgets}
        count = 0
        for (event, ts, cost), covered in zip(events, matches, strict=True):
            for budget in covered:
                state, alerts = apply_spend(
                    budget, states[budget.name], event=event, cost_nusd=cost, ts=ts
                )
                states[budget.name] = state
                count += len(alerts)
        alerts_seen = count

    t_ledger = best(run_ledger, args.repeat)

    budget = budgets[1]
    state: LedgerState | None = None
    for event, ts, cost in events[:5000]:
        state, _ = apply_spend(budget, state, event=event, cost_nusd=cost, ts=ts)
    assert state is not None
    rounds = 20_000

    def run_json() -> None:
        for _ in range(rounds):
            LedgerState.from_json(state.to_json())

    t_json = best(run_json, args.repeat)
    now = events[4999][1]

    def run_status() -> None:
        for _ in range(rounds):
            status_of(budget, state, now)

    t_status = best(run_status, args.repeat)

    sdk_status = SdkStatus.from_json(status_of(budget, state, now).to_json())
    source = StaticStatuses({"growth": sdk_status})
    g = guard(["growth"], follower=source)
    g._clock = lambda: now

    def run_check() -> None:
        for _ in range(rounds):
            g.check("openai", "gpt-4o")

    t_check = best(run_check, args.repeat)
    preload_tokenizer()
    prompt = " ".join(f"word{i % 50} is here, and" for i in range(250))
    kwargs = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 300,
    }
    gp = guard(["growth"], follower=source, per_request_limit_usd="10")
    gp._clock = lambda: now
    est = gp.estimate("openai", "gpt-4o", kwargs)
    est_claude = gp.estimate("anthropic", "claude-sonnet-4-5", kwargs)
    calls = 2000

    def run_before_openai() -> None:
        for _ in range(calls):
            gp.before_call("openai", "gpt-4o", kwargs)

    def run_before_claude() -> None:
        for _ in range(calls):
            gp.before_call("anthropic", "claude-sonnet-4-5", kwargs)

    t_openai = best(run_before_openai, args.repeat)
    t_claude = best(run_before_claude, args.repeat)

    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"apply_spend: {n:,} events -> {pairs:,} (event, budget) pairs, {alerts_seen} alerts: "
          f"{pairs / t_ledger:,.0f} pairs/s, {t_ledger / pairs * 1e6:.2f} µs/pair")  # fmt: skip
    print(f"LedgerState to_json + from_json: {t_json / rounds * 1e6:.1f} µs "
          f"({len(state.to_json())} bytes)")  # fmt: skip
    print(f"status_of: {t_status / rounds * 1e6:.2f} µs")
    print(f"Guard.check (status look-up): {t_check / rounds * 1e6:.2f} µs")
    print(f"Guard.before_call + estimate, OpenAI {est.input_tokens} tokens ({est.method}): "
          f"{t_openai / calls * 1e6:.1f} µs")  # fmt: skip
    print(f"Guard.before_call + estimate, Claude {est_claude.input_tokens} tokens "
          f"({est_claude.method}): {t_claude / calls * 1e6:.1f} µs")  # fmt: skip

    if args.follower_records:
        bench_follower(args.follower_records, status_of(budget, state, now).to_json())


def bench_follower(count: int, payload: bytes) -> None:
    """How fast a new SDK follower reads an uncompacted status topic of ``count`` records."""
    import asyncio

    from aiokafka import AIOKafkaProducer
    from spendwatch.status import BudgetStatusFollower

    from streams.broker import TansuBroker, create_topics

    async def fill(bootstrap: str) -> None:
        await create_topics(bootstrap, ["status"])
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=5
        )
        await producer.start()
        try:
            batch = [producer.send("status", payload, key=b"growth") for _ in range(count)]
            for future in batch:
                await future
        finally:
            await producer.stop()

    broker = TansuBroker().start()
    try:
        asyncio.run(fill(broker.bootstrap_servers))
        started = time.perf_counter()
        follower = BudgetStatusFollower(broker.bootstrap_servers, topic="status").start()
        try:
            while follower.records_read < count and time.perf_counter() - started < 120:
                time.sleep(0.01)
            elapsed = time.perf_counter() - started
        finally:
            follower.stop()
    finally:
        broker.stop(grace_s=1.0)
    print(
        f"BudgetStatusFollower catch-up from the beginning: {follower.records_read:,} records in "
        f"{elapsed:.2f} s ({follower.records_read / elapsed:,.0f} records/s, incl. connect)"
    )


if __name__ == "__main__":
    main()
