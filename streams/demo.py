"""The demo fleet for ``spendwatch up --demo``: agents on several models and metered APIs whose
spend crosses a $2.00 daily budget in about ``cross_after_s`` seconds, so that the 50/80/95/100 %
threshold alerts all fire within a minute.

Events go through the real SDK (``import spendwatch``) to the broker. The generator prices
its own events with the worker's :class:`~streams.pricing.Pricer` only to pace itself.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas.money import usd_to_nusd
from streams.pricing import Pricer, PriceTable

DEMO_CONFIG = """\
# spendwatch demo configuration (written by `spendwatch up --demo` when no config is given).

[worker]
http_host = "127.0.0.1"
http_port = 8787

[clickhouse]
dsn = "chdb:///.spendwatch/chdb"

# Prices for metered APIs that are not LLMs (LLM prices come from genai-prices).
[[prices]]
provider = "polygon"
unit = "request"
usd_per_unit = "0.004"

[[prices]]
provider = "hubspot"
unit = "record"
usd_per_unit = "0.0015"

[[prices]]
provider = "twilio"
unit = "minute"
usd_per_unit = "0.014"

[[prices]]
provider = "sendgrid"
unit = "email"
usd_per_unit = "0.0006"

# A 39-agent fleet that is meant to run on $2.00 a day. The budget covers this demo run's
# traffic only, so every run crosses its thresholds afresh (the worker otherwise continues a
# budget from the spend already stored in ClickHouse for the day).
[[budgets]]
name = "fleet-daily"
period = "day"
timezone = "UTC"
limit_usd = "2.00"
per_request_limit_usd = "0.25"
match = { tags = { demo_run = "RUN_ID" } }

[alerting]
group_wait_s = 0
group_interval_s = 1
# The demo crosses 95 % and 100 % about a second apart: show every threshold instead of
# letting the higher one inhibit the lower (the default, and right for a real on-call).
default_inhibit = false

[[alerting.receivers]]
name = "console"
type = "console"

# What the console (http://127.0.0.1:8787/) and `spendwatch report` break spend down by.
[report]
tag = "team"
unit_tags = ["lead", "call_id"]           # cost per lead enriched and per voice call

