"""The whole pipeline end to end on the embedded default.

SDK → real Tansu broker → the worker process (Faust) → chDB, plus the four threshold alerts
delivered to a loopback HTTP server speaking the Slack incoming-webhook API.

Expected figures are computed here independently of the pipeline: LLM costs with
``genai_prices.calc_price`` (the reference the pricer's cache must match), metered units with
``Decimal`` arithmetic from the price table written into the config below.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest
import spendwatch
from genai_prices import Usage, calc_price
from spendwatch import runtime as sdk_runtime

from streams import topics
from streams.broker import TansuBroker, create_topics
from tests.support.slack_server import SlackServer
from tests.support.worker import running_worker, wait_for

pytestmark = pytest.mark.integration

TOTAL_EVENTS = 10_000
INVALID_EVENTS = 100
UNIT_PRICES = {("polygon", "request"): Decimal("0.004"), ("twilio", "minute"): Decimal("0.014")}
NANO = Decimal("1e-9")

# (service, provider, model) — several services and models, some with cached tokens.
LLM_CALLS = (
    ("research-agent", "openai", "gpt-4o"),
    ("research-agent", "anthropic", "claude-sonnet-4-5"),
    ("support-bot", "openai", "gpt-4o-mini"),
    ("lead-enricher", "anthropic", "claude-3-5-haiku-latest"),
    ("planner", "openai", "o3-mini"),
)


@dataclass
class Planned:
    service: str
    fields: dict[str, Any]
    cost_nusd: int


def to_nusd(usd: Decimal) -> int:
    return int(usd.quantize(NANO, rounding=ROUND_HALF_EVEN).scaleb(9))


def plan_events(ts: datetime) -> list[Planned]:
    """9,900 valid events with their independently computed costs."""
    rng = random.Random(20261123)
    planned: list[Planned] = []
    for i in range(TOTAL_EVENTS - INVALID_EVENTS):
        if i % 10 == 9:
            provider, unit = ("polygon", "request") if i % 20 == 9 else ("twilio", "minute")
            quantity = Decimal(rng.randint(1, 40)) / 4
            fields = {"provider": provider, "unit": unit, "quantity": str(quantity)}
            planned.append(
                Planned("market-data", fields, to_nusd(quantity * UNIT_PRICES[(provider, unit)]))
            )
            continue
        service, provider, model = LLM_CALLS[i % len(LLM_CALLS)]
        inp = rng.randint(50, 20_000)
        out = rng.randint(10, 3_000)
        fields = {"provider": provider, "model": model, "input_tokens": inp, "output_tokens": out}
        cache_read = rng.randint(0, inp // 2) if i % 3 == 0 else 0
        if cache_read:
            fields["cache_read_tokens"] = cache_read
        if model == "o3-mini":
            fields["reasoning_tokens"] = rng.randint(0, out)
        usage = Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cache_read or None)
        price = calc_price(usage, model, provider_id=provider, genai_request_timestamp=ts)
        planned.append(Planned(service, fields, to_nusd(price.total_price)))
    return planned


@pytest.fixture
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as b:
        asyncio.run(create_topics(b.bootstrap_servers, topics.ALL, 2))
        yield b


@pytest.fixture
def sdk() -> Iterator[None]:
    yield
    spendwatch.shutdown(5.0)


def test_ten_thousand_events_end_to_end(
    broker: TansuBroker, slack: SlackServer, sdk: None, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    planned = plan_events(now)
    expected_nusd = sum(p.cost_nusd for p in planned)
    expected_by_service: dict[str, int] = {}
    for p in planned:
        expected_by_service[p.service] = expected_by_service.get(p.service, 0) + p.cost_nusd
    # The budget's limit sits just under the total so that all four thresholds are crossed.
    limit_usd = (Decimal(expected_nusd) * Decimal("0.99")).scaleb(-9).quantize(NANO)
    config = f"""
