"""Benchmark: the SDK's size at import and what each optional integration adds to a call.

Run: .venv/bin/python bench/bench_sdk_integrations.py [--calls 3000] [--imports 7]

1. ``import spendwatch`` in a fresh interpreter (median of ``--imports`` runs): wall time of
   the import, the resident memory it adds (VmRSS) and the modules loaded, beside the same
   figures for a bare interpreter and for ``import aiokafka, orjson`` (the SDK's two
   dependencies) measured in the same run; the integrations' import cost (with their
   libraries) on top.
2. Per call, alternating A/B with the same call without spendwatch (as ``bench_sdk.py`` does
   for OpenAI), a real Tansu broker up and the sender thread sending:
   * OpenTelemetry: ending a GenAI span on a tracer provider without / with
     ``SpendwatchSpanProcessor`` (the processor's whole cost is on the span's end);
   * Google Gen AI ``generate_content`` on an ``httpx`` ``MockTransport`` (no network);
   * Bedrock ``converse`` with botocore's ``Stubber`` (no network; signing and parsing
     still run);
   * LiteLLM: the callback runs on LiteLLM's own logging thread, not in the caller's call;
     its work per call (``log_success_event`` on the kwargs of a real ``mock_response``
     completion) is shown beside the ``mock_response`` completion itself.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import

import orjson
import spendwatch

from streams.broker import TansuBroker

IMPORT_PROBE = """
import sys, time
def rss_kb():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmRSS:"))
rss0 = rss_kb()
t0 = time.perf_counter()
{code}
dt = time.perf_counter() - t0
print(dt * 1000, rss_kb() - rss0, len(sys.modules))
"""


def import_cost(code: str, runs: int) -> tuple[float, float, int]:
    """Median (import ms, RSS added MB, modules loaded) of ``code`` in fresh interpreters."""
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", IMPORT_PROBE.format(code=code)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        ).stdout.split()
        samples.append((float(out[-3]), int(out[-2]) / 1024, int(out[-1])))
    return (
        statistics.median(s[0] for s in samples),
        statistics.median(s[1] for s in samples),
        int(statistics.median(s[2] for s in samples)),
    )


def paired(n: int, base: Callable[[], Any], test: Callable[[], Any]) -> tuple[list[int], list[int]]:
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


def pct(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def row(name: str, a: list[int], b: list[int]) -> str:
    added = statistics.median(y - x for x, y in zip(a, b, strict=True)) / 1000
    base = pct(a, 0.5)
    return (
        f"| {name} | {base:.1f} / {pct(a, 0.99):.1f} | {pct(b, 0.5):.1f} / {pct(b, 0.99):.1f} "
        f"| {added:+.1f} | {added / base * 100:+.1f} % |"
    )


def measure(name: str, n: int, base: Callable[[], Any], test: Callable[[], Any]) -> str:
    paired(min(300, n), base, test)  # warm-up: caches, sender thread, connection
    spendwatch.flush(10)
    gc.collect()
    return row(name, *paired(n, base, test))


# -- OpenTelemetry ---------------------------------------------------------------------------

SPAN_ATTRIBUTES = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.response.id": "chatcmpl-bench",
    "gen_ai.usage.input_tokens": 2006,
    "gen_ai.usage.output_tokens": 300,
}


def otel_case(n: int) -> str:
    from opentelemetry.sdk.trace import TracerProvider
    from spendwatch.otel import SpendwatchSpanProcessor

    plain = TracerProvider().get_tracer("bench")
    with_sw = TracerProvider()
    with_sw.add_span_processor(SpendwatchSpanProcessor())
    traced = with_sw.get_tracer("bench")

    def span(tracer: Any) -> Callable[[], None]:
        def run() -> None:
            with tracer.start_as_current_span("chat gpt-4o-mini", attributes=SPAN_ATTRIBUTES):
                pass

        return run

    return measure(
        "OpenTelemetry: a GenAI span, `SpendwatchSpanProcessor` on its provider",
        n,
        span(plain),
        span(traced),
    )


# -- Google Gen AI ---------------------------------------------------------------------------

GEMINI_BODY = orjson.dumps(
    {
        "candidates": [
            {"content": {"parts": [{"text": "ok"}], "role": "model"}, "finishReason": "STOP"}
        ],
        "usageMetadata": {
            "promptTokenCount": 1200,
            "cachedContentTokenCount": 1000,
            "candidatesTokenCount": 300,
            "thoughtsTokenCount": 150,
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-bench",
    }
)


def genai_case(n: int) -> str:
    import httpx
    from google import genai
    from google.genai import types

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=GEMINI_BODY, headers={"content-type": "application/json"}
        )

    def client() -> genai.Client:
        http = httpx.Client(transport=httpx.MockTransport(handler))
        options = types.HttpOptions(base_url="http://gemini.invalid", httpx_client=http)
        return genai.Client(api_key="bench", http_options=options)

    plain, instrumented = client(), spendwatch.instrument(client())
    return measure(
        "Google Gen AI `generate_content` (httpx MockTransport)",
        n,
        lambda: plain.models.generate_content(model="gemini-2.5-flash", contents="hi"),
        lambda: instrumented.models.generate_content(model="gemini-2.5-flash", contents="hi"),
    )


# -- Bedrock ---------------------------------------------------------------------------------

CONVERSE = {
    "output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}},
    "stopReason": "end_turn",
    "usage": {
        "inputTokens": 100,
        "outputTokens": 500,
        "totalTokens": 3600,
        "cacheReadInputTokens": 2000,
        "cacheWriteInputTokens": 1000,
    },
    "metrics": {"latencyMs": 300},
}


def bedrock_case(n: int) -> str:
    import boto3
    from botocore.stub import Stubber

    total = n + 300  # measured + warm-up calls

    def client() -> Any:
        bedrock = boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            aws_access_key_id="AKIDBENCH",
            aws_secret_access_key="secret",
        )
        stubber = Stubber(bedrock)
        for _ in range(total):
            stubber.add_response("converse", CONVERSE)
        stubber.activate()
        return bedrock

    plain, instrumented = client(), spendwatch.instrument(client())
    messages = [{"role": "user", "content": [{"text": "hi"}]}]
    model = "anthropic.claude-3-5-haiku-20241022-v1:0"
    return measure(
        "Bedrock `converse` (botocore Stubber)",
        n,
        lambda: plain.converse(modelId=model, messages=messages),
        lambda: instrumented.converse(modelId=model, messages=messages),
    )


# -- LiteLLM ---------------------------------------------------------------------------------


def litellm_case(n: int) -> list[str]:
    import litellm
    from litellm.integrations.custom_logger import CustomLogger
    from spendwatch.litellm import SpendwatchLogger

    captured: dict[str, Any] = {}

    class Capture(CustomLogger):  # type: ignore[misc]
        def log_success_event(
            self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
        ) -> None:
            captured.update(kwargs=kwargs, args=(response_obj, start_time, end_time))

    messages = [{"role": "user", "content": "hi"}]

    def completion() -> None:
        litellm.completion(model="openai/gpt-4o-mini", messages=messages, mock_response="ok")

    for _ in range(50):
        completion()
    completions = []
    for _ in range(min(n, 1000)):
        t0 = time.perf_counter_ns()
        completion()
        completions.append(time.perf_counter_ns() - t0)
    litellm.callbacks = [Capture()]
    completion()
    deadline = time.monotonic() + 10
    while not captured and time.monotonic() < deadline:
        time.sleep(0.01)
    litellm.callbacks = []
    logger = SpendwatchLogger()
    kwargs, args = captured["kwargs"], captured["args"]
    for _ in range(300):
        logger.log_success_event(kwargs, *args)
    own = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        logger.log_success_event(kwargs, *args)
        own.append(time.perf_counter_ns() - t0)
    base, work = pct(completions, 0.5), pct(own, 0.5)
    return [
        f"| LiteLLM `completion(mock_response=...)` (reference; no spendwatch) | "
        f"{base:.1f} / {pct(completions, 0.99):.1f} | | | |",
        f"| LiteLLM: `SpendwatchLogger.log_success_event` per call, on LiteLLM's logging thread "
        f"(not in the caller's call) | | {work:.1f} / {pct(own, 0.99):.1f} | | "
        f"{work / base * 100:.1f} % of the completion |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--imports", type=int, default=7)
    args = parser.parse_args()
    names = ("opentelemetry-sdk", "google-genai", "boto3", "litellm", "aiokafka")
    print(
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        + ", ".join(f"{name} {version(name)}" for name in names)
    )
    print()
    print("| import (fresh interpreter, median) | import ms | RSS added MB | modules loaded |")
    print("| --- | ---: | ---: | ---: |")
    for label, code in (
        ("bare interpreter (reference)", "pass"),
        ("`import aiokafka, orjson` (the SDK's dependencies)", "import aiokafka, orjson"),
        ("`import spendwatch`", "import spendwatch"),
        ("`import spendwatch.otel` (+ opentelemetry-sdk)", "import spendwatch.otel"),
        ("`import spendwatch.litellm` (+ litellm)", "import spendwatch.litellm"),
        ("`import spendwatch, google.genai`", "import spendwatch, google.genai"),
        ("`import spendwatch, boto3`", "import spendwatch, boto3"),
    ):
        ms, rss, modules = import_cost(code, args.imports)
        print(f"| {label} | {ms:.1f} | {rss:.1f} | {modules} |")
    print()
    print(
        "| call | baseline p50 / p99 µs | with spendwatch p50 / p99 µs | added (median of pair "
        "differences) µs | added / baseline p50 |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    with TansuBroker() as broker:
        spendwatch.configure(
            bootstrap_servers=broker.bootstrap_servers, service="bench", topic="bench.sdk"
        )
        for line in (otel_case(args.calls), genai_case(args.calls), bedrock_case(args.calls)):
            print(line, flush=True)
        for line in litellm_case(args.calls):
            print(line, flush=True)
        flushed = spendwatch.flush(30)
        stats = spendwatch.stats()
        print(
            f"| (after flush {'ok' if flushed else 'timed out'}: sent {stats.sent}, "
            f"dropped {stats.dropped}, rejected {stats.rejected}) | | | | |"
        )
        spendwatch.shutdown(5)


if __name__ == "__main__":
    main()
