"""Silences: matchers plus a time window, with who made them and why.

A silenced alert is still accepted and recorded (``alerts`` table, a ``silenced`` delivery
row) but not sent while the silence is active; if it still fires when the silence ends,
it goes out then.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from alerting.policy.matchers import Matcher
from schemas.alerts import Alert
from schemas.events import parse_ts

_DURATION_RE: Final = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``"2h"``, ``"90m"``, ``"1h30m"``, ``"1d"`` -> timedelta; ``ValueError`` otherwise."""
    text = text.strip()
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text or total <= 0:
        raise ValueError(f"invalid duration {text!r}: use e.g. 30m, 2h, 1h30m, 1d")
    return timedelta(seconds=total)


@dataclass(frozen=True, slots=True)
class Silence:
    """Mutes alerts matching all ``matchers`` from ``starts_at`` until ``ends_at``."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_by: str
    created_at: datetime

    def __post_init__(self) -> None:
        for ts in (self.starts_at, self.ends_at, self.created_at):
            if ts.tzinfo is None:
                raise ValueError("silence times must be timezone-aware")
        if not self.matchers:
            raise ValueError("a silence needs at least one matcher")
        if self.ends_at <= self.starts_at:
            raise ValueError("a silence must end after it starts")

    def is_active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, alert: Alert) -> bool:
        return all(m.matches(alert) for m in self.matchers)

    def state(self, now: datetime) -> str:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": [str(m) for m in self.matchers],
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "comment": self.comment,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Silence:
        return cls(
            id=str(data["id"]),
            matchers=tuple(Matcher.parse(m) for m in data["matchers"]),
            starts_at=parse_ts(data["starts_at"]),
            ends_at=parse_ts(data["ends_at"]),
            comment=str(data.get("comment", "")),
            created_by=str(data.get("created_by", "")),
            created_at=parse_ts(data["created_at"]),
        )

    @classmethod
    def create(
        cls,
        matchers: Iterable[Matcher],
        *,
        now: datetime,
        duration: timedelta,
        comment: str,
        created_by: str,
        starts_at: datetime | None = None,
    ) -> Silence:
        start = starts_at or now
        return cls(
            id=str(uuid.uuid4()),
            matchers=tuple(matchers),
            starts_at=start,
            ends_at=start + duration,
            comment=comment,
            created_by=created_by,
            created_at=now,
        )


def silenced_by(alert: Alert, silences: Iterable[Silence], now: datetime) -> tuple[str, ...]:
    """Ids of the silences active at ``now`` that match ``alert``."""
    return tuple(s.id for s in silences if s.is_active(now) and s.matches(alert))
