"""Operator commands on ``spendwatch.control.v1`` (key = budget name): limit overrides.

Written by ``spendwatch budgets override``; read by the worker, which calls
:meth:`OverrideCommand.apply` (i.e. :func:`streams.budgets.override.apply_override`) and
publishes the returned ``override`` alert, so the change is recorded and announced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import orjson

from schemas.alerts import Alert
from schemas.events import parse_ts
from schemas.money import nusd_to_usd, usd_to_nusd
from streams.budgets.ledger import LedgerState
from streams.budgets.model import Budget
from streams.budgets.override import apply_override

SCHEMA_VERSION: Final = 1
COMMAND_OVERRIDE: Final = "override"
_DURATION_RE: Final = re.compile(r"(\d+)([dhms])")
_FULL_DURATION_RE: Final = re.compile(r"(\d+[dhms])+")
_UNIT_S: Final = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """``"2h"``, ``"90m"``, ``"1h30m"``, ``"1d"``, ``"45s"`` -> ``timedelta``.

    Raises ``ValueError`` for anything else or a zero duration.
    """
    cleaned = text.strip().lower().replace(" ", "")
    if not _FULL_DURATION_RE.fullmatch(cleaned):
        raise ValueError(f"{text!r} is not a duration like 2h, 90m, 1h30m or 1d")
    total = sum(int(n) * _UNIT_S[unit] for n, unit in _DURATION_RE.findall(cleaned))
    if total <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return timedelta(seconds=total)


@dataclass(frozen=True, slots=True)
class OverrideCommand:
    """Raise (or lower) ``budget``'s limit to ``limit_usd`` until ``until``.

    ``at`` is when the operator issued it (it is the ``now`` of ``apply_override``, so a
    replayed command yields the same alert id); ``by`` who, ``reason`` why.
    """

    budget: str
    limit_usd: Decimal
    until: datetime
    at: datetime
    reason: str = ""
    by: str = ""
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.until.tzinfo is None or self.at.tzinfo is None:
            raise ValueError("until and at must be timezone-aware")
        if self.limit_usd <= 0:
            raise ValueError("limit_usd must be positive")
        if self.until <= self.at:
            raise ValueError("until must be after at")

    @property
    def limit_nusd(self) -> int:
        return usd_to_nusd(self.limit_usd)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "command": COMMAND_OVERRIDE,
            "budget": self.budget,
            "limit_usd": format(nusd_to_usd(self.limit_nusd).normalize(), "f"),
            "until": self.until.astimezone(UTC).isoformat(),
            "reason": self.reason,
            "by": self.by,
            "at": self.at.astimezone(UTC).isoformat(),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_json(cls, raw: bytes) -> OverrideCommand:
        """Decode a command; raises ``ValueError`` (with the reason) for anything malformed."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"control message is not JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("command", COMMAND_OVERRIDE) != COMMAND_OVERRIDE:
            raise ValueError("control message is not an override command")
        try:
            return cls(
                budget=str(data["budget"]),
                limit_usd=Decimal(str(data["limit_usd"])),
                until=parse_ts(str(data["until"])),
                at=parse_ts(str(data["at"])),
                reason=str(data.get("reason") or ""),
                by=str(data.get("by") or ""),
            )
        except (KeyError, ArithmeticError) as exc:
            raise ValueError(f"bad override command: {exc!r}") from exc

    def apply(self, budget: Budget, state: LedgerState | None) -> tuple[LedgerState, Alert]:
        """Apply to ``budget``'s ledger; see :func:`streams.budgets.override.apply_override`."""
        if budget.name != self.budget:
            raise ValueError(f"command is for {self.budget!r}, not {budget.name!r}")
        return apply_override(
            budget, state, self.limit_nusd, self.until, self.at, reason=self.reason, by=self.by
        )
