"""Following ``spendwatch.budget-status.v1``: the latest status of every budget, kept locally.

The worker publishes a budget's status (JSON, keyed by budget name) whenever it changes and
periodically. :class:`BudgetStatusFollower` reads that topic from the beginning in a daemon
thread with its own asyncio loop and aiokafka consumer - no consumer group (partitions are
assigned manually), so any number of processes can follow it and nothing is committed. The
broker may not compact the topic (Tansu cannot), so it reads every record and keeps the last
one per key. A lost connection is retried with capped backoff from the positions already
read. Reads (``get`` / ``statuses``) are lock-free dictionary look-ups: no network per call.

The JSON format is the pipeline's ``schemas/budget_status.py``; it is parsed here again on
purpose so the SDK does not depend on the pipeline package.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Protocol

import orjson

from .backoff import Backoff
from .money import nusd_to_usd

log = logging.getLogger("spendwatch")

TOPIC: Final = "spendwatch.budget-status.v1"
_STATES: Final = frozenset({"ok", "warning", "critical", "exhausted"})
_FIRST_BACKOFF_S: Final = 0.1
_MAX_BACKOFF_S: Final = 5.0


def _ts(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{name}: expected an ISO 8601 string, got {value!r}")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"{name}: timestamp has no offset")
    return parsed.astimezone(UTC)


def _int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """One budget's state in its current period, as the worker last published it.

    Money is integer nano-USD (``spent_usd`` / ``limit_usd`` give exact ``Decimal`` USD).
    ``limit_nusd`` is the effective limit (an operator override included). ``on_exhausted``
    and ``degrade_to`` are read when the worker publishes them (optional fields).
    """

    budget: str
    period_start: datetime
    reset_at: datetime
    spent_nusd: int
    limit_nusd: int
    fraction: str
    state: str
    updated_at: datetime
    projected_runout_at: datetime | None = None
    per_request_limit_nusd: int | None = None
    override_until: datetime | None = None
    on_exhausted: str | None = None
    degrade_to: Mapping[str, str] = field(default_factory=dict)
    received_at_monotonic: float = 0.0

    @property
    def spent_usd(self) -> Decimal:
        return nusd_to_usd(self.spent_nusd)

    @property
    def limit_usd(self) -> Decimal:
        return nusd_to_usd(self.limit_nusd)

    @property
    def exhausted(self) -> bool:
        return self.state == "exhausted"

    def current_at(self, now: datetime) -> bool:
        """False once the period has ended: then the status no longer says anything."""
        return now < self.reset_at

    @classmethod
    def from_json(cls, raw: bytes, *, received_at_monotonic: float = 0.0) -> BudgetStatus:
        """Parse the worker's JSON; raises ``ValueError`` naming the bad field."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"budget status is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError("budget status is not a JSON object")
        try:
            state = data["state"]
            if state not in _STATES:
                raise ValueError(f"state: unknown {state!r}")
            optional_ts = {
                key: _ts(data[key], key) if data.get(key) else None
                for key in ("projected_runout_at", "override_until")
            }
            per_request = data.get("per_request_limit_nusd")
            degrade_to = data.get("degrade_to") or {}
            if not isinstance(degrade_to, dict):
                raise ValueError("degrade_to: expected an object")
            on_exhausted = data.get("on_exhausted")
            return cls(
                budget=str(data["budget"]),
                period_start=_ts(data["period_start"], "period_start"),
                reset_at=_ts(data["reset_at"], "reset_at"),
                spent_nusd=_int(data["spent_nusd"], "spent_nusd"),
                limit_nusd=_int(data["limit_nusd"], "limit_nusd"),
                fraction=str(data.get("fraction", "")),
                state=state,
                updated_at=_ts(data["updated_at"], "updated_at"),
                per_request_limit_nusd=None
                if per_request is None
                else _int(per_request, "per_request_limit_nusd"),
                on_exhausted=str(on_exhausted) if on_exhausted else None,
                degrade_to={str(k): str(v) for k, v in degrade_to.items()},
                received_at_monotonic=received_at_monotonic,
                **optional_ts,
            )
        except KeyError as exc:
            raise ValueError(f"budget status lacks {exc.args[0]!r}") from None


