"""``MinuteBucket``: one service's usage in one closed minute, the detectors' only input.

Built by :class:`streams.detect.minutes.MinuteAggregator` from priced events (or by a test or
a backfill directly). Money is integer nano-USD; the breakdowns name who spent it, so an alert
can list its top contributors without going back to ClickHouse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def minute_index(ts: datetime) -> int:
    """Whole minutes since the Unix epoch of an aware datetime (floor)."""
    if ts.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return (ts - EPOCH) // MINUTE


def minute_start(index: int) -> datetime:
    """The aware UTC start of minute ``index`` (inverse of :func:`minute_index`)."""
    return EPOCH + index * MINUTE


@dataclass(frozen=True, slots=True)
class MinuteBucket:
    """Usage of ``service`` during ``[minute_start, minute_start + 1 min)``.

    ``requests`` counts events (calls), ``errors`` those with ``status == "error"``; ``tokens``
    is input + output tokens; ``expensive_spend_nusd`` is the part of ``spend_nusd`` spent on
    expensive models (see ``DetectSettings.expensive_*``) and ``expensive_requests`` the calls
    to them (the model-mix detector watches the share of calls: far less noisy than the share
    of spend, which a handful of dear calls swings). Breakdowns map a name to spend in
    nano-USD (``by_model``, ``by_tag`` keyed ``"agent:planner"``) or to counts
    (``requests_by_provider``, ``errors_by_provider``, ``errors_by_type``).

    Raises ``ValueError`` on a naive or unaligned ``minute_start``, negative figures, or more
    errors than requests.
    """

    service: str
    minute_start: datetime
    spend_nusd: int = 0
    requests: int = 0
    errors: int = 0
    tokens: int = 0
    expensive_spend_nusd: int = 0
    expensive_requests: int = 0
    by_model: Mapping[str, int] = field(default_factory=dict)
    by_tag: Mapping[str, int] = field(default_factory=dict)
    requests_by_provider: Mapping[str, int] = field(default_factory=dict)
    errors_by_provider: Mapping[str, int] = field(default_factory=dict)
    errors_by_type: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ts = self.minute_start
        if ts.tzinfo is None:
            raise ValueError("MinuteBucket.minute_start must be timezone-aware")
        if ts.second or ts.microsecond:
            raise ValueError(f"MinuteBucket.minute_start {ts.isoformat()} is not a whole minute")
        names = (
            "spend_nusd",
            "requests",
            "errors",
            "tokens",
            "expensive_spend_nusd",
            "expensive_requests",
        )
        for name in names:
            if getattr(self, name) < 0:
                raise ValueError(f"MinuteBucket.{name} is negative")
        if self.errors > self.requests:
            raise ValueError("MinuteBucket.errors exceeds requests")
        if self.expensive_spend_nusd > self.spend_nusd:
            raise ValueError("MinuteBucket.expensive_spend_nusd exceeds spend_nusd")
        if self.expensive_requests > self.requests:
            raise ValueError("MinuteBucket.expensive_requests exceeds requests")
        if self.requests_by_provider and sum(self.requests_by_provider.values()) != self.requests:
            raise ValueError("MinuteBucket.requests_by_provider does not sum to requests")
        if self.errors_by_provider:
            if sum(self.errors_by_provider.values()) != self.errors:
                raise ValueError("MinuteBucket.errors_by_provider does not sum to errors")
            for provider, n in self.errors_by_provider.items():
                if n > self.requests_by_provider.get(provider, 0):
                    raise ValueError(f"MinuteBucket: more errors than requests via {provider!r}")

    @property
    def index(self) -> int:
        """Minute index since the epoch (see :func:`minute_index`)."""
        return minute_index(self.minute_start)
