"""Burn rate and run-out forecast, in exact integer maths, from per-minute spend samples.

The recent burn rate is the spend in the last :data:`FORECAST_WINDOW_S` (15 min: the current
UTC minute and the 14 before it) divided by the time those samples cover: from the start of
that window, or from the first event the ledger ever saw if that is later, up to ``now``. A
rate is *reliable* (may raise a forecast alert or feed ``projected_runout_at``) only when the
covered time is at least :data:`MIN_FORECAST_WINDOW_S` (5 min) and the spend in it is spread
over at least :data:`MIN_FORECAST_MINUTES` distinct minutes: no alert from a tiny sample or from
a single large call after a quiet spell (that is the per-request limit's business).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from streams.budgets.ledger import LedgerState

FORECAST_WINDOW_S: Final = 15 * 60
MIN_FORECAST_WINDOW_S: Final = 5 * 60
MIN_FORECAST_MINUTES: Final = 3
_US_PER_S: Final = 1_000_000
_US_PER_H: Final = 3600 * _US_PER_S
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def unix_minute(ts: datetime) -> int:
    """Whole minutes since the Unix epoch (UTC) of an aware datetime."""
    delta = ts - _EPOCH  # exact integer maths (a float timestamp can round up a minute)
    return delta.days * 1440 + delta.seconds // 60


def record_burn(state: LedgerState, ts: datetime, cost_nusd: int) -> None:
    """Add ``cost_nusd`` to the minute of ``ts`` and drop samples older than the window."""
    record_burn_minute(state, unix_minute(ts), cost_nusd)


def record_burn_minute(state: LedgerState, minute: int, cost_nusd: int) -> None:
    """:func:`record_burn` for a Unix minute already known."""
    if cost_nusd == 0:
        return
    oldest = minute - FORECAST_WINDOW_S // 60 + 1
    burn = state.burn
    if burn and burn[-1][0] == minute:
        burn[-1][1] += cost_nusd
    elif not burn or burn[-1][0] < minute:
        burn.append([minute, cost_nusd])
    else:
        # Out-of-order within the window: keep samples sorted by minute.
        for sample in burn:
            if sample[0] == minute:
                sample[1] += cost_nusd
                break
        else:
            if minute >= oldest:
                burn.append([minute, cost_nusd])
                burn.sort(key=lambda s: s[0])
    while burn and burn[0][0] < oldest:
        burn.pop(0)


@dataclass(frozen=True, slots=True)
class BurnRate:
    """``window_nusd`` spent over ``window_us`` microseconds ending at ``at``, in
    ``minutes_with_spend`` distinct minutes."""

    at: datetime
    window_nusd: int
    window_us: int
    minutes_with_spend: int = 0

    @property
    def reliable(self) -> bool:
        return (
            self.window_us >= MIN_FORECAST_WINDOW_S * _US_PER_S
            and self.window_nusd > 0
            and self.minutes_with_spend >= MIN_FORECAST_MINUTES
        )

    @property
    def nusd_per_hour(self) -> int:
        """Burn rate in nano-USD per hour (floor); 0 without data."""
        if self.window_us <= 0:
            return 0
        return self.window_nusd * _US_PER_H // self.window_us

    def runout_at(self, remaining_nusd: int) -> datetime | None:
        """When ``remaining_nusd`` is used up at this rate (rounded up to the µs); None if idle."""
        if self.window_nusd <= 0 or self.window_us <= 0:
            return None
        if remaining_nusd <= 0:
            return self.at
        micro = -(-remaining_nusd * self.window_us // self.window_nusd)
        try:
            return self.at + timedelta(microseconds=micro)
        except OverflowError:
            return None


def burn_rate(state: LedgerState, now: datetime) -> BurnRate:
    """The recent burn rate of ``state`` as seen at ``now`` (samples after ``now`` ignored)."""
    now = now.astimezone(UTC)
    minute = unix_minute(now)
    first_minute = minute - FORECAST_WINDOW_S // 60 + 1
    window_start = _EPOCH + timedelta(minutes=first_minute)
    if state.observed_since is not None and state.observed_since > window_start:
        window_start = state.observed_since
    window_us = max(0, (now - window_start) // timedelta(microseconds=1))
    samples = [n for m, n in state.burn if first_minute <= m <= minute]
    return BurnRate(
        at=now, window_nusd=sum(samples), window_us=window_us, minutes_with_spend=len(samples)
    )