class StatusSource(Protocol):
    """What the guard reads statuses from: a follower, or :class:`StaticStatuses` in tests."""

    def get(self, budget: str) -> BudgetStatus | None: ...

    def ensure_running(self) -> None: ...

    @property
    def age_s(self) -> float | None: ...


class StaticStatuses:
    """An in-memory :class:`StatusSource`: statuses set by hand (for tests of guarded code)."""

    def __init__(self, statuses: Mapping[str, BudgetStatus] | None = None) -> None:
        self._statuses = dict(statuses or {})
        self.age_s: float | None = 0.0

    def set(self, status: BudgetStatus) -> None:
        self._statuses[status.budget] = status

    def remove(self, budget: str) -> None:
        self._statuses.pop(budget, None)

    def get(self, budget: str) -> BudgetStatus | None:
        return self._statuses.get(budget)

    def ensure_running(self) -> None:
        return None


class BudgetStatusFollower:
    """Keeps the latest :class:`BudgetStatus` per budget from the status topic.

    ``start()`` launches the daemon thread (idempotent); ``stop()`` ends it. ``age_s`` is the
    time since the broker last answered a fetch (None before the first answer): while it is
    small, the statuses held are at most that stale (plus the worker's publish interval).
    Safe after ``os.fork``: the child restarts its own thread on the next ``ensure_running``.

    ``tail_records``: None reads each partition from its beginning (right for a compacted
    topic, as production Kafka should be configured). Without compaction the topic grows with
    every periodic status; then start ``tail_records`` before the end instead, which is enough
    while the worker republishes every budget's status more often than that many records.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic: str = TOPIC,
        poll_timeout_ms: int = 500,
        consumer_options: Mapping[str, Any] | None = None,
        reconnect_max_s: float = _MAX_BACKOFF_S,
        tail_records: int | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.tail_records = tail_records
        self.reconnect_max_s = reconnect_max_s
        self.topic = topic
        self.poll_timeout_ms = poll_timeout_ms
        self.consumer_options = dict(consumer_options or {})
        self._statuses: dict[str, BudgetStatus] = {}
        self._positions: dict[int, int] = {}  # partition -> next offset to read
        self._last_answer: float | None = None
        self._caught_up = threading.Event()
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._start_lock = threading.Lock()
        self.records_read = 0
        self.records_bad = 0
        self.connection_errors = 0

    # -- reading (any thread) ---------------------------------------------------------

    def get(self, budget: str) -> BudgetStatus | None:
        """Latest status of ``budget`` (None if none was seen). Never blocks."""
        return self._statuses.get(budget)

    def statuses(self) -> dict[str, BudgetStatus]:
        """A snapshot of every budget's latest status."""
        return dict(self._statuses)

    @property
    def age_s(self) -> float | None:
        """Seconds since the broker last answered (None if it never did)."""
        last = self._last_answer
        return None if last is None else time.monotonic() - last

    @property
    def caught_up(self) -> bool:
        """True once everything that was on the topic at connection time has been read."""
        return self._caught_up.is_set()

    def wait_caught_up(self, timeout_s: float) -> bool:
        """Wait (e.g. at app start) until the topic's backlog is read; False on timeout."""
        self.ensure_running()
        return self._caught_up.wait(timeout_s)

    def wait_for(
        self, predicate: Callable[[dict[str, BudgetStatus]], bool], timeout_s: float
    ) -> bool:
        """Wait until ``predicate(statuses)`` holds (checked on every change); False on timeout."""
        self.ensure_running()
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not predicate(dict(self._statuses)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.5))
        return True

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> BudgetStatusFollower:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._thread = threading.Thread(
                    target=self._run, name="spendwatch-budget-status", daemon=True
                )
                self._thread.start()
        return self

    def ensure_running(self) -> None:
        """Start the thread if it is not running (first use, or in a forked child)."""
        if self._pid != os.getpid():
            # The parent's thread does not exist in the child; its statuses are still useful.
            self._pid = os.getpid()
            self._thread = None
            self._start_lock = threading.Lock()
            self._changed = threading.Condition()
            self._last_answer = None
        if (self._thread is None or not self._thread.is_alive()) and not self._stopping.is_set():
            self.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop following; the statuses held stay readable."""
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout_s)

    # -- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._follow())
        except BaseException:  # never let the thread die with a traceback into the host app
            log.exception("spendwatch: budget status follower stopped")
        finally:
            with contextlib.suppress(BaseException):
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _follow(self) -> None:
        backoff = Backoff(_FIRST_BACKOFF_S, self.reconnect_max_s)
        while not self._stopping.is_set():
            try:
                await self._session()
                backoff.reset()
            except (Exception, asyncio.CancelledError) as exc:
                # aiokafka can surface a dropped connection as CancelledError from getmany.
                self.connection_errors += 1
                log.debug("spendwatch: budget status follower: %r; retrying", exc)
            deadline = time.monotonic() + backoff.next_s()
            # stop() sets a threading.Event from another thread: poll it in short naps.
            while not self._stopping.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)

    async def _session(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        options: dict[str, Any] = {
            "group_id": None,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "metadata_max_age_ms": 5_000,
            "client_id": "spendwatch-guard",
            **self.consumer_options,
        }
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers, **options)
        try:
            await consumer.start()
            partitions: set[int] | None = None
            while not self._stopping.is_set():
                if self.topic in await consumer.topics():
                    partitions = consumer.partitions_for_topic(self.topic)
                    if partitions:
                        break
                self._last_answer = time.monotonic()  # the broker answers; no topic yet
                await asyncio.sleep(0.5)
            if not partitions:
                return
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            starts = await consumer.beginning_offsets(tps) if self.tail_records else {}
            for tp in tps:
                if tp.partition in self._positions:
                    consumer.seek(tp, self._positions[tp.partition])
                elif self.tail_records:
                    consumer.seek(tp, max(starts.get(tp, 0), ends.get(tp, 0) - self.tail_records))
                else:
                    await consumer.seek_to_beginning(tp)
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=self.poll_timeout_ms)
                now = time.monotonic()
                self._last_answer = now
                changed = False
                for tp, records in batches.items():
                    for record in records:
                        changed |= self._apply(record.key, record.value, now)
                        self._positions[tp.partition] = record.offset + 1
                if changed:
                    with self._changed:
                        self._changed.notify_all()
                if not self._caught_up.is_set() and all(
                    self._positions.get(tp.partition, 0) >= ends.get(tp, 0) for tp in tps
                ):
                    self._caught_up.set()
                    with self._changed:
                        self._changed.notify_all()
        finally:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await consumer.stop()

    def _apply(self, key: bytes | None, value: bytes | None, now: float) -> bool:
        self.records_read += 1
        if value is None:  # a tombstone: the budget was removed
            if key is not None:
                return self._statuses.pop(key.decode(errors="replace"), None) is not None
            return False
        try:
            status = BudgetStatus.from_json(value, received_at_monotonic=now)
        except ValueError as exc:
            self.records_bad += 1
            log.debug("spendwatch: ignoring a bad budget status: %s", exc)
            return False
        self._statuses[status.budget] = status
        return True


_shared_lock = threading.Lock()
_shared: dict[tuple[str, str], BudgetStatusFollower] = {}


def shared_follower(bootstrap_servers: str, topic: str = TOPIC) -> BudgetStatusFollower:
    """One started follower per (bootstrap servers, topic) in this process, shared by guards."""
    with _shared_lock:
        follower = _shared.get((bootstrap_servers, topic))
        if follower is None:
            follower = _shared[(bootstrap_servers, topic)] = BudgetStatusFollower(
                bootstrap_servers, topic=topic
            )
    follower.ensure_running()
    return follower
