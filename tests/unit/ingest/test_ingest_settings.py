"""``[ingest]`` settings: validated at start-up, naming the field; the token never printed."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ingest.settings import ENV_TOKEN, IngestSettings
from schemas.errors import ConfigError
from streams.config import load_settings

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "0123456789abcdef"


@pytest.fixture(autouse=True)
def _no_env_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_TOKEN, raising=False)


def test_defaults_and_the_token_stays_secret() -> None:
    settings = IngestSettings.from_config({"token": TOKEN})
    assert (settings.host, settings.port, settings.max_body_bytes) == ("127.0.0.1", 4318, 4 << 20)
    assert (settings.produce_timeout_s, settings.retry_after_s, settings.acks) == (10.0, 5, "all")
    assert TOKEN not in repr(settings)


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({}, "ingest.token"),
        ({"token": "short"}, "ingest.token"),
        ({"token": TOKEN, "port": 70000}, "ingest.port"),
        ({"token": TOKEN, "max_body_bytes": 10}, "ingest.max_body_bytes"),
        ({"token": TOKEN, "acks": 0}, "ingest.acks"),
        ({"token": TOKEN, "tokn": "x"}, "ingest.tokn"),
    ],
)
def test_bad_settings_name_the_field(section: dict, field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        IngestSettings.from_config(section)
    assert raised.value.field == field


def test_environment_token_and_the_example_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.example/services/T/B/X")
    text = (ROOT / "spendwatch.example.toml").read_text()
    load_settings(text=text)  # the worker's loader accepts the [ingest] section
    section = tomllib.loads(text)["ingest"]
    with pytest.raises(ConfigError):
        IngestSettings.from_config(section)  # the example has no token
    monkeypatch.setenv(ENV_TOKEN, "from-the-environment-123")
    assert IngestSettings.from_config(section).token == "from-the-environment-123"