[report.tiers]
"tier 1 (small)" = ["*haiku*", "gpt-4o-mini*"]
"tier 2 (large)" = ["gpt-4o", "gpt-4o-2*", "*sonnet*"]
"tier 3 (reasoning)" = ["o1*", "o3*", "o4*"]
"""

# (service, operation, fields) — fields are merged into the event; token counts get jitter.
_FLEET: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "research-agent",
        "chat",
        {
            "provider": "openai",
            "model": "gpt-4o",
            "input_tokens": 1800,
            "output_tokens": 300,
            "cache_read_tokens": 1024,
        },
    ),
    (
        "research-agent",
        "chat",
        {
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "input_tokens": 1600,
            "output_tokens": 250,
            "cache_read_tokens": 1000,
            "cache_write_tokens": 200,
        },
    ),
    (
        "support-bot",
        "chat",
        {"provider": "openai", "model": "gpt-4o-mini", "input_tokens": 1200, "output_tokens": 200},
    ),
    (
        "support-bot",
        "chat",
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "input_tokens": 1200,
            "output_tokens": 200,
            "cache_hit": True,
        },
    ),
    (
        "lead-enricher",
        "chat",
        {
            "provider": "anthropic",
            "model": "claude-3-5-haiku-latest",
            "input_tokens": 1500,
            "output_tokens": 150,
        },
    ),
    ("lead-enricher", "quote", {"provider": "polygon", "unit": "request", "quantity": "1"}),
    ("lead-enricher", "crm_sync", {"provider": "hubspot", "unit": "record", "quantity": "5"}),
    ("voice-agent", "call", {"provider": "twilio", "unit": "minute", "quantity": "1.5"}),
    ("email-outreach", "send", {"provider": "sendgrid", "unit": "email", "quantity": "10"}),
    (
        "reasoning-agent",
        "plan",
        {
            "provider": "openai",
            "model": "o3-mini",
            "input_tokens": 1500,
            "output_tokens": 1200,
            "reasoning_tokens": 900,
        },
    ),
)


def demo_config(run_id: str) -> str:
    """The demo configuration for one run (its budget covers that run's events)."""
    return DEMO_CONFIG.replace("RUN_ID", run_id)


@dataclass
class DemoFleet:
    """Generates the demo traffic on a background thread until :meth:`stop`."""

    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    limit_usd: str = "2.00"
    cross_after_s: float = 40.0
    invalid_every: int = 50
    error_share: float = 0.04
    sent_valid: int = 0
    sent_invalid: int = 0
    spent_nusd: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _leads: random.Random = field(default_factory=lambda: random.Random(11))
    _thread: threading.Thread | None = None

    def start(self, prices: PriceTable) -> None:
        pricer = Pricer(prices)
        self._thread = threading.Thread(
            target=self._run, args=(pricer,), name="demo-fleet", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _event(self, rng: random.Random) -> tuple[str, str, dict[str, Any]]:
        service, operation, fields = rng.choice(_FLEET)
        jittered = dict(fields)
        scale = rng.uniform(0.6, 1.4)
        for key in ("input_tokens", "output_tokens"):
            if key in jittered:
                jittered[key] = int(jittered[key] * scale)
        for key in ("cache_read_tokens", "cache_write_tokens"):
            if key in jittered:
                jittered[key] = min(jittered[key], jittered["input_tokens"] // 2)
        if "reasoning_tokens" in jittered:
            jittered["reasoning_tokens"] = min(
                jittered["reasoning_tokens"], jittered["output_tokens"]
            )
        tags = {
            "team": service.split("-")[0],
            "agent": f"{service}-{rng.randint(1, 8)}",
            "demo_run": self.run_id,
        }
        # Units the console and reports cost per: a lead enriched, a voice call.
        if service == "lead-enricher":
            tags["lead"] = f"lead-{self._leads.randint(1, 40):03d}"
        elif service == "voice-agent":
            tags["call_id"] = f"call-{rng.randint(1, 10_000)}"
        jittered["tags"] = tags
        if "model" in jittered and rng.random() < self.error_share:
            # A rate-limited call: nothing billed, but it counts in the provider's error rate.
            jittered.update(status="error", error_type="RateLimitError", output_tokens=0)
            jittered["input_tokens"] = 0
            for key in ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
                jittered.pop(key, None)
        return service, operation, jittered

    def _run(self, pricer: Pricer) -> None:
        import spendwatch  # the SDK, configured by the caller
        from spendwatch import runtime as sdk_runtime

        rng = random.Random(7)
        rate_nusd_per_s = usd_to_nusd(self.limit_usd) / self.cross_after_s
        started = time.monotonic()
        while not self._stop.is_set():
            due = rate_nusd_per_s * (time.monotonic() - started)
            while self.spent_nusd < due and not self._stop.is_set():
                service, operation, fields = self._event(rng)
                event = {
                    "schema_version": 1,
                    "event_id": str(uuid.uuid4()),
                    "ts": datetime.now(UTC).isoformat(),
                    "service": service,
                    "operation": operation,
                    "status": "ok",
                    **fields,
                }
                self.spent_nusd += pricer.price(event).cost_nusd
                spendwatch.record(operation, service=service, **{"status": "ok", **fields})
                self.sent_valid += 1
                if self.sent_valid % self.invalid_every == 0:
                    # A malformed event on purpose (as an old or foreign producer might send
                    # it, past the SDK's own checks): it must land in the dead-letter table.
                    bad = {**event, "event_id": str(uuid.uuid4()), "input_tokens": -1}
                    sdk_runtime.submit(bad)
                    self.sent_invalid += 1
            time.sleep(0.05)
