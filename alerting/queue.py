"""The delivery queue: notifications on their way to receivers, with pacing and retries.

Jobs sharing a destination (the notifier's ``pace_key``, else the receiver) go one after
another in queue order; different destinations go concurrently. A destination with a
``min_interval_s`` gets at most one request per interval, failed requests included, and a
429's ``Retry-After`` holds it back at least that long. Each attempt's outcome (an
:class:`Attempt`) goes to the ``book`` callback, which decides what happens next (done, retry
at ``job.next_attempt_at``, dead letter): the policy of the retries lives with the
dispatcher and ``alerting.policy.retry``; this module only runs the sends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from alerting.errors import PermanentDeliveryError, TransientDeliveryError
from alerting.notification import Notification
from alerting.notifiers.base import Notifier, pace_of

log = logging.getLogger(__name__)


@dataclass
class Job:
    """A notification on its way to one receiver."""

    notification: Notification
    next_attempt_at: datetime
    attempts: int = 0
    dead: bool = False
    running: bool = False
    cancelled: bool = False  # its alerts moved to another worker: not attempted again
    last_error: str = ""

    @property
    def receiver(self) -> str:
        return self.notification.receiver


@dataclass
class Attempt:
    """The outcome of one send: ``error`` None for success; ``transient`` says whether a
    retry can help; ``retry_after_s`` is the destination's own ask (429)."""

    job: Job
    error: Exception | None = None
    transient: bool = True
    retry_after_s: float | None = None


# book(attempt, now, ready_at): ready_at is when the destination's pace allows the next request
Book = Callable[[Attempt, datetime, datetime], Awaitable[None]]


class DeliveryQueue:
    """Jobs, the keys in flight per receiver, and the pace of each destination.

    ``lock`` guards the jobs against the dispatcher's own changes (the same lock the
    dispatcher holds while it queues); sends run outside it.
    """

    def __init__(
        self, notifiers: Mapping[str, Notifier], lock: asyncio.Lock, send_timeout_s: float
    ) -> None:
        self.notifiers = notifiers
        self.send_timeout_s = send_timeout_s
        self.jobs: list[Job] = []
        self.in_flight: dict[str, set[str]] = {}
        self._pace: dict[str, datetime] = {}
        self._lock = lock

    def add(self, n: Notification, now: datetime, *, dead: bool = False) -> Job:
        job = Job(n, next_attempt_at=now, dead=dead)
        self.jobs.append(job)
        self.in_flight.setdefault(n.receiver, set()).update(n.delivery_keys)
        return job

    def queued(self, notification_id: str) -> bool:
        return any(j.notification.notification_id == notification_id for j in self.jobs)

    def done(self, job: Job) -> None:
        """The job is settled (sent): out of the queue, its keys no longer in flight."""
        if job in self.jobs:
            self.jobs.remove(job)
        self.in_flight.get(job.receiver, set()).difference_update(job.notification.delivery_keys)

    def cancel_where(self, predicate: Callable[[Job], bool]) -> int:
        """Drop the queued jobs matching ``predicate`` (one running finishes its send)."""
        dropped = [j for j in self.jobs if predicate(j)]
        for job in dropped:
            job.cancelled = True
            self.done(job)
        return len(dropped)

    async def run(self, now: datetime, book: Book) -> None:
        """Send every job due at ``now``, lane by lane; returns when all finished."""
        lanes: dict[str, list[Job]] = {}
        async with self._lock:
            for job in self.jobs:
                if job.running or job.next_attempt_at > now:
                    continue
                pace_key, _ = pace_of(self.notifiers[job.receiver])
                lanes.setdefault(pace_key or f"receiver:{job.receiver}", []).append(job)
        if lanes:
            await asyncio.gather(*(self._run_lane(jobs, now, book) for jobs in lanes.values()))

    async def _run_lane(self, jobs: list[Job], now: datetime, book: Book) -> None:
        for index, job in enumerate(jobs):
            if job.cancelled:
                continue
            notifier = self.notifiers[job.receiver]
            pace_key, min_interval_s = pace_of(notifier)
            if pace_key is not None:
                ready_at = self._pace.get(pace_key)
                if ready_at is not None and ready_at > now:
                    for later in jobs[index:]:
                        later.next_attempt_at = max(later.next_attempt_at, ready_at)
                    return
            job.running = True
            result = await self._attempt(job, notifier)
            job.running = False
            ready_at = now
            if pace_key is not None:
                # Every request counts against the destination's rate, failed ones too.
                gap = max(min_interval_s, result.retry_after_s or 0.0)
                ready_at = max(self._pace.get(pace_key, now), now + timedelta(seconds=gap))
                self._pace[pace_key] = ready_at
            async with self._lock:
                await book(result, now, ready_at)
            if result.error is not None:
                return  # the destination is failing: later jobs wait for their own turn

    async def _attempt(self, job: Job, notifier: Notifier) -> Attempt:
        job.attempts += 1
        try:
            await asyncio.wait_for(notifier.send(job.notification), self.send_timeout_s)
        except TransientDeliveryError as exc:
            return Attempt(job, exc, True, exc.retry_after_s)
        except PermanentDeliveryError as exc:
            return Attempt(job, exc, False)
        except TimeoutError as exc:
            return Attempt(job, exc, True)
        except Exception as exc:  # a notifier bug: retried, then dead-lettered, never lost
            log.exception("notifier %s raised unexpectedly", notifier.name)
            return Attempt(job, exc, True)
        return Attempt(job)
