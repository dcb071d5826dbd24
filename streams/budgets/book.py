"""``LedgerBook``: the ledgers of the budgets this worker owns, behind one object.

A worker owns a budget while it holds the budget's partition of ``budget-deltas`` (key =
budget). When it takes a budget over it seeds the ledger from ClickHouse - the period's
stored spend with the source offsets it includes (``streams.budgets.stored``) - and from then
on counts the budget deltas past those offsets (``apply_delta``). ClickHouse is the durable
copy: nothing of a ledger needs to survive a crash, a rebalance or an empty embedded broker,
and the ledger equals ClickHouse's ``FINAL`` sum of the budget's scope and period once the
deltas in flight are counted (docs/exactly-once.md).

Thresholds the stored spend already crossed are marked announced when the ``alerts`` table
holds their alert for this period; one crossed but never recorded (the worker that counted it
died before its alert was stored) is raised now, with its deterministic id, which the
delivery log keeps to one notification per receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_never,
    wait_exponential,
)

from schemas.alerts import Alert
from schemas.budget_status import BudgetStatus
from streams.budgets.control import OverrideCommand
from streams.budgets.delta import BudgetDelta
from streams.budgets.forecast import FORECAST_WINDOW_S, burn_rate
from streams.budgets.ledger import LedgerState
from streams.budgets.model import Budget, Threshold
from streams.budgets.periods import period_bounds
from streams.budgets.spend import (
    _threshold_alert,
    apply_delta,
    threshold_key,
)
from streams.budgets.status import status_of
from streams.budgets.stored import StoredOverride, StoredSpend, seeded_state

log = logging.getLogger("spendwatch.budgets")

SEED_RETRY_FIRST_S = 0.5
SEED_RETRY_MAX_S = 30.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class LedgerStore:
    """The ClickHouse reads a book needs (async; see ``streams.budgets.stored``)."""

    spend: Callable[[Budget, datetime, datetime, datetime], Awaitable[StoredSpend]]
    announced: Callable[[str, datetime], Awaitable[set[str]]]
    override: Callable[[str, datetime], Awaitable[StoredOverride | None]]


class LedgerBook:
    """Ledgers of owned budgets; every method runs on the worker's event loop."""

    def __init__(
        self,
        budgets: Mapping[str, Budget],
        store: LedgerStore,
        clock: Callable[[], datetime],
    ) -> None:
        self.budgets = dict(budgets)
        self.store = store
        self.clock = clock
        self.states: dict[str, LedgerState] = {}
        self.owned: set[str] = set()
        self.dirty: set[str] = set()
        self._seeding: dict[str, asyncio.Task[list[Alert]]] = {}
        self.seed_failures = 0

    # -- ownership ---------------------------------------------------------------------------
    def take(self, names: Iterable[str]) -> list[str]:
        """Own ``names`` (from now on); returns those newly owned, to :meth:`seed`."""
        new = [n for n in sorted(set(names)) if n in self.budgets and n not in self.owned]
        self.owned.update(new)
        return new

    def release(self, names: Iterable[str]) -> None:
        """Stop owning ``names``: their ledgers now live with another worker."""
        for name in names:
            self.owned.discard(name)
            self.states.pop(name, None)
            self.dirty.discard(name)
            task = self._seeding.pop(name, None)
            if task is not None:
                task.cancel()

    @property
    def ready(self) -> bool:
        """Every owned ledger is seeded (status may be published)."""
        return all(name in self.states for name in self.owned)

    # -- seeding -----------------------------------------------------------------------------
    async def seed(self, name: str) -> list[Alert]:
        """Seed ``name``'s ledger from ClickHouse unless it is seeded; the alerts due for
        thresholds crossed by stored spend but never recorded. Concurrent calls share one
        seeding; a failing ClickHouse is retried (a ledger counted from zero could release
        an exhausted budget)."""
        if name in self.states:
            return []
        task = self._seeding.get(name)
        if task is None:
            task = self._seeding[name] = asyncio.create_task(self._seed(name))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and not (current and current.cancelling()):
                return []  # released while seeding (a rebalance); the caller goes on
            raise
        finally:
            if task.done() and self._seeding.get(name) is task:
                del self._seeding[name]

    async def reseed(self) -> list[Alert]:
        """Seed every owned ledger again from ClickHouse (a new usage epoch: see
        ``Pipeline.epoch_changed``); the alerts due, as :meth:`seed`.

        Deltas counted before a ledger is dropped were sent after their rows were written, so
        the new snapshot holds their events; deltas counted after it are checked against its
        positions. A seeding already under way started before the call, so it is awaited and
        done again."""
        alerts: list[Alert] = []
        for name in sorted(self.owned):
            pending = self._seeding.get(name)
            if pending is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.shield(pending)
                if self._seeding.get(name) is pending:
                    del self._seeding[name]  # its alerts went to its own caller
            if name not in self.owned:
                continue
            self.states.pop(name, None)
            alerts += await self.seed(name)
        return alerts

    async def _seed(self, name: str) -> list[Alert]:
        budget = self.budgets[name]

        def failed(call: RetryCallState) -> None:
            self.seed_failures += 1
            exc = call.outcome.exception() if call.outcome else None
            log.warning("budget %s: cannot read ClickHouse (%s); retrying", name, exc)

        # ClickHouse unreachable: wait and try again, never count from zero.
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential(multiplier=SEED_RETRY_FIRST_S, max=SEED_RETRY_MAX_S),
            stop=stop_never,
            before_sleep=failed,
        )
        async for attempt in retrying:
            with attempt:
                now = self.clock()
                start, end = period_bounds(budget, now)
                stored = await self.store.spend(
                    budget, start, end, now - timedelta(seconds=FORECAST_WINDOW_S)
                )
                override = await self.store.override(name, now)
                state, candidates = self._seeded(budget, stored, override, start, end)
                announced = await self.store.announced(name, start)
        alerts: list[Alert] = []
        rate = burn_rate(state, now)
        for threshold, limit in candidates:
            state.fired.append(threshold_key(threshold, limit))
            if threshold.key not in announced:
                alerts.append(_threshold_alert(budget, state, threshold, limit, now, rate))
        if alerts:
            log.warning(
                "budget %s: %d threshold alert(s) crossed by stored spend were never "
                "recorded; raising them now",
                name,
                len(alerts),
            )
        if name in self.owned:
            self.states[name] = state
            self.dirty.add(name)
        log.info(
            "budget %s: ledger seeded from ClickHouse: %d nano-USD in %d events, positions %s",
            name,
            state.spent_nusd,
            state.events,
            state.positions,
        )
        return alerts

    @staticmethod
    def _seeded(
        budget: Budget,
        stored: StoredSpend,
        override: StoredOverride | None,
        start: datetime,
        end: datetime,
    ) -> tuple[LedgerState, list[tuple[Threshold, int]]]:
        state = seeded_state(budget, stored, start, end)
        if stored.burn:  # the forecast window starts at the first stored sample
            state.observed_since = _EPOCH + timedelta(minutes=stored.burn[0][0])
        limit = budget.limit_nusd
        if override is not None:
            state.override_limit_nusd = override.limit_nusd
            state.override_until = override.until
            state.override_reason = override.reason
            state.override_by = override.by
            limit = override.limit_nusd
        crossed = [(t, limit) for t in budget.thresholds if t.crossed(state.spent_nusd, limit)]
        return state, crossed

    # -- counting ----------------------------------------------------------------------------
    async def apply(self, delta: BudgetDelta) -> list[Alert]:
        """Count a delta of an owned budget; the alerts it raises (seeding alerts first)."""
        name = delta.budget
        budget = self.budgets.get(name)
        if budget is None or name not in self.owned:
            return []  # removed from the config, or moved to another worker
        alerts = await self.seed(name)
        state = self.states.get(name)
        if state is None:  # released while seeding
            return alerts
        state, counted = apply_delta(budget, state, delta)
        self.states[name] = state
        self.dirty.add(name)
        return alerts + counted

    async def override(self, command: OverrideCommand) -> list[Alert]:
        """Apply an operator override to an owned budget; the alerts (its announcement)."""
        budget = self.budgets.get(command.budget)
        if budget is None or command.budget not in self.owned:
            return []
        alerts = await self.seed(command.budget)
        state = self.states.get(command.budget)
        if state is None:
            return alerts
        state, alert = command.apply(budget, state)
        self.states[command.budget] = state
        self.dirty.add(command.budget)
        return [*alerts, alert]

    def status(self, name: str, now: datetime) -> BudgetStatus:
        return status_of(self.budgets[name], self.states.get(name), now)
