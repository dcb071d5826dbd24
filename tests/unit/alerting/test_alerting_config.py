"""AlertingSettings.from_config: shapes, defaults, and ConfigError naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from alerting.config import AlertingSettings, ConsoleReceiver, EmailReceiver, SlackReceiver
from alerting.policy.inhibition import DEFAULT_RULE
from schemas.errors import ConfigError

ENV = {"SLACK_URL": "https://hooks.slack.com/services/T/B/secretpart", "SMTP_PW": "pw-123"}


def load(section: dict[str, Any] | None) -> AlertingSettings:
    return AlertingSettings.from_config(section, environ=ENV)


def test_absent_section_gives_one_console_receiver() -> None:
    empty: dict[str, Any] = {}
    for section in (None, empty):
        s = load(section)
        assert s.receivers == (ConsoleReceiver(name="console"),)
        assert s.default_receivers == ("console",)
        assert s.inhibit_rules == (DEFAULT_RULE,)
        assert (s.defaults.group_wait_s, s.defaults.group_interval_s) == (10.0, 60.0)
        assert s.defaults.repeat_interval_s == 14400.0


def test_full_shape() -> None:
    s = load(
        {
            "group_wait_s": 5,
            "group_interval_s": 30,
            "repeat_interval_s": 3600,
            "receivers": [
                {"name": "oncall-slack", "type": "slack", "webhook_url": "env:SLACK_URL"},
                {
                    "name": "finance",
                    "type": "email",
                    "to": ["a@x.com"],
                    "from": "spendwatch@x.com",
                    "smtp_host": "smtp.x.com",
                    "smtp_port": 587,
                    "starttls": True,
                    "username": "sw",
                    "password": "env:SMTP_PW",
                },
                {"name": "console", "type": "console"},
            ],
            "routes": [
                {
                    "match": {"severity": ["critical", "emergency"], "kind": "threshold"},
                    "receivers": ["oncall-slack"],
                    "continue": True,
                    "group_by": ["budget"],
                }
            ],
            "escalations": [{"match": {"severity": "emergency"}, "receivers": ["finance"]}],
            "retry": {"max_attempts": 3, "initial_backoff_s": 0.5},
        }
    )
    slack = s.receiver("oncall-slack")
    assert isinstance(slack, SlackReceiver)
    assert slack.webhook_url is not None
    assert slack.webhook_url.reveal() == ENV["SLACK_URL"]
    email = s.receiver("finance")
    assert isinstance(email, EmailReceiver)
    assert (email.smtp_port, email.starttls, email.tls) == (587, True, False)
    assert s.routes[0].continue_ is True
    assert s.routes[0].params.group_by == ("budget",)
    assert s.routes[0].params.group_wait_s == 5.0  # inherited from the section
    assert s.escalations[0].receivers == ("finance",)
    assert s.default_receivers == ("oncall-slack", "finance", "console")
    assert (s.retry.max_attempts, s.retry.initial_backoff_s) == (3, 0.5)


def test_secrets_never_printed() -> None:
    s = load({"receivers": [{"name": "s", "type": "slack", "webhook_url": "env:SLACK_URL"}]})
    text = repr(s) + str(s)
    assert "secretpart" not in text
    assert "Secret(env:SLACK_URL)" in text
    inline = load({"receivers": [{"name": "s", "type": "slack", "webhook_url": ENV["SLACK_URL"]}]})
    assert "secretpart" not in repr(inline)


@pytest.mark.parametrize(
    ("section", "field"),
    [
        (
            {"receivers": [{"name": "c", "type": "console"}, {"name": "s", "type": "slack"}]},
            "alerting.receivers[1].webhook_url",
        ),
        (
            {"receivers": [{"name": "s", "type": "slack", "webhook_url": "env:NOPE"}]},
            "alerting.receivers[0].webhook_url",
        ),
        (
            {"receivers": [{"name": "s", "type": "slack", "webhook_url": "ftp://x"}]},
            "alerting.receivers[0].webhook_url",
        ),
        (
            {"receivers": [{"name": "s", "type": "slack", "bot_token": "xoxb-1"}]},
            "alerting.receivers[0].channel",
        ),
        ({"receivers": [{"name": "s", "type": "pager"}]}, "alerting.receivers[0].type"),
        (
            {"receivers": [{"name": "c", "type": "console", "colour": "red"}]},
            "alerting.receivers[0].colour",
        ),
        (
            {"receivers": [{"name": "c", "type": "console"}, {"name": "c", "type": "console"}]},
            "alerting.receivers[1].name",
        ),
        (
            {"receivers": [{"name": "e", "type": "email", "from": "a@x", "smtp_host": "h"}]},
            "alerting.receivers[0].to",
        ),
        (
            {
                "receivers": [
                    {
                        "name": "e",
                        "type": "email",
                        "to": ["nobody"],
                        "from": "a@x",
                        "smtp_host": "h",
                    }
                ]
            },
            "alerting.receivers[0].to[0]",
        ),
        (
            {
                "receivers": [
                    {
                        "name": "e",
                        "type": "email",
                        "to": ["b@x"],
                        "from": "a@x",
                        "smtp_host": "h",
                        "username": "u",
                    }
                ]
            },
            "alerting.receivers[0].password",
        ),
        ({"routes": [{"receivers": ["ghost"]}]}, "alerting.routes[0].receivers[0]"),
        (
            {"routes": [{"match": {"severity": "loud"}, "receivers": ["console"]}]},
            "alerting.routes[0].match.severity",
        ),
        (
            {"escalations": [{"receivers": ["console"], "continue": True}]},
            "alerting.escalations[0].continue",
        ),
        ({"group_wait_s": "10"}, "alerting.group_wait_s"),
        ({"retry": {"max_attempts": 0}}, "alerting.retry.max_attempts"),
        ({"inhibit": [{"target_match": {}}]}, "alerting.inhibit[0].source_match"),
        ({"bogus": 1}, "alerting.bogus"),
    ],
)
def test_config_errors_name_the_field(section: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(section)
    assert info.value.field == field
    assert "secretpart" not in str(info.value)
