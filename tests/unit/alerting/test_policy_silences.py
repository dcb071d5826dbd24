"""Matchers, durations and silence windows with explicit times."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerting.policy.matchers import Matcher
from alerting.policy.silences import Silence, parse_duration, silenced_by
from tests.unit.alerting.factories import T0, at, spike_alert, threshold_alert


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("90m", 5400),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1d", 86400),
        ("1w", 604800),
        ("0.5h", 1800),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "2", "h", "2x", "-1h", "0h", "1h 30m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_matcher_ops() -> None:
    a = spike_alert(service="checkout", severity="warning")
    assert Matcher.parse("service=checkout").matches(a)
    assert not Matcher.parse("service!=checkout").matches(a)
    assert Matcher.parse("service=~check.*").matches(a)
    assert not Matcher.parse("service=~check").matches(a)  # anchored like Alertmanager
    assert Matcher.parse("service!~chat|search").matches(a)
    assert Matcher.parse("severity=warning").matches(a)
    assert Matcher.parse("kind=spike").matches(a)
    assert Matcher.parse("team=").matches(a)  # a missing label is ""
    assert str(Matcher.parse("budget=~fleet-.*")) == "budget=~fleet-.*"
    for bad in ("service", "=x", "a b=c", "x=~("):
        with pytest.raises(ValueError):
            Matcher.parse(bad)


def test_silence_window_is_half_open() -> None:
    s = Silence.create(
        [Matcher.parse("service=checkout")],
        now=T0,
        duration=timedelta(hours=2),
        comment="deploy",
        created_by="ana",
        starts_at=at(60),
    )
    a = spike_alert(service="checkout")
    assert silenced_by(a, [s], at(59)) == ()
    assert silenced_by(a, [s], at(60)) == (s.id,)
    assert silenced_by(a, [s], at(60 + 7199)) == (s.id,)
    assert silenced_by(a, [s], at(60 + 7200)) == ()
    assert silenced_by(threshold_alert(), [s], at(100)) == ()
    assert [s.state(at(t)) for t in (0, 60, 7260)] == ["pending", "active", "expired"]


def test_silence_round_trips_and_validates() -> None:
    s = Silence.create(
        [Matcher.parse("budget=~fleet-.*"), Matcher.parse("severity!=emergency")],
        now=T0,
        duration=timedelta(minutes=30),
        comment="c",
        created_by="me",
    )
    assert Silence.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError):
        Silence.create([], now=T0, duration=timedelta(hours=1), comment="", created_by="")
