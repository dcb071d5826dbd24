"""When the daily digest is due, and the day it covers, with explicit timestamps."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from streams.digest import day_bounds, digest_day_due


def test_due_after_the_local_hour_for_the_day_before() -> None:
    at = time(8, 0)
    assert digest_day_due(datetime(2026, 3, 9, 7, 59, tzinfo=UTC), at, "UTC", None) is None
    assert digest_day_due(datetime(2026, 3, 9, 8, 0, tzinfo=UTC), at, "UTC", None) == date(
        2026, 3, 8
    )
    assert (
        digest_day_due(datetime(2026, 3, 9, 8, 0, tzinfo=UTC), at, "UTC", date(2026, 3, 8)) is None
    )


def test_due_in_the_configured_zone() -> None:
    # 08:00 in New York on 9 March 2026 (EDT, UTC-4) is 12:00 UTC.
    at = time(8, 0)
    ny = "America/New_York"
    assert digest_day_due(datetime(2026, 3, 9, 11, 59, tzinfo=UTC), at, ny, None) is None
    assert digest_day_due(datetime(2026, 3, 9, 12, 0, tzinfo=UTC), at, ny, None) == date(2026, 3, 8)


def test_day_bounds_follow_daylight_saving() -> None:
    start, end = day_bounds(date(2026, 3, 8), "America/New_York")  # spring forward: 23 h
    assert start.astimezone(UTC) == datetime(2026, 3, 8, 5, tzinfo=UTC)
    assert end.astimezone(UTC) == datetime(2026, 3, 9, 4, tzinfo=UTC)
    start, end = day_bounds(date(2026, 11, 1), "America/New_York")  # fall back: 25 h
    assert (end - start).total_seconds() == 25 * 3600
