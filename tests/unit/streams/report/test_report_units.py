"""Report periods, the [report] / [console] settings and figure formatting (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from schemas.errors import ConfigError
from streams.config import load_settings
from streams.console.settings import ConsoleSettings, is_loopback
from streams.report.figures import change, per_unit, percent, usd
from streams.report.periods import due_span, span_of
from streams.report.settings import NOT_LLM, UNTIERED, ReportSettings

WED = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_week_so_far_compares_like_for_like() -> None:
    span = span_of("week", WED, "UTC", complete=False)
    assert span.current.start == datetime(2026, 11, 23, tzinfo=UTC)
    assert span.current.end == WED
    assert span.previous.start == datetime(2026, 11, 16, tzinfo=UTC)
    assert span.previous.end == datetime(2026, 11, 18, 12, tzinfo=UTC)
    assert span.key == "week:2026-11-23"
    assert span.current.label == "week 48 of 2026 (Nov 23) (so far)"


def test_complete_month_and_day_in_a_zone() -> None:
    month = span_of("month", WED, "UTC", complete=True)
    assert (month.current.start, month.current.end) == (
        datetime(2026, 10, 1, tzinfo=UTC),
        datetime(2026, 11, 1, tzinfo=UTC),
    )
    assert (month.previous.start, month.previous.end) == (
        datetime(2026, 9, 1, tzinfo=UTC),
        datetime(2026, 10, 1, tzinfo=UTC),
    )
    assert month.current.label == "October 2026"
    # New York: the day before DST ended (2026-11-01) is 25 hours long.
    day = span_of("day", datetime(2026, 11, 2, 12, tzinfo=UTC), "America/New_York", complete=True)
    assert day.current.start == datetime(2026, 11, 1, 4, tzinfo=UTC)
    assert day.current.end == datetime(2026, 11, 2, 5, tzinfo=UTC)
    with pytest.raises(ValueError):
        span_of("day", datetime(2026, 11, 2), "UTC", complete=True)


def test_due_span_after_at_on_the_first_day_once() -> None:
    monday = datetime(2026, 11, 30, tzinfo=UTC)
    at = time(8, 0)
    assert due_span("week", monday.replace(hour=7, minute=59), "UTC", at, None) is None
    span = due_span("week", monday.replace(hour=8), "UTC", at, None)
    assert span is not None and span.key == "week:2026-11-23" and span.complete
    assert due_span("week", monday.replace(hour=9), "UTC", at, span.key) is None
    month = due_span("month", datetime(2026, 12, 1, 8, tzinfo=UTC), "UTC", at, None)
    assert month is not None and month.key == "month:2026-11-01"


def test_tiers_first_match_in_config_order() -> None:
    s = ReportSettings.from_config(
        {"tiers": {"small": ["*haiku*", "gpt-4o-mini*"], "large": ["gpt-4o*", "*sonnet*"]}}
    )
    assert s.tier_of("claude-3-5-haiku-latest") == "small"
    assert s.tier_of("gpt-4o-mini-2024-07-18") == "small"  # first match wins over gpt-4o*
    assert s.tier_of("gpt-4o") == "large"
    assert s.tier_of("o3-mini") == UNTIERED
    assert s.tier_of("") == NOT_LLM
    assert s.tier_names == ("small", "large", UNTIERED, NOT_LLM)


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"tag": "bad tag"}, "report.tag"),
        ({"unit_tags": ["lead", "lead"]}, "report.unit_tags"),
        ({"tiers": {"t1": []}}, "report.tiers"),
        ({"timezone": "Mars/Olympus"}, "report.timezone"),
        ({"at": "25:00"}, "report.at"),
        ({"weekly": "yes"}, "report.weekly"),
        ({"colour": "red"}, "report.colour"),
        ({"receivers": ["nobody"]}, "report.receivers[0]"),
    ],
)
def test_bad_report_settings_name_the_field(section: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        ReportSettings.from_config(section, ("console",))
    assert err.value.field == field


def test_console_beyond_loopback_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    with pytest.raises(ConfigError) as err:
        ConsoleSettings.from_config({}, "0.0.0.0")
    assert err.value.field == "console.token"
    monkeypatch.setenv("SW_TOKEN", "t0k")
    ok = ConsoleSettings.from_config({"token": "env:SW_TOKEN"}, "0.0.0.0")
    assert ok.token is not None and ok.token.reveal() == "t0k" and "t0k" not in repr(ok)
    assert ConsoleSettings.from_config({"enabled": False}, "0.0.0.0").token is None
    with pytest.raises(ConfigError) as err:
        ConsoleSettings.from_config({"refresh_s": 0}, "127.0.0.1")
    assert err.value.field == "console.refresh_s"


def test_sections_load_from_the_file() -> None:
    settings = load_settings(
        text='[worker]\nhttp_host = "0.0.0.0"\n[console]\ntoken = "x"\n'
        '[report]\nunit_tags = ["lead"]\n[report.tiers]\n"tier 1" = ["*haiku*"]\n'
    )
    assert settings.console.token.reveal() == "x"
    assert settings.report.unit_tags == ("lead",)
    with pytest.raises(ConfigError, match=r"^console\.token: required when"):
        load_settings(text='[worker]\nhttp_host = "0.0.0.0"\n')


def test_figures() -> None:
    assert usd(42_123_456) == "$0.0421"
    assert usd(12_345_678_901) == "$12.35"
    assert per_unit(10, 3) == "$0.0000" and per_unit(1, 0) == "\u2014"
    assert percent(1, 8) == "12.5%" and percent(4996, 10_000, floor=True) == "49.9%"
    assert percent(4996, 10_000) == "50.0%"
    assert change(150, 100) == "+50.0%" and change(50, 100) == "-50.0%"
    assert change(5, 0) == "new" and change(0, 0) == "0.0%"
