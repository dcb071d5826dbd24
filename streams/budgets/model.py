"""What a budget is: scope, period, limit, thresholds, quotas and what the SDK does at the limit.

Built from ``[[budgets]]`` by :func:`streams.budgets.config.load_budgets`; immutable and hashable,
so the worker can keep them in a tuple and match every priced event against each one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from schemas.alerts import Severity

PeriodKind = Literal["day", "week", "month", "rolling"]
OnExhausted = Literal["block", "degrade", "allow"]
PERIODS: Final[tuple[str, ...]] = ("day", "week", "month", "rolling")
DEFAULT_THRESHOLDS: Final[tuple[str, ...]] = ("0.5", "0.8", "0.95", "1.0")
_DEFAULT_SEVERITIES: Final[tuple[Severity, ...]] = ("info", "warning", "critical", "emergency")


def _pattern_matches(patterns: tuple[str, ...], value: object) -> bool:
    """``value`` equals one pattern, or starts with the prefix of a pattern ending in ``*``.

    The SDK guard matches with its own copy (``spendwatch.money.pattern_matches``: the SDK
    cannot import the pipeline); ``tests/sdk/test_sdk_parity.py`` keeps the two equal."""
    if not isinstance(value, str):
        return False
    return any(value.startswith(p[:-1]) if p.endswith("*") else value == p for p in patterns)


@dataclass(frozen=True, slots=True)
class Match:
    """A budget's scope. Every field given must match (AND); a list within a field is an OR.

    An empty ``Match`` covers everything. Patterns are exact names or a prefix ending in ``*``.
    """

    services: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()

    def matches(self, event: dict[str, Any], *, tags_only: bool = False) -> bool:
        """Whether ``event`` (a dict with service, provider, model, tags) is in scope;
        ``tags_only`` checks the tag patterns alone (the rest was checked already)."""
        if tags_only:
            return self._tags_match(event)
        if self.services and not _pattern_matches(self.services, event.get("service")):
            return False
        if self.providers and not _pattern_matches(self.providers, event.get("provider")):
            return False
        if self.models and not _pattern_matches(self.models, event.get("model")):
            return False
        return self._tags_match(event)

    def _tags_match(self, event: dict[str, Any]) -> bool:
        if self.tags:
            tags = event.get("tags") or {}
            for key, pattern in self.tags:
                if not _pattern_matches((pattern,), tags.get(key)):
                    return False
        return True

    def describe(self) -> str:
        """Human scope, e.g. ``service=chat-api model=gpt-4o*`` or ``everything``."""
        parts = [
            f"{name}={'|'.join(values)}"
            for name, values in (
                ("service", self.services),
                ("provider", self.providers),
                ("model", self.models),
            )
            if values
        ]
        parts += [f"tags.{k}={v}" for k, v in self.tags]
        return " ".join(parts) or "everything"


@dataclass(frozen=True, slots=True)
class Threshold:
    """Fire once per period when spent >= ``at`` x the effective limit.

    ``at`` is exact (a ``Decimal`` read from the config text), compared with integer maths.
    ``key`` is its canonical text (``"0.5"``, ``"1"``), the part used in alert ids.
    """

    at: Decimal
    severity: Severity
    _num: int = field(init=False, repr=False, compare=False, default=0)
    _den: int = field(init=False, repr=False, compare=False, default=1)

    def __post_init__(self) -> None:
        # The exact ratio, once: ``crossed`` runs for every event on the hot path.
        frac = Fraction(self.at)
        object.__setattr__(self, "_num", frac.numerator)
        object.__setattr__(self, "_den", frac.denominator)

    @property
    def key(self) -> str:
        return format(self.at.normalize(), "f")

    def crossed(self, spent_nusd: int, limit_nusd: int) -> bool:
        return spent_nusd * self._den >= limit_nusd * self._num

    def amount(self, limit_nusd: int) -> int:
        """The least spend that crosses this threshold at ``limit_nusd``."""
        return -(-limit_nusd * self._num // self._den)


@dataclass(frozen=True)
class Budget:
    """One ``[[budgets]]`` entry, validated. Money is integer nano-USD.

    ``labels`` are copied onto every alert of the budget (with ``budget``, ``period``,
    ``threshold``); ``receivers`` (if any) travel as the ``receivers`` label, comma-joined.
    ``degrade_to`` / ``on_exhausted`` describe what the SDK guard should do at the limit.
    """

    name: str
    limit_nusd: int
    match: Match = field(default_factory=Match)
    period: PeriodKind = "day"
    rolling_hours: int | None = None
    timezone: str = "UTC"
    thresholds: tuple[Threshold, ...] = tuple(
        Threshold(Decimal(t), s)
        for t, s in zip(DEFAULT_THRESHOLDS, _DEFAULT_SEVERITIES, strict=True)
    )
    per_request_limit_nusd: int | None = None
    per_request_severity: Severity = "warning"
    requests_per_minute: int | None = None
    requests_per_day: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None
    labels: tuple[tuple[str, str], ...] = ()
    receivers: tuple[str, ...] = ()
    degrade_to: tuple[tuple[str, str], ...] = ()
    on_exhausted: OnExhausted = "block"

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def counting_key(self) -> str:
        """What decides the spend a ledger holds and when it resets: scope, period kind, time
        zone, rolling hours. A ledger kept under another definition is rebuilt from the spend
        stored in ClickHouse; the limit and thresholds may change freely (threshold alerts are
        keyed by limit)."""
        text = repr((self.match, self.period, self.rolling_hours, self.timezone))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def matches(self, event: dict[str, Any]) -> bool:
        """Whether this budget covers ``event`` (a priced event dict). Several budgets may."""
        return self.match.matches(event)

    @property
    def alert_labels(self) -> dict[str, str]:
        """Labels copied onto every alert of this budget (before budget/period/threshold)."""
        labels = dict(self.labels)
        if self.receivers:
            labels["receivers"] = ",".join(self.receivers)
        labels["budget"] = self.name
        return labels

    def describe_period(self) -> str:
        if self.period == "rolling":
            return f"rolling {self.rolling_hours}h"
        return self.period


def matching(budgets: tuple[Budget, ...] | list[Budget], event: dict[str, Any]) -> list[Budget]:
    """The budgets that cover ``event``; each of them counts it."""
    return [b for b in budgets if b.match.matches(event)]
