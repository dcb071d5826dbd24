"""``MinuteAggregator``: priced events -> closed per-service :class:`MinuteBucket` s.

Minutes close by event time: once an event at least ``allowed_lateness_s`` past a minute's
end has been seen, that minute (for every service) is final and its buckets are returned. An
event for a minute already closed is *late*: it is counted (``late_events``) and left out of
detection only; the ClickHouse sink still stores it, so nothing is lost.

When no event at all arrives for two consecutive :meth:`close_until` ticks, the source is
idle and the wall clock passed to ``close_until`` advances the watermark instead, so a quiet
pipeline still closes its minutes and a silent service is still noticed. While events keep
arriving (live or replaying history) only event time counts.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemas.events import parse_ts
from streams.detect.bucket import MinuteBucket, minute_index, minute_start
from streams.detect.settings import DetectSettings

OTHER = "(other)"
_IDLE_TICKS = 2


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


class MinuteAggregator:
    """Sums priced events into per-(service, minute) buckets and closes them by event time.

    Not thread-safe; one instance per worker (each service's events come from one partition,
    as ``spendwatch.priced.v1`` is keyed by service).
    """

    def __init__(self, settings: DetectSettings | None = None) -> None:
        self.settings = settings or DetectSettings()
        self._lateness = timedelta(seconds=self.settings.allowed_lateness_s)
        self._open: dict[tuple[int, str], _Acc] = {}
        self._closed_through: int | None = None  # last closed minute index
        self._max_ts: datetime | None = None
        self._idle_ticks = 0
        self._is_expensive = ExpensiveRule(self.settings)
        self.events = 0
        self.late_events = 0
        self.bad_events = 0
        self.last_error = ""

    @property
    def watermark(self) -> datetime | None:
        """End of the last closed minute: input before it is complete (``None`` at first)."""
        if self._closed_through is None:
            return None
        return minute_start(self._closed_through + 1)

    @property
    def open_buckets(self) -> int:
        return len(self._open)

    def add(self, event: Mapping[str, Any]) -> list[MinuteBucket]:
        """Add one priced event (a ``PricedEvent`` dict); return buckets of minutes it closed.

        Never raises for a malformed event: it is counted in ``bad_events`` (with
        ``last_error``) and skipped, as the sink stores every event anyway.
        """
        try:
            ts = parse_ts(event["ts"])
            service = str(event["service"])
            cost = int(event.get("cost_nusd") or 0)
            tokens = int(event.get("input_tokens") or 0) + int(event.get("output_tokens") or 0)
            failed = event.get("status") == "error"
            tags = event.get("tags") or {}
            if cost < 0 or tokens < 0 or not isinstance(tags, Mapping):
                raise ValueError("negative cost or tokens, or tags not a map")
        except (KeyError, ValueError, TypeError) as exc:
            self.bad_events += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:200]
            return []
        m = minute_index(ts)
        if self._closed_through is not None and m <= self._closed_through:
            self.late_events += 1
            return []
        self.events += 1
        self._idle_ticks = 0
        acc = self._open.get((m, service))
        if acc is None:
            acc = self._open[(m, service)] = _Acc()
        cap = self.settings.max_breakdown_keys
        model = event.get("model") or event.get("unit") or "(none)"
        provider = event.get("provider") or ""
        acc.spend += cost
        acc.requests += 1
        acc.tokens += tokens
        if self._is_expensive(str(model), cost, tokens):
            acc.expensive += cost
            acc.expensive_requests += 1
        _bump(acc.by_model, str(model), cost, cap)
        for key in self.settings.tag_keys:
            value = tags.get(key)
            if value is not None:
                _bump(acc.by_tag, f"{key}:{value}", cost, cap, f"{key}:{OTHER}")
        if (
            provider not in acc.req_by_provider
            and len(acc.req_by_provider) >= self.settings.max_providers
        ):
            provider = OTHER  # the same key for requests and errors keeps the rates consistent
        acc.req_by_provider[provider] = acc.req_by_provider.get(provider, 0) + 1
        if failed:
            acc.errors += 1
            acc.err_by_provider[provider] = acc.err_by_provider.get(provider, 0) + 1
            _bump(acc.err_by_type, str(event.get("error_type") or "(unknown)"), 1, cap)
        if self._max_ts is None or ts > self._max_ts:
            self._max_ts = ts
            return self._close(minute_index(ts - self._lateness) - 1)
        return []

    def close_until(self, now: datetime) -> list[MinuteBucket]:
        """Periodic tick with the wall clock. If no event arrived during the last two ticks,
        close every minute that ended at least ``allowed_lateness_s`` before ``now``.

        Before the first event nothing is open and no service is known, so the wall clock
        closes nothing: a worker that starts (or restarts) before its backlog arrives must
        not declare every minute of that backlog late."""
        if self._max_ts is None:
            return []
        self._idle_ticks += 1
        if self._idle_ticks < _IDLE_TICKS:
            return []
        return self._close(minute_index(now - self._lateness) - 1)

    def flush(self) -> list[MinuteBucket]:
        """Close every open minute (end of a backfill or shutdown)."""
        if not self._open:
            return []
        return self._close(max(m for m, _ in self._open))

    def _close(self, through: int) -> list[MinuteBucket]:
        if self._closed_through is not None and through <= self._closed_through:
            return []
        self._closed_through = through
        ready = sorted(k for k in self._open if k[0] <= through)
        return [self._bucket(m, service, self._open.pop((m, service))) for m, service in ready]

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
