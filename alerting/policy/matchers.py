"""Matching alerts on ``severity``, ``kind``, ``status`` and labels.

Two forms: ``AlertMatch`` (routes, escalations, inhibit rules: each key equals one of a set
of values, plus an optional ``min_severity``) and ``Matcher`` (silences: Alertmanager
operators ``=``, ``!=``, ``=~``, ``!~``; regexes are anchored).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal

from schemas.alerts import SEVERITY_RANK, Alert, Severity

ALERT_FIELDS: Final = frozenset({"severity", "kind", "status", "alert_id"})
MatchOp = Literal["=", "!=", "=~", "!~"]
_OPS: Final[tuple[MatchOp, ...]] = ("=~", "!~", "!=", "=")  # longest first for parsing
_KEY_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]*$")


def alert_value(alert: Alert, key: str) -> str:
    """The value an alert has for ``key``: an alert field, else a label ("" when absent)."""
    if key in ALERT_FIELDS:
        return str(getattr(alert, key))
    return alert.labels.get(key, "")


@dataclass(frozen=True, slots=True)
class AlertMatch:
    """All conditions must hold: for each ``(key, values)``, the alert's value is one of
    ``values``; and its severity is at least ``min_severity`` when set. Empty matches all."""

    equals: tuple[tuple[str, frozenset[str]], ...] = ()
    min_severity: Severity | None = None

    def matches(self, alert: Alert) -> bool:
        if self.min_severity is not None and (
            SEVERITY_RANK[alert.severity] < SEVERITY_RANK[self.min_severity]
        ):
            return False
        return all(alert_value(alert, key) in values for key, values in self.equals)

    @classmethod
    def of(cls, min_severity: Severity | None = None, **equals: str | list[str]) -> AlertMatch:
        """Convenience for code and tests: ``AlertMatch.of(severity=["critical"], budget="b")``."""
        pairs = tuple(
            (k, frozenset([v] if isinstance(v, str) else v)) for k, v in sorted(equals.items())
        )
        return cls(equals=pairs, min_severity=min_severity)


@dataclass(frozen=True, slots=True)
class Matcher:
    """One silence matcher, e.g. ``service=checkout`` or ``budget=~fleet-.*``."""

    key: str
    op: MatchOp
    value: str
    _regex: re.Pattern[str] | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not _KEY_RE.match(self.key):
            raise ValueError(f"invalid matcher key {self.key!r}")
        if self.op in ("=~", "!~"):
            try:
                object.__setattr__(self, "_regex", re.compile(self.value))
            except re.error as exc:
                raise ValueError(f"invalid regex {self.value!r}: {exc}") from None

    def matches(self, alert: Alert) -> bool:
        value = alert_value(alert, self.key)
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self._regex is not None
        hit = self._regex.fullmatch(value) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value}"

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """``"service=checkout"`` -> Matcher; raises ``ValueError`` on bad syntax."""
        for op in _OPS:
            key, sep, value = text.partition(op)
            if sep and key and "=" not in key and "!" not in key:
                return cls(key.strip(), op, value.strip())
        raise ValueError(f"invalid matcher {text!r}: expected key=value, !=, =~ or !~")
