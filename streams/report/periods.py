"""Report periods: a day, a week (Monday to Monday) or a month, in a time zone (pure).

:func:`span_of` gives the period containing ``now`` so far (``spendwatch report``) or the
last complete one (the scheduled reports), with the previous period to compare against: the
whole previous period for a complete one, the same elapsed stretch of it for a period so far
(Monday to Wednesday noon against the previous Monday to Wednesday noon).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo

Period = Literal["day", "week", "month"]
PERIODS: Final[tuple[Period, ...]] = ("day", "week", "month")


@dataclass(frozen=True, slots=True)
class Span:
    """``[start, end)`` as aware UTC datetimes, and its label in the report's zone."""

    start: datetime
    end: datetime
    label: str


@dataclass(frozen=True, slots=True)
class ReportSpan:
    """The reported period and the one it is compared with."""

    period: Period
    timezone: str
    current: Span
    previous: Span
    complete: bool

    @property
    def key(self) -> str:
        """``week:2026-11-23``: one report per period and start (the delivery log's key)."""
        return f"{self.period}:{self.current.start.astimezone(ZoneInfo(self.timezone)):%Y-%m-%d}"


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def period_start(period: Period, day: date) -> date:
    """The first day of the period containing ``day``."""
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def next_start(period: Period, start: date) -> date:
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def previous_start(period: Period, start: date) -> date:
    return period_start(period, start - timedelta(days=1))


def label(period: Period, start: date) -> str:
    if period == "day":
        return start.isoformat()
    if period == "week":
        iso = start.isocalendar()
        return f"week {iso.week} of {iso.year} ({start:%b} {start.day})"
    return f"{start:%B %Y}"


def span_of(period: Period, now: datetime, timezone: str, *, complete: bool) -> ReportSpan:
    """The period containing ``now`` so far (``complete=False``), or the last complete period
    before it, with the previous period. Raises ``ValueError`` for a naive ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    start = period_start(period, today)
    if complete:
        start = previous_start(period, start)
    end_day = next_start(period, start)
    cur_start = _local_midnight(start, zone)
    cur_end = _local_midnight(end_day, zone) if complete else now.astimezone(UTC)
    prev = previous_start(period, start)
    prev_start = _local_midnight(prev, zone)
    prev_end = _local_midnight(start, zone)
    if not complete:  # like for like: the same stretch of the previous period
        prev_end = min(prev_end, prev_start + (cur_end - cur_start))
    current_label = label(period, start) + ("" if complete else " (so far)")
    return ReportSpan(
        period=period,
        timezone=timezone,
        current=Span(cur_start, cur_end, current_label),
        previous=Span(prev_start, prev_end, label(period, prev)),
        complete=complete,
    )


def due_span(
    period: Period, now: datetime, timezone: str, at: time, last_key: str | None
) -> ReportSpan | None:
    """The complete period whose report is due at ``now`` (its successor started and local
    time there passed ``at``), unless it is ``last_key``."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    start = period_start(period, local.date())
    if local < datetime.combine(start, at, zone):
        return None
    span = span_of(period, now, timezone, complete=True)
    return None if span.key == last_key else span
