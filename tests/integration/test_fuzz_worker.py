"""10,000 hypothesis-generated usage events, malformed and valid-but-extreme, through the real
worker (``spendwatch worker`` on a real Tansu broker and chDB).

The payloads are raw bytes (``tests/support/fuzz_events.py``): duplicate keys, ``NaN`` and
``Infinity``, deep nesting, wrong types, lone surrogates, invalid UTF-8, truncation, maximum
token counts and sizes, unicode and control characters in names and tags, timestamps naive,
far in the future, with odd offsets. Checked, exactly:

* every one of the 10,000 offsets is either one stored row or dead-lettered with a reason from
  the validator (none both, none lost, none refused by ClickHouse after it was accepted);
* each stored row holds the values Python's ``json`` reads from the bytes (the last of a
  repeated key counts) and the cost computed here: genai-prices for LLM calls, ``Decimal``
  for metered and supplied costs, 0 for unpriced usage;
* no money column is negative or wraps: each row is within the per-event cap, and the minute
  and day rollups sum to the rows' total computed in Python;
* the worker is alive and healthy at the end.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from genai_prices import Usage, calc_price
from hypothesis import HealthCheck, given, settings

from schemas.events import MAX_EVENT_COST_NUSD
from streams import topics
from streams.broker import TansuBroker
from tests.support.fuzz_events import METERED, raw_events, with_event_id
from tests.support.worker import WorkerProcess, running_worker, wait_for

pytestmark = pytest.mark.integration

N = 10_000
NANO = Decimal("1e-9")
# Every reason the validator and the hot path give (``schemas.events`` and the batch).
REASONS = {
    "too_large",
    "not_json",
    "not_object",
    "schema",
    "bad_timestamp",
    "inconsistent",
    "no_usage",
    "expired",
    "out_of_range",
}


def generate(now: datetime) -> list[bytes]:
    """N payloads from the strategy, the same ones on every run (derandomized)."""
    out: list[bytes] = []

    @settings(
        max_examples=N,
        database=None,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(raw_events(now))
    def collect(raw: bytes) -> None:
        out.append(raw)

    collect()
    assert len(out) >= N, f"hypothesis generated {len(out)} payloads"
    return [with_event_id(raw, i) for i, raw in enumerate(out[:N])]


def config(broker: TansuBroker, directory: Path) -> str:
    return f"""
[kafka]
bootstrap_servers = "{broker.bootstrap_servers}"
partitions = 1
max_batch_records = 2500

[worker]
http_port = {{http_port}}
state_dir = "{directory / "state"}"

[clickhouse]
dsn = "chdb://{directory / "chdb"}"

[[budgets]]
name = "fleet"
limit_usd = "1000000000"

[[budgets]]
name = "growth"
limit_usd = "1"
match = {{ tags = {{ team = "growth" }} }}
per_request_limit_usd = "0.5"

