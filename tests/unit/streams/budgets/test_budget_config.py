"""``[[budgets]]`` parsing: fields, defaults, scope matching and errors naming field + line."""

from __future__ import annotations

import tomllib
from decimal import Decimal

import pytest

from schemas.errors import ConfigError
from streams.budgets import Budget, load_budgets, matching

GOOD = """\
[kafka]
bootstrap_servers = "127.0.0.1:9092"

[[budgets]]
name = "all-spend"
limit_usd = "1000"

[[budgets]]
name = "growth-llm"
period = "month"
timezone = "America/New_York"
limit_usd = 250.75
thresholds = [0.5, 0.8, { at = 0.9, severity = "critical" }, 1.0, 1.2]
per_request_limit_usd = "2.50"
requests_per_minute = 600
tokens_per_day = 5000000
labels = { team = "growth" }
receivers = ["slack-growth"]
degrade_to = { "gpt-4o" = "gpt-4o-mini" }
on_exhausted = "degrade"

[budgets.match]
service = "chat-*"
model = ["gpt-4o", "gpt-4o-mini"]
tags = { team = "growth" }

[[budgets]]
name = "batch"
period = "rolling"
rolling_hours = 6
limit_usd = "0.000000001"
thresholds = [0.8, 1.0]
"""


def load(text: str) -> tuple[Budget, ...]:
    return load_budgets(tomllib.loads(text).get("budgets", []), text)


def test_good_file() -> None:
    everything, growth, batch = load(GOOD)
    assert everything.name == "all-spend"
    assert everything.limit_nusd == 1_000_000_000_000
    assert everything.period == "day" and everything.timezone == "UTC"
    assert [(t.key, t.severity) for t in everything.thresholds] == [
        ("0.5", "info"),
        ("0.8", "warning"),
        ("0.95", "critical"),
        ("1", "emergency"),
    ]
    assert everything.match.describe() == "everything"

    assert growth.limit_nusd == 250_750_000_000
    assert growth.period == "month" and growth.tz.key == "America/New_York"
    assert [(t.at, t.severity) for t in growth.thresholds] == [
        (Decimal("0.5"), "info"),
        (Decimal("0.8"), "warning"),
        (Decimal("0.9"), "critical"),
        (Decimal("1.0"), "emergency"),
        (Decimal("1.2"), "emergency"),
    ]
    assert growth.per_request_limit_nusd == 2_500_000_000
    assert growth.requests_per_minute == 600 and growth.tokens_per_day == 5_000_000
    assert growth.requests_per_day is None
    assert growth.alert_labels == {
        "team": "growth",
        "receivers": "slack-growth",
        "budget": "growth-llm",
    }
    assert dict(growth.degrade_to) == {"gpt-4o": "gpt-4o-mini"}
    assert growth.on_exhausted == "degrade"

    assert batch.period == "rolling" and batch.rolling_hours == 6
    assert batch.limit_nusd == 1
    assert [(t.key, t.severity) for t in batch.thresholds] == [
        ("0.8", "critical"),
        ("1", "emergency"),
    ]


def test_matching() -> None:
    everything, growth, _ = load(GOOD)
    event = {"service": "chat-api", "model": "gpt-4o", "tags": {"team": "growth", "x": "y"}}
    assert growth.matches(event) and everything.matches(event)
    assert not growth.matches({**event, "service": "search"})
    assert not growth.matches({**event, "model": "gpt-4o-2024-08-06"})
    assert not growth.matches({**event, "tags": {"team": "core"}})
    assert not growth.matches({"service": "chat-api", "model": "gpt-4o"})  # no tags
    assert [b.name for b in matching(load(GOOD), event)] == ["all-spend", "growth-llm", "batch"]


def test_glob_and_provider() -> None:
    text = '[[budgets]]\nname="x"\nlimit_usd=1\nmatch={provider="openai", model="gpt-4o*"}\n'
    (b,) = load(text)
    assert b.matches({"service": "s", "provider": "openai", "model": "gpt-4o-mini"})
    assert not b.matches({"service": "s", "provider": "anthropic", "model": "gpt-4o"})
    assert not b.matches({"service": "s", "provider": "openai"})


def test_empty_list_is_no_budgets() -> None:
    assert load_budgets([]) == ()


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(text)
    return info.value


