"""The SDK's configuration errors name the variable or argument and what is wrong (issue 15)."""

from __future__ import annotations

import logging

import pytest
import spendwatch
from spendwatch import config, runtime
from spendwatch.errors import ConfigurationError


def test_a_bad_variable_is_named() -> None:
    env = {"SPENDWATCH_BOOTSTRAP_SERVERS": "bogus", "SPENDWATCH_SERVICE": "svc"}
    with pytest.raises(ConfigurationError) as info:
        config.resolve(environ=env)
    assert str(info.value) == (
        "spendwatch: SPENDWATCH_BOOTSTRAP_SERVERS: 'bogus' is not host:port (e.g. 'localhost:9092')"
    )
    # positive control: the same variable, well formed
    assert (
        config.resolve(environ={**env, "SPENDWATCH_BOOTSTRAP_SERVERS": "h:9092"}).service == "svc"
    )
    with pytest.raises(ConfigurationError, match="SPENDWATCH_SERVICE"):
        config.resolve(environ={"SPENDWATCH_SERVICE": "has space"})


@pytest.mark.parametrize(
    ("given", "shown"), [("http://kafka:9092", "'kafka:9092'"), ("kafka://h:1,h2:2", "'h:1'")]
)
def test_a_url_is_refused_at_configure(given: str, shown: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        spendwatch.configure(bootstrap_servers=given, service="svc")
    assert info.value.field == "bootstrap_servers"
    assert f"is a URL; Kafka takes host:port, e.g. {shown}" in str(info.value)


def test_unconfigured_warning_names_the_problem(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spendwatch.shutdown(0)
    monkeypatch.delenv("SPENDWATCH_SERVICE", raising=False)
    monkeypatch.setenv("SPENDWATCH_BOOTSTRAP_SERVERS", "bogus")
    monkeypatch.setattr(runtime, "_warned_unconfigured", False)
    with caplog.at_level(logging.WARNING, logger="spendwatch"):
        spendwatch.record("op")
    assert "SPENDWATCH_BOOTSTRAP_SERVERS: 'bogus' is not host:port" in caplog.text
    monkeypatch.setenv("SPENDWATCH_BOOTSTRAP_SERVERS", "h:9092")
    monkeypatch.setattr(runtime, "_warned_unconfigured", False)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="spendwatch"):
        spendwatch.record("op")
    assert "not configured (SPENDWATCH_SERVICE is not set): call" in caplog.text
