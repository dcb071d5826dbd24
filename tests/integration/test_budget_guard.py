"""The overrun protocol's SDK side against a real Tansu broker.

Budget statuses are computed with the real ledger maths (apply_spend / apply_override /
status_of) and published to a budget-status topic as the worker does; the SDK follower reads
them in its own thread; the guard blocks, lets through after an override, and degrades.
``spendwatch budgets override`` publishes a real command to the control topic, which is read
back, applied and announced. (The worker-driven fleet overrun test lives with the worker.)
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from spendwatch.guard import BudgetExceeded, guard
from spendwatch.status import BudgetStatusFollower

from schemas.alerts import alert_id_for
from streams.broker import TansuBroker, create_topics, free_port
from streams.budgets import (
    LedgerState,
    OverrideCommand,
    apply_override,
    apply_spend,
    load_budgets,
    period_bounds,
    status_of,
)
from streams.budgets.cli import register
from streams.topics import CONTROL

pytestmark = pytest.mark.integration
USD = 1_000_000_000
BUDGETS = load_budgets(
    [
        {"name": "growth", "limit_usd": "100", "match": {"tags": {"team": "growth"}}},
        {
            "name": "chat",
            "limit_usd": "10",
            "match": {"service": "chat"},
            "degrade_to": {"gpt-4o": "gpt-4o-mini"},
            "on_exhausted": "degrade",
        },
    ]
)
GROWTH, CHAT = BUDGETS


@pytest.fixture(scope="module")
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as running:
        yield running


async def publish(bootstrap: str, topic: str, records: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()


async def read_all(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 15.0
) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    out: list[tuple[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(out) < expected and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                out += [(r.key, r.value) for r in records]
        await asyncio.sleep(0.3)  # an extra record would show up here
        for records in (await consumer.getmany(timeout_ms=200)).values():
            out += [(r.key, r.value) for r in records]
    finally:
        await consumer.stop()
    return out


def spend(
    state: LedgerState | None, budget_name: str, usd: int, now: datetime, **event: object
) -> LedgerState:
    budget = {b.name: b for b in BUDGETS}[budget_name]
    base = {
        "event_id": str(uuid.uuid4()),
        "service": "chat",
        "provider": "openai",
        "model": "gpt-4o",
    }
    evt = {**base, **event}
    assert budget.matches(evt)
    state, _ = apply_spend(budget, state, event=evt, cost_nusd=usd * USD, ts=now)
    return state


def test_guard_blocks_then_passes_after_override_and_degrades(broker: TansuBroker) -> None:
    bootstrap = broker.bootstrap_servers
    topic = f"budget-status-{uuid.uuid4().hex[:10]}"
    asyncio.run(create_topics(bootstrap, [topic]))
    now = datetime.now(UTC)
    growth_state = spend(None, "growth", 60, now, tags={"team": "growth"})
    first = status_of(GROWTH, growth_state, now)  # 60 %: ok
    growth_state = spend(growth_state, "growth", 45, now, tags={"team": "growth"})
    exhausted = status_of(GROWTH, growth_state, now)  # 105 of 100
    chat_state = spend(None, "chat", 12, now)
    chat = status_of(CHAT, chat_state, now)
    assert (first.state, exhausted.state, chat.state) == ("ok", "exhausted", "exhausted")
    asyncio.run(
        publish(
            bootstrap,
            topic,
            [
                ("growth", first.to_json()),
                ("chat", chat.to_json()),
                ("growth", exhausted.to_json()),
            ],
        )
    )

    follower = BudgetStatusFollower(bootstrap, topic=topic).start()
    try:
        assert follower.wait_caught_up(20)
        assert follower.wait_for(lambda s: {"growth", "chat"} <= set(s), 5)
        assert follower.get("growth").state == "exhausted"  # type: ignore[union-attr]  # latest per key
        assert follower.records_read == 3 and follower.records_bad == 0
        age = follower.age_s
        assert age is not None and age < 5

        g = guard(["growth"], follower=follower)
        kwargs = {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 5,
        }
        with pytest.raises(BudgetExceeded) as info:
            g.before_call("openai", "gpt-4o", kwargs)
        exc = info.value
        assert exc.budget == "growth"
        assert (exc.spent_usd, exc.limit_usd) == (Decimal(105), Decimal(100))
        assert exc.reset_at == exhausted.reset_at
        assert exc.reset_at == period_bounds(GROWTH, now)[1]  # next UTC midnight

        # The operator raises the limit; the worker applies it and republishes the status.
        growth_state, alert = apply_override(
            GROWTH, growth_state, 200 * USD, now + timedelta(hours=2), now
        )
        assert alert.kind == "override"
        raised = status_of(GROWTH, growth_state, now)
        assert (raised.state, raised.limit_nusd) == ("ok", 200 * USD)
        asyncio.run(publish(bootstrap, topic, [("growth", raised.to_json())]))
        assert follower.wait_for(lambda s: s["growth"].state == "ok", 20)
        assert g.before_call("openai", "gpt-4o", kwargs) is kwargs
        assert follower.get("growth").limit_nusd == 200 * USD  # type: ignore[union-attr]

        # The chat budget is exhausted too: a degrading guard swaps to the cheaper model.
        g2 = guard(["chat"], action="degrade", degrade_to=dict(CHAT.degrade_to), follower=follower)
        out = g2.before_call("openai", "gpt-4o", kwargs)
        assert out == {**kwargs, "model": "gpt-4o-mini"}
        assert (g.stats.blocked, g2.stats.degraded) == (1, 1)
    finally:
        follower.stop()


def test_cli_override_is_published_and_applied(broker: TansuBroker, tmp_path: Path) -> None:
    bootstrap = broker.bootstrap_servers
    asyncio.run(create_topics(bootstrap, [CONTROL]))
    config = tmp_path / "spendwatch.toml"
    config.write_text(
        f'[kafka]\nbootstrap_servers = "{bootstrap}"\n\n'
        '[[budgets]]\nname = "growth"\nlimit_usd = "100"\nmatch = { tags = { team = "growth" } }\n'
    )
    parser = argparse.ArgumentParser(prog="spendwatch")
    register(parser.add_subparsers())
    args = parser.parse_args(
        ["budgets", "override", "growth", "--limit-usd", "250", "--for", "90m",
         "--reason", "launch day", "--by", "ana", "--config", str(config)]
    )  # fmt: skip
    at = datetime(2024, 5, 17, 9, 0, tzinfo=UTC)
    out = io.StringIO()
    assert args.func(args, now=at, out=out) == 0
    printed = orjson.loads(out.getvalue())
    assert printed == {
        "schema_version": 1,
        "command": "override",
        "budget": "growth",
        "limit_usd": "250",
        "until": "2024-05-17T10:30:00+00:00",
        "reason": "launch day",
        "by": "ana",
        "at": "2024-05-17T09:00:00+00:00",
    }

    ((key, value),) = asyncio.run(read_all(bootstrap, CONTROL, 1))
    assert key == b"growth" and orjson.loads(value) == printed

    # What the worker does with it: decode, apply to the ledger, announce.
    command = OverrideCommand.from_json(value)
    state = spend(None, "growth", 120, at, tags={"team": "growth"})
    assert status_of(GROWTH, state, at).state == "exhausted"
    state, alert = command.apply(GROWTH, state)
    until = at + timedelta(minutes=90)
    assert alert.alert_id == alert_id_for(
        "override", "growth", at.isoformat(), 250 * USD, until.isoformat()
    )
    assert alert.figures["limit_usd"] == "250.00" and alert.figures["by"] == "ana"
    status = status_of(GROWTH, state, at + timedelta(minutes=1))
    assert (status.state, status.limit_nusd, status.override_until) == ("ok", 250 * USD, until)
    assert status_of(GROWTH, state, until).state == "exhausted"  # the override has expired


def test_follower_fails_open_until_the_broker_comes(tmp_path: Path) -> None:
    """No broker yet: the guard lets calls through (status unknown) and never raises; once
    the broker is up the follower connects by itself and the guard enforces."""
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    topic = f"budget-status-{uuid.uuid4().hex[:10]}"
    follower = BudgetStatusFollower(bootstrap, topic=topic, reconnect_max_s=0.5).start()
    try:
        g = guard(["growth"], follower=follower)
        started = time.monotonic()
        assert g.check("openai", "gpt-4o").model == "gpt-4o"
        assert time.monotonic() - started < 0.05  # instant: no network on the call path
        assert follower.age_s is None and g.stats.unknown == 1
        time.sleep(0.5)
        assert follower.connection_errors >= 1

        late = TansuBroker(port=port).start()
        try:
            asyncio.run(create_topics(bootstrap, [topic]))
            now = datetime.now(UTC)
            state = spend(None, "growth", 150, now, tags={"team": "growth"})
            asyncio.run(
                publish(bootstrap, topic, [("growth", status_of(GROWTH, state, now).to_json())])
            )
            assert follower.wait_for(lambda s: "growth" in s, 20)
            with pytest.raises(BudgetExceeded):
                g.check("openai", "gpt-4o")
        finally:
            # Tansu waits for open connections on SIGTERM; memory storage loses nothing here.
            late.stop(grace_s=0.5)
        # The broker is gone again: the last known status still holds (the period has not reset).
        with pytest.raises(BudgetExceeded):
            g.check("openai", "gpt-4o")
    finally:
        follower.stop()


def test_follower_can_start_near_the_end_of_an_uncompacted_topic(broker: TansuBroker) -> None:
    bootstrap = broker.bootstrap_servers
    topic = f"budget-status-{uuid.uuid4().hex[:10]}"
    asyncio.run(create_topics(bootstrap, [topic]))
    now = datetime.now(UTC)
    growth, chat = None, None
    records: list[tuple[str, bytes]] = []
    for usd in (10, 20, 30):  # spent: growth 10, chat 1, growth 30, chat 2, growth 60
        growth = spend(growth, "growth", usd, now, tags={"team": "growth"})
        records.append(("growth", status_of(GROWTH, growth, now).to_json()))
        if usd < 30:
            chat = spend(chat, "chat", 1, now)
            records.append(("chat", status_of(CHAT, chat, now).to_json()))
    asyncio.run(publish(bootstrap, topic, records))  # one record per batch: exact end offsets

    follower = BudgetStatusFollower(bootstrap, topic=topic, tail_records=2).start()
    try:
        assert follower.wait_caught_up(20)
        assert follower.records_read == 2
        statuses = follower.statuses()
        assert statuses["growth"].spent_nusd == 60 * USD and statuses["chat"].spent_nusd == 2 * USD
    finally:
        follower.stop()