def test_limit_error_names_field_and_line() -> None:
    text = GOOD.replace('limit_usd = "0.000000001"', 'limit_usd = "-5"')
    err = error_of(text)
    assert err.field == "budgets[2].limit_usd"
    assert err.line == 31
    assert "positive" in err.message
    assert str(err).startswith("line 31: budgets[2].limit_usd:")


def test_unknown_key_is_a_typo() -> None:
    text = GOOD.replace("per_request_limit_usd", "per_request_limt_usd")
    err = error_of(text)
    assert err.field == "budgets[1].per_request_limt_usd"
    assert err.line == 14


def test_unknown_match_key_in_subtable() -> None:
    text = GOOD.replace('service = "chat-*"', 'servce = "chat-*"')
    err = error_of(text)
    assert err.field == "budgets[1].match.servce"
    assert err.line == 23


def test_unknown_time_zone() -> None:
    err = error_of(GOOD.replace("America/New_York", "America/Nowhere"))
    assert err.field == "budgets[1].timezone" and err.line == 11
    assert "America/Nowhere" in err.message


def test_duplicate_name() -> None:
    err = error_of(GOOD.replace('name = "batch"', 'name = "all-spend"'))
    assert err.field == "budgets[2].name" and err.line == 28
    assert "duplicate" in err.message


@pytest.mark.parametrize(
    ("thresholds", "needle"),
    [
        ("[0.5, 0.5]", "strictly increasing"),
        ("[0.8, 0.5]", "strictly increasing"),
        ("[0, 1]", "above 0"),
        ("[-0.5, 1]", "above 0"),
        ("[]", "non-empty"),
        ('["x"]', "not a number"),
        ("[{ at = 0.5, severity = 'loud' }]", "severity"),
        ("[{ severity = 'info' }]", "needs 'at'"),
    ],
)
def test_bad_thresholds(thresholds: str, needle: str) -> None:
    err = error_of(GOOD.replace("thresholds = [0.8, 1.0]", f"thresholds = {thresholds}"))
    assert err.field == "budgets[2].thresholds"
    assert err.line == 32
    assert needle in err.message


@pytest.mark.parametrize(
    ("replace", "by", "field"),
    [
        ('name = "batch"\n', "", "budgets[2].name"),
        ('limit_usd = "0.000000001"\n', "", "budgets[2].limit_usd"),
        ('limit_usd = "0.000000001"', 'limit_usd = "lots"', "budgets[2].limit_usd"),
        ('limit_usd = "0.000000001"', 'limit_usd = "0.0000000001"', "budgets[2].limit_usd"),
        ('limit_usd = "0.000000001"', "limit_usd = true", "budgets[2].limit_usd"),
        ("rolling_hours = 6\n", "", "budgets[2].rolling_hours"),
        ("rolling_hours = 6", "rolling_hours = 0", "budgets[2].rolling_hours"),
        ('period = "rolling"', 'period = "fortnight"', "budgets[2].period"),
        ('on_exhausted = "degrade"', 'on_exhausted = "explode"', "budgets[1].on_exhausted"),
        ('degrade_to = { "gpt-4o" = "gpt-4o-mini" }\n', "", "budgets[1].degrade_to"),
        ("requests_per_minute = 600", "requests_per_minute = -1", "budgets[1].requests_per_minute"),
        (
            "requests_per_minute = 600",
            "requests_per_minute = 1.5",
            "budgets[1].requests_per_minute",
        ),
        ('labels = { team = "growth" }', "labels = { team = 3 }", "budgets[1].labels.team"),
        ('model = ["gpt-4o", "gpt-4o-mini"]', 'model = ["g*pt"]', "budgets[1].match.model"),
        ('model = ["gpt-4o", "gpt-4o-mini"]', "model = []", "budgets[1].match.model"),
    ],
)
def test_field_errors(replace: str, by: str, field: str) -> None:
    assert replace in GOOD
    err = error_of(GOOD.replace(replace, by))
    assert err.field == field
    assert err.line is not None


def test_errors_without_source_text_have_no_line() -> None:
    with pytest.raises(ConfigError) as info:
        load_budgets([{"name": "x", "limit_usd": "0"}])
    assert info.value.field == "budgets[0].limit_usd" and info.value.line is None


def test_not_a_table() -> None:
    with pytest.raises(ConfigError) as info:
        load_budgets(["x"])  # type: ignore[list-item]
    assert info.value.field == "budgets[0]"
