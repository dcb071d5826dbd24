"""Precedence for every setting with a variable: flag > environment variable > file > default
(issue 15), one test per variable, and the README's table listing exactly these variables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from schemas import environment
from schemas.errors import ConfigError
from streams.config import load_settings

ROOT = Path(__file__).resolve().parents[3]


def _value(settings: object, section: str, key: str) -> str:
    return str(getattr(getattr(settings, section), key))


CASES = {  # variable -> (file value, env value, flag value, default)
    "SPENDWATCH_KAFKA_BOOTSTRAP": ("file:9092", "env:9093", "flag:9094", "127.0.0.1:9092"),
    "SPENDWATCH_CLICKHOUSE_DSN": (
        "chdb:///.spendwatch/file",
        "http://u:p@env-host:8123/spendwatch",
        "chdb:///flag/x",
        "chdb:///.spendwatch/chdb",
    ),
    "SPENDWATCH_STATE_DIR": ("/file/state", "/env/state", "/flag/state", ".spendwatch"),
}


@pytest.mark.parametrize("var", sorted(CASES))
def test_flag_beats_env_beats_file_beats_default(var: str) -> None:
    spec = next(v for v in environment.SETTINGS if v.name == var)
    assert spec.setting is not None
    section, key = spec.setting
    file_value, env_value, flag_value, default = CASES[var]
    text = f'[{section}]\n{key} = "{file_value}"\n'
    flag = {f"{section}.{key}": flag_value}

    assert _value(load_settings(text="", environ={}), section, key) == default
    on_file = load_settings(text=text, environ={})
    assert _value(on_file, section, key) == file_value
    assert on_file.origins[f"{section}.{key}"] == "file"
    by_env = load_settings(text=text, environ={var: env_value})
    assert _value(by_env, section, key) == env_value
    assert by_env.origins[f"{section}.{key}"] == f"${var}"
    by_flag = load_settings(text=text, environ={var: env_value}, flags=flag)
    assert _value(by_flag, section, key) == flag_value
    assert by_flag.origins[f"{section}.{key}"] == spec.flag
    # An empty variable is unset (Compose's ${VAR:-} gives ""): the file stands.
    assert _value(load_settings(text=text, environ={var: ""}), section, key) == file_value


def test_config_variable_names_the_file(tmp_path: Path) -> None:
    chosen = tmp_path / "chosen.toml"
    chosen.write_text('[kafka]\nbootstrap_servers = "chosen:1"\n')
    other = tmp_path / "other.toml"
    other.write_text('[kafka]\nbootstrap_servers = "other:1"\n')
    env = {"SPENDWATCH_CONFIG": str(chosen)}
    assert load_settings(environ=env).kafka.bootstrap_servers == "chosen:1"
    assert load_settings(other, environ=env).kafka.bootstrap_servers == "other:1"  # flag wins
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(environ={"SPENDWATCH_CONFIG": str(tmp_path / "none.toml")})


def test_sql_endpoint_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from sinks.sql import resolve_endpoint

    monkeypatch.setenv("SPENDWATCH_SQL_ENDPOINT", "http://env:1")
    assert resolve_endpoint("http://flag:2", "h", 3) == "http://flag:2"
    assert resolve_endpoint(None, "h", 3) == "http://env:1"
    monkeypatch.delenv("SPENDWATCH_SQL_ENDPOINT")
    assert resolve_endpoint(None, "h", 3) == "http://h:3/sql"


def test_a_bad_value_from_outside_names_its_origin() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(text="", environ={"SPENDWATCH_KAFKA_BOOTSTRAP": "http://k:9092"})
    assert str(info.value) == (
        "kafka.bootstrap_servers: 'http://k:9092' is a URL: give host:port (e.g. 'kafka:9092') "
        "(from $SPENDWATCH_KAFKA_BOOTSTRAP)"
    )
    with pytest.raises(ConfigError, match=r"\(from --clickhouse-dsn\)"):
        load_settings(text="", environ={}, flags={"clickhouse.dsn": "mysql://x"})


def test_readme_lists_every_variable_once() -> None:
    import spendwatch.config as sdk

    readme = (ROOT / "README.md").read_text()
    table = readme.split("| environment variable |", 1)[1].split("\n\n", 1)[0]
    listed = re.findall(r"`(SPENDWATCH_[A-Z_]+)`", table)
    declared = [v.name for v in environment.PIPELINE]
    declared += [sdk.ENV_BOOTSTRAP_SERVERS, sdk.ENV_SERVICE, sdk.ENV_ENVIRONMENT]
    assert sorted(listed) == sorted(declared)


def test_one_sdk_install_command_in_both_readmes() -> None:
    command = "pip install ./sdk"
    for readme in (ROOT / "README.md", ROOT / "sdk/README.md"):
        text = readme.read_text()
        assert command in text, readme
        assert "pip install -e sdk" not in text, readme


def test_demo_fleet_tags_leads() -> None:
    import random

    from streams.demo import DemoFleet

    fleet = DemoFleet(run_id="r1")
    rng = random.Random(7)
    leads = set()
    for _ in range(400):
        service, _, fields = fleet._event(rng)
        assert ("lead" in fields["tags"]) == (service == "lead-enricher")
        leads.add(fields["tags"].get("lead"))
    assert len(leads - {None}) >= 10  # several leads, so cost per lead means something
