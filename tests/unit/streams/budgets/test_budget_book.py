"""LedgerBook: seeded from what ClickHouse holds, then counting deltas past its positions."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from streams.budgets import OverrideCommand, load_budgets
from streams.budgets.book import LedgerBook, LedgerStore
from streams.budgets.delta import DeltaBuilder
from streams.budgets.stored import StoredOverride, StoredSpend

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
NOW_US = int(NOW.timestamp()) * 1_000_000
USD = 1_000_000_000
BUDGETS = {b.name: b for b in load_budgets([{"name": "daily", "limit_usd": "10"}], "")}


class Store:
    """What ClickHouse would answer; counts the reads."""

    def __init__(self, spent: int, positions: dict[str, int], announced: set[str]) -> None:
        self.spent, self.positions, self.announced = spent, positions, announced
        self.override: StoredOverride | None = None
        self.reads = 0
        self.fail = 0

    def store(self) -> LedgerStore:
        async def spend(*_: object) -> StoredSpend:
            self.reads += 1
            if self.fail:
                self.fail -= 1
                raise ConnectionError("ClickHouse is down")
            return StoredSpend(self.spent, 3, dict(self.positions), {"service": {"a": self.spent}})

        async def announced(*_: object) -> set[str]:
            return set(self.announced)

        async def override(*_: object) -> StoredOverride | None:
            return self.override

        return LedgerStore(spend=spend, announced=announced, override=override)


def delta(*entries: tuple[int, int, int]) -> object:
    builder = DeltaBuilder("daily")
    for partition, offset, cost in entries:
        builder.add((partition, offset, NOW_US, cost, 0))
    [built] = builder.build("e1")
    return built


def book(store: Store) -> LedgerBook:
    b = LedgerBook(BUDGETS, store.store(), clock=lambda: NOW)
    assert b.take(["daily", "unknown"]) == ["daily"]
    return b


async def test_seed_then_count_only_past_the_snapshot() -> None:
    store = Store(4 * USD, {"e1:0": 9}, set())
    b = book(store)
    assert await b.seed("daily") == []
    alerts = await b.apply(delta((0, 9, 5 * USD), (0, 10, 2 * USD)))  # 9 is in the snapshot
    assert b.states["daily"].spent_nusd == 6 * USD
    assert [a.labels["threshold"] for a in alerts] == ["0.5"]
    assert b.status("daily", NOW).spent_nusd == 6 * USD
    assert store.reads == 1


async def test_a_crossed_threshold_never_recorded_is_raised_once_at_seed() -> None:
    store = Store(9 * USD, {}, announced={"0.5"})  # 80 % crossed, its alert never stored
    b = book(store)
    alerts = await b.seed("daily")
    assert [a.labels["threshold"] for a in alerts] == ["0.8"]
    assert await b.seed("daily") == []
    assert await b.apply(delta((0, 0, USD // 10))) == []  # 91 %: nothing new


async def test_clickhouse_down_delays_the_seed_never_counts_from_zero() -> None:
    store = Store(9 * USD, {}, announced={"0.5", "0.8"})
    store.fail = 2
    b = book(store)
    await b.seed("daily")
    assert store.reads == 3 and b.seed_failures == 2
    assert b.states["daily"].spent_nusd == 9 * USD


async def test_an_override_in_force_is_restored_and_applied() -> None:
    store = Store(12 * USD, {}, announced={"0.5", "0.8", "0.95", "1"})
    store.override = StoredOverride(20 * USD, NOW + timedelta(hours=2), "launch", "ana")
    b = book(store)
    await b.seed("daily")
    status = b.status("daily", NOW)
    assert (status.limit_nusd, status.state) == (20 * USD, "ok")
    command = OverrideCommand(
        budget="daily", limit_usd=Decimal("30"), until=NOW + timedelta(hours=1), at=NOW
    )
    [alert] = await b.override(command)
    assert alert.kind == "override" and b.status("daily", NOW).limit_nusd == 30 * USD


async def test_a_released_budget_is_forgotten_and_ignores_deltas() -> None:
    b = book(Store(0, {}, set()))
    await b.seed("daily")
    b.release(["daily"])
    assert b.states == {} and await b.apply(delta((0, 0, USD))) == []


async def test_a_delta_waiting_on_a_seeding_dropped_by_a_rebalance_returns_nothing() -> None:
    """A revocation releases the budget while the budgets agent waits on its seeding: the
    agent gets no alerts (not a CancelledError that would stop it), and the budget taken
    back is seeded afresh from what ClickHouse holds then."""
    store = Store(USD, {"e1:0": 0}, set())
    gate = asyncio.Event()
    spend = store.store().spend

    async def slow_spend(*args: object) -> StoredSpend:
        await gate.wait()
        return await spend(*args)

    b = LedgerBook(BUDGETS, dataclasses.replace(store.store(), spend=slow_spend), clock=lambda: NOW)
    b.take(["daily"])
    waiting = asyncio.create_task(b.apply(delta((0, 1, USD))))
    await asyncio.sleep(0)
    b.release(["daily"])  # the rebalance
    assert await waiting == [] and b.states == {}
    store.spent, store.positions = 3 * USD, {"e1:0": 1}  # another owner counted offset 1
    gate.set()
    assert b.take(["daily"]) == ["daily"]
    assert await b.seed("daily") == []
    assert b.states["daily"].spent_nusd == 3 * USD


async def test_reseed_counts_what_deltas_lost_and_each_later_delta_once() -> None:
    """A new usage epoch: the delta for offsets 1-2 never arrived (the restarted broker
    dropped it), ClickHouse holds it. The reseed takes it from the snapshot; a copy of it
    arriving late and the delta past the snapshot count once."""
    store = Store(USD, {"e1:0": 0}, set())
    b = book(store)
    await b.seed("daily")
    assert await b.apply(delta((0, 0, USD))) == []  # already in the snapshot
    assert b.states["daily"].spent_nusd == USD
    store.spent, store.positions = 3 * USD, {"e1:0": 2}  # offsets 1 and 2 stored, delta lost
    assert await b.reseed() == []
    assert b.states["daily"].spent_nusd == 3 * USD and store.reads == 2
    await b.apply(delta((0, 1, USD), (0, 2, USD)))  # the lost delta, late: nothing new
    alerts = await b.apply(delta((0, 3, 2 * USD)))
    assert b.states["daily"].spent_nusd == 5 * USD
    assert [a.labels["threshold"] for a in alerts] == ["0.5"]


async def test_reseed_skips_budgets_no_longer_owned() -> None:
    store = Store(USD, {}, set())
    b = book(store)
    await b.seed("daily")
    b.release(["daily"])
    assert await b.reseed() == [] and b.states == {} and store.reads == 1
