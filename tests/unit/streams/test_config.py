"""``spendwatch.toml`` loading: defaults, precedence, errors that name the field and line,
and the shipped example and compose files staying valid."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from schemas.errors import ConfigError
from streams.config import ENV_BOOTSTRAP, load_settings

ROOT = Path(__file__).resolve().parents[3]


def test_empty_config_means_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_BOOTSTRAP, raising=False)
    settings = load_settings(text="")
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka.partitions == 1
    assert settings.worker.http_port == 8787
    assert settings.budgets == ()
    assert settings.alerting.receiver_names == ("console",)


def test_environment_beats_file_for_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    text = '[kafka]\nbootstrap_servers = "file:9092"\n'
    monkeypatch.delenv(ENV_BOOTSTRAP, raising=False)
    assert load_settings(text=text).kafka.bootstrap_servers == "file:9092"
    monkeypatch.setenv(ENV_BOOTSTRAP, "env:9093")
    assert load_settings(text=text).kafka.bootstrap_servers == "env:9093"


@pytest.mark.parametrize(
    ("text", "field", "line"),
    [
        ('[kafka]\nbootstrap_servers = "nohost"\n', "kafka.bootstrap_servers", 2),
        ("[kafka]\npartitions = 0\n", "kafka.partitions", 2),
        ("[worker]\n\nhttp_port = 99999\n", "worker.http_port", 3),
        ("[wroker]\nx = 1\n", "wroker", 1),
        (
            '[[budgets]]\nname = "a"\nperiod = "day"\nlimit_usd = "-1"\n',
            "budgets[0].limit_usd",
            4,
        ),
        ('[[prices]]\nprovider = "p"\nunit = "request"\nusd_per_unit = "x"\n', "prices[0]", 4),
    ],
)
def test_errors_name_field_and_line(
    monkeypatch: pytest.MonkeyPatch, text: str, field: str, line: int
) -> None:
    monkeypatch.delenv(ENV_BOOTSTRAP, raising=False)
    with pytest.raises(ConfigError) as info:
        load_settings(text=text)
    assert info.value.field.startswith(field)
    assert info.value.line == line
    assert str(info.value).startswith(f"line {line}: {field}")


def test_toml_syntax_error_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(text="[kafka\n")


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.toml")


def test_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.example/services/T/B/X")
    settings = load_settings(ROOT / "spendwatch.example.toml")
    assert [b.name for b in settings.budgets] == ["fleet-daily", "growth-monthly", "market-data"]
    assert settings.alerting.receiver_names == ("oncall-slack", "console")


def test_demo_config_loads() -> None:
    from streams.demo import DEMO_CONFIG

    settings = load_settings(text=DEMO_CONFIG)
    assert [b.name for b in settings.budgets] == ["fleet-daily"]
    assert settings.budgets[0].limit_nusd == 2_000_000_000


def test_compose_file_is_consistent() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"kafka", "clickhouse", "worker", "ingest", "grafana"}
    ingest = services["ingest"]
    assert ingest["command"][:2] == ["spendwatch", "ingest"] and ingest["profiles"] == ["ingest"]
    assert set(ingest["environment"]) == {"SPENDWATCH_KAFKA_BOOTSTRAP", "SPENDWATCH_INGEST_TOKEN"}
    worker = services["worker"]
    assert worker["command"][:2] == ["spendwatch", "worker"]
    assert set(worker["depends_on"]) == {"kafka", "clickhouse"}
    mounted = worker["volumes"][0].split(":")[0]
    assert (ROOT / mounted).is_file()
    assert worker["environment"]["SPENDWATCH_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert (ROOT / "Dockerfile").is_file()