[kafka]
bootstrap_servers = "{broker.bootstrap_servers}"
partitions = 2

[worker]
http_port = {{http_port}}
state_dir = "{tmp_path / "state"}"

[clickhouse]
dsn = "chdb://{tmp_path / "chdb"}"

[[prices]]
provider = "polygon"
unit = "request"
usd_per_unit = "0.004"

[[prices]]
provider = "twilio"
unit = "minute"
usd_per_unit = "0.014"

[[budgets]]
name = "fleet-daily"
period = "day"
limit_usd = "{limit_usd}"

[alerting]
group_wait_s = 0
group_interval_s = 1
group_by = ["alert_id"]     # one message per alert: this test counts them
default_inhibit = false     # all four thresholds may cross within one batch here

[[alerting.receivers]]
name = "oncall"
type = "slack"
webhook_url = "{slack.webhook_url()}"
"""
    with running_worker(config, tmp_path) as worker:
        query = worker.query
        spendwatch.configure(bootstrap_servers=broker.bootstrap_servers, service="pipeline-test")
        rng = random.Random(5)
        invalid_at = set(rng.sample(range(TOTAL_EVENTS), INVALID_EVENTS))
        valid = iter(planned)
        for i in range(TOTAL_EVENTS):
            if i in invalid_at:
                # Bypasses the SDK's own checks, as an old or foreign producer would.
                bad = {
                    "schema_version": 1,
                    "event_id": f"not-a-uuid-{i}",
                    "service": "rogue",
                    "operation": "chat",
                    "status": "ok",
                    "ts": now.isoformat(),
                }
                sdk_runtime.submit(bad)
                continue
            p = next(valid)
            spendwatch.record("chat", service=p.service, ts=now, **p.fields)
        assert spendwatch.flush(60.0)
        assert spendwatch.stats().dropped == 0

        wait_for(
            lambda: query("SELECT count() FROM usage_events") == [[TOTAL_EVENTS - INVALID_EVENTS]],
            120,
            "9,900 priced rows",
        )
        wait_for(
            lambda: query("SELECT count() FROM deadletter") == [[INVALID_EVENTS]],
            60,
            "100 dead letters",
        )
        [[rows, total_nusd, total_usd]] = query(
            "SELECT count(), sum(cost_nusd), toString(sum(cost_usd)) FROM usage_events"
        )
        assert rows == TOTAL_EVENTS - INVALID_EVENTS
        assert total_nusd == expected_nusd
        assert Decimal(total_usd) == Decimal(expected_nusd).scaleb(-9)
        by_service = dict(
            (s, n)
            for s, n in query("SELECT service, sum(cost_nusd) FROM usage_events GROUP BY service")
        )
        assert by_service == expected_by_service
        [[letters, with_reason, schema_reason]] = query(
            "SELECT count(), countIf(reason != ''), countIf(reason_code = 'schema') "
            "FROM deadletter",
        )
        assert (letters, with_reason, schema_reason) == (
            INVALID_EVENTS,
            INVALID_EVENTS,
            INVALID_EVENTS,
        )

        # Exactly four threshold alerts reach Slack, one per threshold, and no repeats.
        wait_for(lambda: len(slack.delivered) >= 4, 60, "four Slack messages")
        time.sleep(3.0)
        texts = [m.text for m in slack.delivered]
        assert len(texts) == 4, texts
        for percent in ("50%", "80%", "95%", "100%"):
            assert sum(percent in t for t in texts) == 1, (percent, texts)
        [[alert_rows]] = query("SELECT count() FROM alerts WHERE kind = 'threshold'")
        assert alert_rows == 4
        wait_for(
            lambda: (
                query(
                    "SELECT receiver, count() FROM alert_deliveries WHERE outcome = 'sent' "
                    "GROUP BY receiver"
                )
                == [["oncall", 4]]
            ),
            30,
            "four delivery records",
        )
