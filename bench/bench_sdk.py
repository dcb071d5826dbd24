"""Benchmark: what the spendwatch SDK adds to the caller's call.

Run: .venv/bin/python bench/bench_sdk.py [--calls 20000] [--llm-calls 3000]

1. ``record()`` after a no-op and ``track()`` around a no-op vs the bare no-op, and
2. an instrumented OpenAI ``chat.completions.create`` vs an uninstrumented client, both on an
   ``httpx2.MockTransport`` (no network: only the SDK's work and the openai library's own
   request/response handling are in the figure),

each with the broker up (a real Tansu broker; the sender thread is encoding and sending while
the caller runs) and with the broker unreachable (nothing listens on the port; the queue
fills and then drops the oldest). Calls alternate A/B so drift hits both sides equally.
3. Peak memory of a full queue (tracemalloc): 10,000 queued events, then 10,000 more dropped.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import httpx2
import openai
import orjson
import spendwatch

from streams.broker import TansuBroker, free_port

CHAT_BODY = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1767225600,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 2006,
            "completion_tokens": 300,
            "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920},
            "completion_tokens_details": {"reasoning_tokens": 192},
        },
    }
)


def handler(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(
        200,
        content=CHAT_BODY,
        headers={"content-type": "application/json", "x-request-id": "req_bench"},
    )


def client() -> openai.OpenAI:
    return openai.OpenAI(
        api_key="sk-bench",
        base_url="http://llm.invalid/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )


def pct(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def paired(n: int, base: Callable[[], Any], test: Callable[[], Any]) -> tuple[list[int], list[int]]:
    """Alternate ``base`` and ``test`` ``n`` times; per-call ns for each."""
    a: list[int] = []
    b: list[int] = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        base()
        t1 = clock()
        test()
        t2 = clock()
        a.append(t1 - t0)
        b.append(t2 - t1)
    return a, b


def row(name: str, a: list[int], b: list[int]) -> str:
    # "added": the median of the per-pair differences (each pair ran back to back).
    added = statistics.median(y - x for x, y in zip(a, b, strict=True)) / 1000
    return (
        f"| {name} | {pct(a, 0.5):.1f} / {pct(a, 0.99):.1f} | {pct(b, 0.5):.1f} / "
        f"{pct(b, 0.99):.1f} | {added:+.1f} | {statistics.fmean(b) / 1000:.1f} |"
    )


def noop() -> None:
    return None


def tracked() -> None:
    with spendwatch.track("geocode", provider="mapbox", unit="request", quantity=1):
        pass


def recorded() -> None:
    spendwatch.record(
        "chat", provider="openai", model="gpt-4o-mini", input_tokens=120, output_tokens=380
    )


def run_case(label: str, bootstrap: str, calls: int, llm_calls: int) -> list[str]:
    spendwatch.configure(bootstrap_servers=bootstrap, service="bench", topic="bench.sdk")
    plain, instrumented = client(), spendwatch.instrument(client())
    messages = [{"role": "user", "content": "hi"}]

    def call_plain() -> None:
        plain.chat.completions.create(model="gpt-4o", messages=messages)

    def call_instrumented() -> None:
        instrumented.chat.completions.create(model="gpt-4o", messages=messages)

    # warm up (imports, pydantic model caches, sender thread and connection)
    paired(500, noop, tracked)
    paired(200, call_plain, call_instrumented)
    spendwatch.flush(10)
    gc.collect()
    paired(500, noop, recorded)
    rows = [
        row(f"`record()` after a no-op, broker {label}", *paired(calls, noop, recorded)),
        row(f"`track()` around a no-op, broker {label}", *paired(calls, noop, tracked)),
        row(
            f"OpenAI `chat.completions.create` (MockTransport), broker {label}",
            *paired(llm_calls, call_plain, call_instrumented),
        ),
    ]
    gc.disable()  # how much of "added" is the collector run by the extra allocations
    try:
        rows.append(
            row(
                f"same, garbage collector off, broker {label}",
                *paired(llm_calls, call_plain, call_instrumented),
            )
        )
    finally:
        gc.enable()
    rows.append(
        f"| SDK's own work per OpenAI call (wrapper start + reading a parsed response + "
        f"queueing; no HTTP), broker {label} | | {own_work(llm_calls):.1f} | | |"
    )
    queued_at_end = spendwatch.stats().queued
    flushed = spendwatch.flush(30 if label == "up" else 0)
    stats = spendwatch.stats()
    rows.append(
        f"| (broker {label}: {queued_at_end} queued when the loops ended; after flush "
        f"{'ok' if flushed else 'timed out'}: sent {stats.sent}, dropped {stats.dropped}) | | | | |"
    )
    spendwatch.shutdown(timeout_s=5 if label == "up" else 0)
    return rows


def own_work(n: int) -> float:
    """Median µs of what the wrapper itself does per call, on an already parsed response."""
    from spendwatch.instrument import hooks
    from spendwatch.instrument import openai as support

    kwargs = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    parsed = client().chat.completions.create(**kwargs)  # type: ignore[call-overload]
    spec = next(s for path, method, s in support.specs(True) if path == ("chat", "completions")
                and method == "create")  # fmt: skip
    streams = support.shapes().streams

    def once() -> None:
        _prepared, rec = hooks._start(spec, kwargs)
        hooks.handle_result(spec, rec, parsed, streams, is_async=False)

    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        once()
        samples.append(clock() - t0)
    return statistics.median(samples) / 1000


def memory_full_queue(queue_size: int) -> list[str]:
    spendwatch.configure(
        bootstrap_servers=f"127.0.0.1:{free_port()}", service="bench", queue_size=queue_size
    )
    event = {
        "provider": "openai",
        "model": "gpt-4o",
        "response_model": "gpt-4o-2024-08-06",
        "input_tokens": 2006,
        "output_tokens": 300,
        "cache_read_tokens": 1920,
        "reasoning_tokens": 192,
        "latency_ms": 812.5,
        "request_id": "req_0123456789abcdef0123456789abcdef",
        "tags": {"team": "growth", "feature": "search"},
    }
    spendwatch.record("chat", **event)  # sender thread and its imports exist before measuring
    gc.collect()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    for _ in range(queue_size):
        spendwatch.record("chat", **event)
    full, peak_fill = tracemalloc.get_traced_memory()
    for _ in range(queue_size):
        spendwatch.record("chat", **event)
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stats = spendwatch.stats()
    spendwatch.shutdown(timeout_s=0)
    per_event = (full - base) / queue_size
    return [
        f"| queue of {queue_size:,} LLM events, full | {(full - base) / 1e6:.2f} MB "
        f"({per_event:.0f} B/event) | peak while filling {(peak_fill - base) / 1e6:.2f} MB |",
        f"| + {queue_size:,} more (dropped {stats.dropped:,}, queued {stats.queued:,}) | "
        f"{(after - base) / 1e6:.2f} MB | peak {(peak - base) / 1e6:.2f} MB |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--llm-calls", type=int, default=3_000)
    args = parser.parse_args()
    print(
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"openai {version('openai')}, aiokafka {version('aiokafka')}"
    )
    print()
    print(
        "| call | baseline p50 / p99 µs | with SDK p50 / p99 µs | added (median) µs | SDK mean µs |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    with TansuBroker() as broker:
        for line in run_case("up", broker.bootstrap_servers, args.calls, args.llm_calls):
            print(line)
    for line in run_case("unreachable", f"127.0.0.1:{free_port()}", args.calls, args.llm_calls):
        print(line)
    print()
    print("| memory (tracemalloc) | held | |")
    print("| --- | ---: | --- |")
    for line in memory_full_queue(10_000):
        print(line)


if __name__ == "__main__":
    main()