{METERED}
"""


async def produce(bootstrap: str, payloads: list[bytes]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_request_size=4 * 1024 * 1024
    )
    await producer.start()
    try:
        for raw in payloads:
            await producer.send(topics.USAGE, raw)
        await producer.flush()
    finally:
        await producer.stop()


def nusd(usd: Decimal) -> int:
    return int(usd.quantize(NANO, rounding=ROUND_HALF_EVEN).scaleb(9))


def expected_cost(event: dict[str, Any]) -> tuple[int, int, str]:
    """``(cost_nusd, avoided_cost_nusd, cost_source)`` of a stored event, computed here."""
    cache_hit = event.get("cache_hit") is True
    tokens = {
        f: event.get(f)
        for f in (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
        )
    }
    if "cost_usd" in event:
        cost, source = nusd(Decimal(event["cost_usd"])), "supplied"
    elif event.get("model") and (
        any(v is not None for v in tokens.values()) or "unit" not in event
    ):
        try:
            price = calc_price(
                Usage(
                    input_tokens=tokens["input_tokens"] or 0,
                    output_tokens=tokens["output_tokens"] or 0,
                    cache_read_tokens=tokens["cache_read_tokens"] or 0,
                    cache_write_tokens=tokens["cache_write_tokens"] or 0,
                ),
                event["model"],
                provider_id=event.get("provider"),
                genai_request_timestamp=datetime.fromisoformat(event["ts"].replace("Z", "+00:00")),
            )
        except LookupError:
            return 0, 0, "unpriced"
        failed = event["status"] == "error" and not (
            tokens["input_tokens"] or tokens["output_tokens"]
        )
        cost, source = (0 if failed else nusd(price.total_price)), "catalog"
    elif event.get("unit") == "minute" and event.get("provider") == "twilio":
        cost, source = nusd(Decimal(event.get("quantity", "1")) * Decimal("0.014")), "price_table"
    else:
        return 0, 0, "unpriced"
    return (0, cost, source) if cache_hit else (cost, 0, source)


def rows_of(worker: WorkerProcess, sql: str) -> list[list[Any]]:
    rows: list[list[Any]] = []
    step = 5000
    for start in range(0, N, step):
        rows += worker.query(f"{sql} LIMIT {step} OFFSET {start}")
    return rows


def test_ten_thousand_hostile_events_are_each_stored_or_dead_lettered(
    broker: TansuBroker, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    payloads = generate(now)
    asyncio.run(produce(broker.bootstrap_servers, payloads))
    stderr = tmp_path / "worker.err"
    with running_worker(config(broker, tmp_path), tmp_path, stderr=stderr) as worker:

        def all_accounted() -> bool | tuple[int, int]:
            stored = worker.scalar("SELECT count() FROM usage_events")
            dead = worker.scalar("SELECT countDistinct(partition, offset) FROM deadletter")
            return stored + dead == N or (stored, dead)

        wait_for(all_accounted, 120, f"{N} events stored or dead-lettered")
        stored = rows_of(
            worker,
            "SELECT kafka_offset, service, provider, model, input_tokens, output_tokens, "
            "cache_read_tokens, reasoning_tokens, tags, cost_nusd, avoided_cost_nusd, "
            "cost_source, unpriced_reason FROM usage_events ORDER BY kafka_offset",
        )
        letters = rows_of(
            worker,
            "SELECT offset, reason_code, reason, topic FROM deadletter ORDER BY offset",
        )
        [[minute_sum, minute_events]] = worker.query(
            "SELECT toString(sum(toInt128(cost_nusd))), sum(events) FROM spend_by_minute"
        )
        [[day_sum, day_events]] = worker.query(
            "SELECT toString(sum(toInt128(cost_nusd))), sum(events) FROM spend_by_day"
        )
        [[money_min, money_max]] = worker.query(
            "SELECT min(least(cost_nusd, avoided_cost_nusd)), "
            "max(greatest(cost_nusd, avoided_cost_nusd)) FROM usage_events"
        )
        status, health = worker.health()
        alive = worker.process.poll() is None

    # Each offset once: stored or dead-lettered, never both, never lost.
    stored_offsets = [r[0] for r in stored]
    dead_offsets = {r[0] for r in letters}
    assert len(stored_offsets) == len(set(stored_offsets))
    assert not set(stored_offsets) & dead_offsets
    assert set(stored_offsets) | dead_offsets == set(range(N))
    assert len(stored) + len(dead_offsets) == N
    # Every refusal is the validator's, with a reason, from the usage topic: ClickHouse
    # refused nothing the worker had accepted.
    codes = Counter(r[1] for r in letters)
    assert set(codes) <= REASONS, codes
    assert all(r[2].startswith(r[1]) and len(r[2]) > len(r[1]) for r in letters)
    assert {r[3] for r in letters} == {topics.USAGE}

    # Stored rows hold what Python's json reads (the last repeated key wins), priced here.
    total = 0
    for row in stored:
        offset, service, provider, model, inp, out, cache_read, reasoning, tags = row[:9]
        cost, avoided, source, unpriced_reason = row[9:]
        event = json.loads(payloads[offset])
        assert (service, provider, model) == (
            event["service"],
            event.get("provider", ""),
            event.get("model", ""),
        ), offset
        assert [inp, out, cache_read, reasoning] == [
            event.get(f, 0)
            for f in ("input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens")
        ], offset
        assert tags == event.get("tags", {}), offset
        want_cost, want_avoided, want_source = expected_cost(event)
        assert (cost, avoided, source) == (want_cost, want_avoided, want_source), (offset, event)
        assert (source == "unpriced") == (unpriced_reason != ""), offset
        total += cost
    assert money_min >= 0 and money_max <= MAX_EVENT_COST_NUSD
    # The rollups sum exactly to the rows (no Int64 wrap on the way).
    assert (int(minute_sum), int(day_sum)) == (total, total)
    assert minute_events == day_events == len(stored)
    # Not vacuous: valid, refused and unpriced events were all among them.
    assert len(stored) >= 1000 and len(dead_offsets) >= 1000
    assert sum(1 for r in stored if r[11] == "catalog") >= 100
    assert not math.isnan(total)
    assert alive and status == 200 and health["status"] == "ok"
    assert "Traceback" not in stderr.read_text(errors="replace")
