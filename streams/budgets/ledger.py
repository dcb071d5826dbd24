"""Per-budget ledger state: what the worker keeps (in a Faust table keyed by budget name).

A :class:`LedgerState` is plain data, JSON-able with :meth:`to_dict` / :meth:`from_dict`
(datetimes as ISO 8601 UTC strings, money as integer nano-USD). Its size is bounded: per-minute
burn samples for the forecast window only, at most :data:`MAX_NAMES_PER_DIMENSION` names per
usage dimension (later names add to ``(other)``, so totals stay exact) and at most
:data:`MAX_TAG_KEYS` tag keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Final

import orjson

MAX_NAMES_PER_DIMENSION: Final = 50
MAX_TAG_KEYS: Final = 8
OTHER: Final = "(other)"
STATE_VERSION: Final = 1


@dataclass(slots=True)
class LedgerState:
    """Spend of one budget in its current period, plus what has already been announced.

    Mutable on purpose: :func:`streams.budgets.spend.apply_spend` updates it in place on the
    hot path (and returns a fresh one at a period rollover). Always keep the returned object.

    - ``fired``: threshold keys already alerted this period, ``"<at>@<limit_nusd>"``.
    - ``forecast_fired``: effective limits (as text) a forecast alert already went out for;
      ``forecast_minute``: the UTC minute the forecast was last evaluated in.
    - ``burn``: ``[[unix_minute, nusd], ...]`` spend per minute over the forecast window.
    - ``observed_since``: first event seen by this ledger (kept across periods), so a
      forecast never extrapolates from a window longer than the data.
    - ``tallies``: ``{dimension: {name: nusd}}`` for service, provider, model, ``tag:<key>``.
    - quota counters: the current UTC minute and the current local day of the budget.
    - override: a raised limit in force until ``override_until``.
    - ``late_events`` / ``late_nusd``: events older than the current period (counted, not
      added: their period is closed; they are in ClickHouse all the same).
    - ``positions``: ``{"<epoch>:<partition>": offset}``, the last usage-topic offset counted
      per partition: a delta's events at or below it are already in ``spent_nusd`` (from an
      earlier delta, or from the ClickHouse snapshot the ledger was seeded with).
    """

    budget: str
    period_start: datetime
    period_end: datetime
    spent_nusd: int = 0
    events: int = 0
    last_ts: datetime | None = None
    observed_since: datetime | None = None
    fired: list[str] = field(default_factory=list)
    forecast_fired: list[str] = field(default_factory=list)
    forecast_minute: int | None = None
    burn: list[list[int]] = field(default_factory=list)
    tallies: dict[str, dict[str, int]] = field(default_factory=dict)
    quota_minute: int | None = None
    minute_requests: int = 0
    minute_tokens: int = 0
    quota_day_start: datetime | None = None
    quota_day_end: datetime | None = None
    day_requests: int = 0
    day_tokens: int = 0
    quota_fired: list[str] = field(default_factory=list)
    override_limit_nusd: int | None = None
    override_until: datetime | None = None
    override_reason: str = ""
    override_by: str = ""
    late_events: int = 0
    late_nusd: int = 0
    positions: dict[str, int] = field(default_factory=dict)
    schema_version: int = STATE_VERSION

    def effective_limit(self, base_limit_nusd: int, now: datetime) -> int:
        """The override limit while ``now < override_until``, else the configured one."""
        if (
            self.override_limit_nusd is not None
            and self.override_until is not None
            and now < self.override_until
        ):
            return self.override_limit_nusd
        return base_limit_nusd

    def add_tally(self, dimension: str, name: str, cost_nusd: int) -> None:
        names = self.tallies.get(dimension)
        if names is None:
            if (
                dimension.startswith("tag:")
                and sum(1 for d in self.tallies if d.startswith("tag:")) >= MAX_TAG_KEYS
            ):
                return
            names = self.tallies[dimension] = {}
        if name not in names and len(names) >= MAX_NAMES_PER_DIMENSION:
            name = OTHER
        names[name] = names.get(name, 0) + cost_nusd

    def to_json(self) -> bytes:
        """Compact JSON (orjson serialises the dataclass and its datetimes natively)."""
        return orjson.dumps(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able deep copy: ISO 8601 strings for datetimes, ints for money."""
        data: dict[str, Any] = orjson.loads(orjson.dumps(self))
        return data

    @classmethod
    def from_json(cls, raw: bytes | str) -> LedgerState:
        return cls.from_dict(orjson.loads(raw))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LedgerState:
        """Inverse of :meth:`to_dict` (copies what it is given); unknown keys are ignored."""
        kwargs: dict[str, Any] = {}
        for name in _FIELDS:
            if name not in data:
                continue
            value = data[name]
            if name in _DATETIME_FIELDS:
                if isinstance(value, str):
                    # Our own output, so fromisoformat is exact (and far faster than parse_ts).
                    value = datetime.fromisoformat(value).astimezone(UTC)
            elif name in _LIST_FIELDS:
                value = list(value)
            elif name == "burn":
                value = [list(sample) for sample in value]
            elif name == "positions":
                value = dict(value)
            elif name == "tallies":
                value = {dim: dict(names) for dim, names in value.items()}
            kwargs[name] = value
        return cls(**kwargs)


_DATETIME_FIELDS: Final = frozenset(
    {
        "period_start",
        "period_end",
        "last_ts",
        "observed_since",
        "quota_day_start",
        "quota_day_end",
        "override_until",
    }
)


_LIST_FIELDS: Final = frozenset({"fired", "forecast_fired", "quota_fired"})
_FIELDS: Final = tuple(f.name for f in fields(LedgerState))


def new_state(budget: str, start: datetime, end: datetime) -> LedgerState:
    """An empty ledger for the period ``[start, end)`` (UTC)."""
    return LedgerState(
        budget=budget, period_start=start.astimezone(UTC), period_end=end.astimezone(UTC)
    )
