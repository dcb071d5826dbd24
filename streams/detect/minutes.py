"""``MinuteAggregator``: priced events -> closed per-service :class:`MinuteBucket` s.

Minutes close by event time, per source partition: once an event at least
``allowed_lateness_s`` past a minute's end has been seen on a partition, that minute is final
for every service of the partition and its buckets are returned. Each service's events come
from one partition (the usage topic is keyed by service), so a partition that lags - a
backlog, a slow producer - never closes the minutes of services on another one. An event for a
minute already closed is *late*: counted (``late_events``) and left out of detection only;
ClickHouse still stores it, so nothing is lost.

Event time is the client's clock clamped to the ingest time by the hot path, so a client
whose clock runs fast cannot move a watermark past the present.

When no event at all arrives on a partition for two consecutive :meth:`close_until` ticks, the
wall clock passed to ``close_until`` advances its watermark instead, so a quiet pipeline still
closes its minutes and a silent service is still noticed. While events keep arriving (live or
replaying history) only event time counts.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemas.events import parse_ts
from streams.detect.bucket import EPOCH, MinuteBucket, minute_start
from streams.detect.settings import DetectSettings

OTHER = "(other)"
_IDLE_TICKS = 2
_US_PER_MINUTE = 60_000_000
_MICRO = timedelta(microseconds=1)


@dataclass(slots=True)
class _Acc:
    spend: int = 0
    requests: int = 0
    errors: int = 0
    tokens: int = 0
    expensive: int = 0
    expensive_requests: int = 0
    by_model: dict[str, int] = field(default_factory=dict)
    by_tag: dict[str, int] = field(default_factory=dict)
    req_by_provider: dict[str, int] = field(default_factory=dict)
    err_by_provider: dict[str, int] = field(default_factory=dict)
    err_by_type: dict[str, int] = field(default_factory=dict)


class ExpensiveRule:
    """Whether a call counts as spend on an expensive model: its model matches one of
    ``expensive_models`` (fnmatch) or it cost ``expensive_nusd_per_mtok`` or more per million
    tokens (exact integers). The model-mix detector watches the share of such calls."""

    def __init__(self, settings: DetectSettings) -> None:
        self.settings = settings
        self._cache: dict[str, bool] = {}

    def __call__(self, model: str, cost_nusd: int, tokens: int) -> bool:
        s = self.settings
        if s.expensive_models:
            hit = self._cache.get(model)
            if hit is None:
                hit = any(fnmatch.fnmatchcase(model, p) for p in s.expensive_models)
                if len(self._cache) < 10_000:
                    self._cache[model] = hit
            if hit:
                return True
        return (
            s.expensive_nusd_per_mtok > 0
            and tokens > 0
            and cost_nusd * 1_000_000 >= s.expensive_nusd_per_mtok * tokens
        )


def _bump(counts: dict[str, int], key: str, amount: int, cap: int, other: str = OTHER) -> None:
    if key not in counts and len(counts) >= cap:
        key = other  # bounded breakdowns: the long tail is summed under one name
    counts[key] = counts.get(key, 0) + amount


class MinuteBatch:
    """One batch's events summed per (partition, minute, service, model, provider, outcome,
    tag values) before they reach the aggregator: per event, one dict update."""

    __slots__ = ("_expensive", "_tag_keys", "groups", "max_us")

    def __init__(self, tag_keys: tuple[str, ...], expensive: ExpensiveRule) -> None:
        self._tag_keys = tag_keys
        self._expensive = expensive
        self.groups: dict[tuple[Any, ...], list[int]] = {}
        self.max_us: dict[int, int] = {}

    def add(
        self,
        partition: int,
        service: str,
        ts_us: int,
        cost: int,
        tokens: int,
        model: str,
        provider: str,
        failed: bool,
        error_type: str | None,
        tags: Mapping[str, str] | None,
    ) -> None:
        key = (
            partition,
            ts_us // _US_PER_MINUTE,
            service,
            model,
            provider,
            failed,
            error_type if failed else None,
            self._expensive(model, cost, tokens),
            tuple(map(tags.get, self._tag_keys)) if tags else None,
        )
        group = self.groups.get(key)
        if group is None:
            self.groups[key] = [1, cost, tokens]
        else:
            group[0] += 1
            group[1] += cost
            group[2] += tokens
        top = self.max_us.get(partition)
        if top is None or ts_us > top:
            self.max_us[partition] = ts_us


@dataclass(slots=True)
class _Partition:
    """Event-time progress of one source partition."""

    max_us: int | None = None
    closed_through: int | None = None  # last closed minute index
    idle_ticks: int = 0
    open: dict[tuple[int, str], _Acc] = field(default_factory=dict)
    services: set[str] = field(default_factory=set)


class MinuteAggregator:
    """Sums priced events into per-(service, minute) buckets and closes them by event time,
    per source partition (see the module docstring).

    Not thread-safe; one instance per worker.
    """

    def __init__(self, settings: DetectSettings | None = None) -> None:
        self.settings = settings or DetectSettings()
        self._lateness_us = int(self.settings.allowed_lateness_s * 1_000_000)
        self._partitions: dict[int, _Partition] = {}
        self._is_expensive = ExpensiveRule(self.settings)
        self.events = 0
        self.late_events = 0
        self.bad_events = 0
        self.last_error = ""

    @property
    def watermark(self) -> datetime | None:
        """End of the last minute closed on every partition: input before it is complete
        (``None`` before any partition closed a minute)."""
        closed = [p.closed_through for p in self._partitions.values()]
        if not closed or any(c is None for c in closed):
            return None
        return minute_start(min(c for c in closed if c is not None) + 1)

    @property
    def open_buckets(self) -> int:
        return sum(len(p.open) for p in self._partitions.values())

    def forget_partition(self, partition: int) -> list[str]:
        """Drop a partition (revoked: another worker has it now); the services it held."""
        state = self._partitions.pop(partition, None)
        return sorted(state.services) if state else []

    def add(self, event: Mapping[str, Any], partition: int = 0) -> list[MinuteBucket]:
        """Add one priced event (a ``PricedEvent`` dict); return buckets of minutes it closed.

        Never raises for a malformed event: it is counted in ``bad_events`` (with
        ``last_error``) and skipped, as the sink stores every event anyway.
        """
        try:
            ts_us = (parse_ts(event["ts"]) - EPOCH) // _MICRO
            service = str(event["service"])
            cost = int(event.get("cost_nusd") or 0)
            tokens = int(event.get("input_tokens") or 0) + int(event.get("output_tokens") or 0)
            tags = event.get("tags") or {}
            if cost < 0 or tokens < 0 or not isinstance(tags, Mapping):
                raise ValueError("negative cost or tokens, or tags not a map")
        except (KeyError, ValueError, TypeError) as exc:
            self.bad_events += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:200]
            return []
        return self.add_event(
            partition,
            service,
            ts_us,
            cost,
            tokens,
            str(event.get("model") or event.get("unit") or "(none)"),
            event.get("provider") or "",
            event.get("status") == "error",
            event.get("error_type"),
            tags,
        )

    def add_event(
        self,
        partition: int,
        service: str,
        ts_us: int,
        cost: int,
        tokens: int,
        model: str,
        provider: str,
        failed: bool,
        error_type: str | None,
        tags: Mapping[str, str] | None,
    ) -> list[MinuteBucket]:
        """Add one priced event, fields given; the buckets of the minutes it closed."""
        batch = self.batch()
        batch.add(
            partition, service, ts_us, cost, tokens, model, provider, failed, error_type, tags
        )
        return self.add_batch(batch)

    def batch(self) -> MinuteBatch:
        """An empty :class:`MinuteBatch` for this aggregator's settings."""
        return MinuteBatch(self.settings.tag_keys, self._is_expensive)

    def add_batch(self, batch: MinuteBatch) -> list[MinuteBucket]:
        """Add a hot-path batch's events (summed per group); the buckets of the minutes it
        closed. The events of one batch arrive together: none is late for another."""
        settings = self.settings
        cap = settings.max_breakdown_keys
        tag_keys = settings.tag_keys
        for key, (n, cost, tokens) in batch.groups.items():
            partition, m, service, model, provider, failed, error_type, expensive, tagvals = key
            part = self._partitions.get(partition)
            if part is None:
                part = self._partitions[partition] = _Partition()
            if part.closed_through is not None and m <= part.closed_through:
                self.late_events += n
                continue
            self.events += n
            part.idle_ticks = 0
            acc = part.open.get((m, service))
            if acc is None:
                acc = part.open[(m, service)] = _Acc()
                part.services.add(service)
            acc.spend += cost
            acc.requests += n
            acc.tokens += tokens
            if expensive:
                acc.expensive += cost
                acc.expensive_requests += n
            _bump(acc.by_model, model, cost, cap)
            if tagvals is not None:
                for tag, value in zip(tag_keys, tagvals, strict=True):
                    if value is not None:
                        _bump(acc.by_tag, f"{tag}:{value}", cost, cap, f"{tag}:{OTHER}")
            if (
                provider not in acc.req_by_provider
                and len(acc.req_by_provider) >= settings.max_providers
            ):
                provider = OTHER  # the same key for requests and errors keeps the rates right
            acc.req_by_provider[provider] = acc.req_by_provider.get(provider, 0) + n
            if failed:
                acc.errors += n
                acc.err_by_provider[provider] = acc.err_by_provider.get(provider, 0) + n
                _bump(acc.err_by_type, error_type or "(unknown)", n, cap)
        buckets: list[MinuteBucket] = []
        for partition, max_us in batch.max_us.items():
            part = self._partitions[partition]
            if part.max_us is None or max_us > part.max_us:
                part.max_us = max_us
                buckets += self._close(part, (max_us - self._lateness_us) // _US_PER_MINUTE - 1)
        return sorted(buckets, key=lambda b: (b.minute_start, b.service))

    def close_until(self, now: datetime) -> list[MinuteBucket]:
        """Periodic tick with the wall clock. On each partition where no event arrived during
        the last two ticks, close every minute that ended at least ``allowed_lateness_s``
        before ``now``.

        Before a partition's first event nothing is open and no service is known, so the wall
        clock closes nothing there: a worker that starts (or restarts) before its backlog
        arrives must not declare every minute of that backlog late."""
        now_us = (now - EPOCH) // _MICRO
        buckets: list[MinuteBucket] = []
        for part in self._partitions.values():
            if part.max_us is None:
                continue
            part.idle_ticks += 1
            if part.idle_ticks >= _IDLE_TICKS:
                buckets += self._close(part, (now_us - self._lateness_us) // _US_PER_MINUTE - 1)
        return sorted(buckets, key=lambda b: (b.minute_start, b.service))

    def flush(self) -> list[MinuteBucket]:
        """Close every open minute (end of a backfill or shutdown)."""
        buckets: list[MinuteBucket] = []
        for part in self._partitions.values():
            if part.open:
                buckets += self._close(part, max(m for m, _ in part.open))
        return sorted(buckets, key=lambda b: (b.minute_start, b.service))

    def _close(self, part: _Partition, through: int) -> list[MinuteBucket]:
        if part.closed_through is not None and through <= part.closed_through:
            return []
        part.closed_through = through
        ready = sorted(k for k in part.open if k[0] <= through)
        return [self._bucket(m, service, part.open.pop((m, service))) for m, service in ready]

    @staticmethod
    def _bucket(m: int, service: str, acc: _Acc) -> MinuteBucket:
        return MinuteBucket(
            service=service,
            minute_start=minute_start(m),
            spend_nusd=acc.spend,
            requests=acc.requests,
            errors=acc.errors,
            tokens=acc.tokens,
            expensive_spend_nusd=acc.expensive,
            expensive_requests=acc.expensive_requests,
            by_model=acc.by_model,
            by_tag=acc.by_tag,
            requests_by_provider=acc.req_by_provider,
            errors_by_provider=acc.err_by_provider,
            errors_by_type=acc.err_by_type,
        )
