"""Budget status: published by the worker on ``spendwatch.budget-status.v1`` keyed by budget
name, followed by the SDK guard. Money is integer nano-USD."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Final, Literal

import orjson

from schemas.events import parse_ts

SCHEMA_VERSION: Final = 1
BudgetState = Literal["ok", "warning", "critical", "exhausted"]


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """State of one budget in its current period.

    ``limit_nusd`` is the effective limit (an operator override included, until
    ``override_until``). ``fraction`` is spent/limit as a decimal string. ``projected_runout_at``
    is when the recent burn rate exhausts the limit (None when not burning).
    """

    budget: str
    period_start: datetime
    reset_at: datetime
    spent_nusd: int
    limit_nusd: int
    fraction: str
    state: BudgetState
    updated_at: datetime
    projected_runout_at: datetime | None = None
    per_request_limit_nusd: int | None = None
    override_until: datetime | None = None
    # What the SDK guard should do once exhausted: "block" | "degrade" | "allow"; with
    # "degrade", ``degrade_to`` maps an expensive model to its cheaper stand-in.
    on_exhausted: str | None = None
    degrade_to: dict[str, str] | None = None
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> bytes:
        data: dict[str, Any] = asdict(self)
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat()
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, raw: bytes) -> BudgetStatus:
        data = orjson.loads(raw)
        for key in (
            "period_start",
            "reset_at",
            "updated_at",
            "projected_runout_at",
            "override_until",
        ):
            if data.get(key):
                data[key] = parse_ts(data[key])
        return cls(**data)
