"""configure() precedence and errors; decimal / tag conversions (no broker needed)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import spendwatch
from spendwatch import config, fields
from spendwatch.errors import ConfigurationError, InvalidEventError


def test_argument_beats_environment_beats_default():
    env = {
        "SPENDWATCH_BOOTSTRAP_SERVERS": "kafka-a:9092,kafka-b:9093",
        "SPENDWATCH_SERVICE": "env-svc",
        "SPENDWATCH_ENVIRONMENT": "staging",
    }
    from_env = config.resolve(environ=env)
    assert (from_env.bootstrap_servers, from_env.service, from_env.environment) == (
        "kafka-a:9092,kafka-b:9093",
        "env-svc",
        "staging",
    )
    explicit = config.resolve(
        bootstrap_servers="broker:19092", service="arg-svc", environment="prod", environ=env
    )
    assert (explicit.bootstrap_servers, explicit.service, explicit.environment) == (
        "broker:19092",
        "arg-svc",
        "prod",
    )
    defaults = config.resolve(service="svc", environ={})
    assert (defaults.bootstrap_servers, defaults.environment, defaults.topic) == (
        "localhost:9092",
        None,
        "spendwatch.usage.v1",
    )
    assert defaults.queue_size == 10_000


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "service"),
        ({"service": ""}, "service"),
        ({"service": "-bad"}, "service"),
        ({"service": "svc", "bootstrap_servers": "host"}, "bootstrap_servers"),
        ({"service": "svc", "bootstrap_servers": ""}, "bootstrap_servers"),
        ({"service": "svc", "bootstrap_servers": "host:0"}, "bootstrap_servers"),
        ({"service": "svc", "bootstrap_servers": "a:1,:9092"}, "bootstrap_servers"),
        ({"service": "svc", "queue_size": 0}, "queue_size"),
        ({"service": "svc", "tags": {"k": 1}}, "tags.k"),
        ({"service": "svc", "acks": 2}, "acks"),
    ],
)
def test_misconfiguration_raises_naming_the_field(kwargs, field):
    with pytest.raises(ConfigurationError) as raised:
        config.resolve(environ={}, **kwargs)
    assert raised.value.field == field


def test_configure_raises_at_call_time(monkeypatch):
    monkeypatch.delenv("SPENDWATCH_SERVICE", raising=False)
    with pytest.raises(spendwatch.ConfigurationError, match="service"):
        spendwatch.configure(bootstrap_servers="localhost:9092")
    with pytest.raises(spendwatch.ConfigurationError, match="host:port"):
        spendwatch.configure(bootstrap_servers="localhost", service="svc")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("0.012345678"), "0.012345678"),
        (Decimal("2.50"), "2.50"),
        (Decimal("1E+3"), "1000"),
        (7, "7"),
        ("0.0425", "0.0425"),
        (" 3 ", "3"),
        (2.5, "2.5"),
        (0.1, "0.1"),
        (0.1 + 0.2, "0.3"),
        (1e-10, "0"),
        (Decimal("-0"), "0"),
        (Decimal("0.000"), "0.000"),
    ],
)
def test_decimal_strings_are_exact(value, expected):
    assert fields.cost_usd(value) == expected


@pytest.mark.parametrize(
    "value",
    ["abc", "-0.1", Decimal("0.0000000001"), float("inf"), float("nan"), True, "1e10", None, [1]],
)
def test_bad_money_is_refused(value):
    with pytest.raises(InvalidEventError) as raised:
        fields.cost_usd(value)
    assert raised.value.field == "cost_usd"


def test_quantity_allows_twelve_integer_digits():
    assert fields.quantity("999999999999.5") == "999999999999.5"
    with pytest.raises(InvalidEventError):
        fields.quantity("1000000000000")


def test_tags_are_bounded():
    assert fields.tags("tags", {f"k{i}": "v" for i in range(32)}) == {
        f"k{i}": "v" for i in range(32)
    }
    with pytest.raises(InvalidEventError, match="at most 32"):
        fields.tags("tags", {f"k{i}": "v" for i in range(33)})
    with pytest.raises(InvalidEventError):
        fields.tags("tags", {"k": "v" * 257})
    with pytest.raises(InvalidEventError):
        fields.merge_tags({f"a{i}": "v" for i in range(20)}, {f"b{i}": "v" for i in range(13)})


def test_unconfigured_sdk_discards_and_counts(monkeypatch):
    monkeypatch.delenv("SPENDWATCH_SERVICE", raising=False)
    spendwatch.record("op")
    with spendwatch.track("op2"):
        pass
    assert spendwatch.stats().rejected == 2
