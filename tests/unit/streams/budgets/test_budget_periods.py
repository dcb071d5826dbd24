"""Period boundaries: UTC and America/New_York days (DST), weeks from Monday, month ends,
leap February, rolling windows. Expected instants are written out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from streams.budgets import Budget, period_bounds

NY = ZoneInfo("America/New_York")


def budget(period: str = "day", tz: str = "UTC", rolling_hours: int | None = None) -> Budget:
    return Budget(
        name="b",
        limit_nusd=1,
        period=period,  # type: ignore[arg-type]
        timezone=tz,
        rolling_hours=rolling_hours,
    )


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_day_utc() -> None:
    start, end = period_bounds(budget(), utc(2024, 5, 17, 13, 45, 12))
    assert (start, end) == (utc(2024, 5, 17), utc(2024, 5, 18))
    assert start.tzinfo is UTC


def test_day_boundary_instant_belongs_to_the_new_day() -> None:
    assert period_bounds(budget(), utc(2024, 5, 18)) == (utc(2024, 5, 18), utc(2024, 5, 19))
    last = utc(2024, 5, 18) - timedelta(microseconds=1)
    assert period_bounds(budget(), last) == (utc(2024, 5, 17), utc(2024, 5, 18))


def test_day_in_new_york_resets_at_local_midnight() -> None:
    # 2024-07-02 03:30 UTC is 2024-07-01 23:30 EDT (UTC-4).
    start, end = period_bounds(budget(tz="America/New_York"), utc(2024, 7, 2, 3, 30))
    assert (start, end) == (utc(2024, 7, 1, 4), utc(2024, 7, 2, 4))
    assert start.astimezone(NY).hour == 0


def test_spring_forward_day_is_23_hours() -> None:
    # 2024-03-10: 02:00 EST -> 03:00 EDT. Midnight is EST (UTC-5), next midnight EDT (UTC-4).
    start, end = period_bounds(budget(tz="America/New_York"), utc(2024, 3, 10, 12))
    assert (start, end) == (utc(2024, 3, 10, 5), utc(2024, 3, 11, 4))
    assert end - start == timedelta(hours=23)


def test_fall_back_day_is_25_hours() -> None:
    # 2024-11-03: 02:00 EDT -> 01:00 EST.
    start, end = period_bounds(budget(tz="America/New_York"), utc(2024, 11, 3, 6, 30))
    assert (start, end) == (utc(2024, 11, 3, 4), utc(2024, 11, 4, 5))
    assert end - start == timedelta(hours=25)


def test_midnight_in_a_dst_gap_starts_the_day_at_its_first_instant() -> None:
    # America/Santiago 2022-09-11: 00:00 -04 does not exist, clocks jump to 01:00 -03.
    start, end = period_bounds(budget(tz="America/Santiago"), utc(2022, 9, 11, 12))
    assert start == utc(2022, 9, 11, 4)
    assert end == utc(2022, 9, 12, 3)
    assert end - start == timedelta(hours=23)


def test_week_starts_monday() -> None:
    # 2024-05-19 is a Sunday; its week started Monday 2024-05-13.
    assert period_bounds(budget("week"), utc(2024, 5, 19, 23, 59)) == (
        utc(2024, 5, 13),
        utc(2024, 5, 20),
    )
    assert period_bounds(budget("week"), utc(2024, 5, 20)) == (utc(2024, 5, 20), utc(2024, 5, 27))


def test_week_spanning_dst_in_new_york_is_167_hours() -> None:
    start, end = period_bounds(budget("week", "America/New_York"), utc(2024, 3, 10, 12))
    assert (start, end) == (utc(2024, 3, 4, 5), utc(2024, 3, 11, 4))
    assert end - start == timedelta(hours=167)


@pytest.mark.parametrize(
    ("ts", "start", "end"),
    [
        (utc(2024, 1, 31, 23, 59), utc(2024, 1, 1), utc(2024, 2, 1)),
        (utc(2024, 2, 29, 12), utc(2024, 2, 1), utc(2024, 3, 1)),  # leap year
        (utc(2023, 2, 28, 12), utc(2023, 2, 1), utc(2023, 3, 1)),
        (utc(2024, 12, 31, 23, 59, 59), utc(2024, 12, 1), utc(2025, 1, 1)),
        (utc(2025, 1, 1), utc(2025, 1, 1), utc(2025, 2, 1)),
    ],
)
def test_month(ts: datetime, start: datetime, end: datetime) -> None:
    assert period_bounds(budget("month"), ts) == (start, end)


def test_leap_february_has_29_days() -> None:
    start, end = period_bounds(budget("month"), utc(2024, 2, 10))
    assert end - start == timedelta(days=29)


def test_month_in_new_york() -> None:
    # 2024-03-01 02:00 UTC is still February 29 (21:00 EST) in New York.
    start, end = period_bounds(budget("month", "America/New_York"), utc(2024, 3, 1, 2))
    assert (start, end) == (utc(2024, 2, 1, 5), utc(2024, 3, 1, 5))


def test_rolling_windows_are_fixed_and_aligned_in_utc() -> None:
    b = budget("rolling", rolling_hours=6)
    assert period_bounds(b, utc(2024, 5, 17, 13, 5)) == (utc(2024, 5, 17, 12), utc(2024, 5, 17, 18))
    b5 = budget("rolling", rolling_hours=5)
    # 2024-05-17 03:00 UTC is 19,860 days + 3 h = 476,643 h after the epoch; 476,640 = 5 x 95,328.
    start, end = period_bounds(b5, utc(2024, 5, 17, 3))
    assert start == utc(1970, 1, 1) + timedelta(hours=476_640)
    assert (start, end) == (utc(2024, 5, 17), utc(2024, 5, 17, 5))
    # 2024-05-17 06:00 UTC (476,646 h) lies in the window starting at 476,645 h (05:00).
    assert period_bounds(b5, utc(2024, 5, 17, 6)) == (utc(2024, 5, 17, 5), utc(2024, 5, 17, 10))


def test_rolling_in_a_zone_is_anchored_at_local_epoch() -> None:
    b = budget("rolling", "America/New_York", rolling_hours=24)
    # Anchor: 1970-01-01 00:00 EST = 05:00 UTC; windows are exactly 24 elapsed hours.
    start, end = period_bounds(b, utc(2024, 7, 1, 12))
    assert start == utc(2024, 7, 1, 5)
    assert end == utc(2024, 7, 2, 5)


def test_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        period_bounds(budget(), datetime(2024, 1, 1))
