"""Budget periods: which period an instant falls in, computed in the budget's time zone.

Pure functions of an explicit timestamp (no clock). Bounds are returned as aware datetimes in
UTC so that arithmetic and comparisons on them are exact instants: Python compares and
subtracts two datetimes that share a ``ZoneInfo`` by wall-clock time, which is wrong across a
DST change. Convert with ``.astimezone(budget.tz)`` for display.

- ``day``: local midnight to the next local midnight (23 h on a spring-forward day, 25 h on a
  fall-back day). When local midnight does not exist (a DST gap at 00:00) the day starts at the
  first instant of that local date.
- ``week``: Monday 00:00 local to the next Monday 00:00 local.
- ``month``: the 1st 00:00 local to the 1st of the next month (calendar months, leap years).
- ``rolling`` with ``rolling_hours = N``: fixed, back-to-back windows of exactly N elapsed hours,
  anchored at 1970-01-01 00:00 local time (the instant that was, with the zone's offset then).
  Fixed windows (rather than a window sliding with every event) give each threshold a single
  period to fire in, so the alert id stays deterministic on replay. For UTC and N dividing 24,
  windows start at midnight-aligned hours (N = 6: 00, 06, 12, 18 UTC).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from streams.budgets.model import Budget

_EPOCH_LOCAL = datetime(1970, 1, 1)


def _require_aware(ts: datetime) -> None:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware")


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """First instant of local date ``day`` in ``tz``, as a UTC datetime.

    ``fold=0`` maps a non-existent 00:00 (DST gap) to the instant the gap starts, which is
    the first instant of the local date; an ambiguous 00:00 takes its first occurrence.
    """
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def period_bounds(budget: Budget, ts: datetime) -> tuple[datetime, datetime]:
    """``(start, end)`` of the budget period containing ``ts``: ``start <= ts < end``, UTC.

    Raises ``ValueError`` for a naive ``ts``.
    """
    _require_aware(ts)
    return bounds_for(budget.period, budget.tz, ts, budget.rolling_hours)


def bounds_for(
    period: str, tz: ZoneInfo, ts: datetime, rolling_hours: int | None = None
) -> tuple[datetime, datetime]:
    """:func:`period_bounds` without a Budget (also used for per-day quotas)."""
    _require_aware(ts)
    local = ts.astimezone(tz)
    if period == "day":
        day = local.date()
        return local_midnight(day, tz), local_midnight(day + timedelta(days=1), tz)
    if period == "week":
        monday = local.date() - timedelta(days=local.weekday())
        return local_midnight(monday, tz), local_midnight(monday + timedelta(days=7), tz)
    if period == "month":
        first = local.date().replace(day=1)
        return local_midnight(first, tz), local_midnight(_add_months(first, 1), tz)
    if period == "rolling":
        if not rolling_hours or rolling_hours <= 0:
            raise ValueError("rolling periods need rolling_hours > 0")
        anchor = _EPOCH_LOCAL.replace(tzinfo=tz).astimezone(UTC)
        size = timedelta(hours=rolling_hours)
        count = (ts.astimezone(UTC) - anchor) // size
        start = anchor + count * size
        return start, start + size
    raise ValueError(f"unknown period {period!r}")
