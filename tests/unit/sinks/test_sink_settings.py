"""ClickHouseSettings: defaults, precedence of the DSN, errors naming the field, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.errors import ConfigError
from sinks.settings import DEFAULT_DSN, DSN_ENV, ClickHouseSettings, redact_dsn


def test_defaults_from_empty_section() -> None:
    s = ClickHouseSettings.from_config({}, env={})
    assert s.dsn == DEFAULT_DSN
    assert s.database == "spendwatch"
    assert (s.batch_rows, s.flush_interval_s, s.ttl_days) == (5000, 1.0, 395)
    assert s.is_chdb
    assert s.chdb_path == Path(".spendwatch/chdb").resolve()


def test_env_overrides_default_and_the_file() -> None:
    env = {DSN_ENV: "http://u:pw@ch.example:8123"}
    assert ClickHouseSettings.from_config({}, env=env).dsn == "http://u:pw@ch.example:8123"
    # Issue 15: the environment beats the file (compose mounts a file naming chDB).
    overridden = ClickHouseSettings.from_config({"dsn": "chdb:///srv/sw"}, env=env)
    assert overridden.dsn == "http://u:pw@ch.example:8123"
    explicit = ClickHouseSettings.from_config({"dsn": "chdb:///srv/sw"}, env={})
    assert explicit.dsn == "chdb:///srv/sw"
    assert explicit.chdb_path == Path("/srv/sw")


def test_values_are_read() -> None:
    s = ClickHouseSettings.from_config(
        {"batch_rows": 1000, "flush_interval_s": 2, "ttl_days": 30, "retry_deadline_s": 5},
        env={},
    )
    assert (s.batch_rows, s.flush_interval_s, s.ttl_days, s.retry_deadline_s) == (
        1000,
        2.0,
        30,
        5.0,
    )


@pytest.mark.parametrize(
    ("section", "field", "fragment"),
    [
        ({"dsn": "mysql://x"}, "clickhouse.dsn", "scheme"),
        ({"dsn": "localhost:8123"}, "clickhouse.dsn", "chdb://path"),
        ({"dsn": "http://:8123"}, "clickhouse.dsn", "no host"),
        ({"dsn": "http://h:8123/db/x"}, "clickhouse.dsn", "one database"),
        ({"dsn": "http://h:8123/db", "database": "other"}, "clickhouse.database", "differs"),
        ({"dsn": 5}, "clickhouse.dsn", "string"),
        ({"database": "a-b"}, "clickhouse.database", "letters"),
        ({"batch_rows": 0}, "clickhouse.batch_rows", "between"),
        ({"batch_rows": 2_000_000}, "clickhouse.batch_rows", "between"),
        ({"batch_rows": 10.5}, "clickhouse.batch_rows", "integer"),
        ({"batch_rows": True}, "clickhouse.batch_rows", "integer"),
        ({"flush_interval_s": "1"}, "clickhouse.flush_interval_s", "number"),
        ({"flush_interval_s": 0}, "clickhouse.flush_interval_s", "between"),
        ({"ttl_days": 40_000}, "clickhouse.ttl_days", "between"),
        ({"retry_max_s": 0.01}, "clickhouse.retry_max_s", "between"),
        ({"batch_size": 5}, "clickhouse.batch_size", "unknown setting"),
    ],
)
def test_errors_name_the_field(section: dict[str, object], field: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        ClickHouseSettings.from_config(section, env={})
    assert info.value.field == field
    assert fragment in str(info.value)


def test_bad_env_dsn_says_where_it_came_from() -> None:
    with pytest.raises(ConfigError) as info:
        ClickHouseSettings.from_config({}, env={DSN_ENV: "ftp://x"})
    assert info.value.field == "clickhouse.dsn"
    assert f"${DSN_ENV}" in str(info.value)


def test_database_from_the_dsn_path() -> None:
    s = ClickHouseSettings.from_config({"dsn": "http://u:p@ch:8123/spend"}, env={})
    assert s.database == "spend"
    same = ClickHouseSettings.from_config({"dsn": "http://ch:8123/spend/", "database": "spend"})
    assert same.database == "spend"


def test_custom_path_prefix() -> None:
    with pytest.raises(ConfigError) as info:
        ClickHouseSettings.from_config({"ttl_days": 0}, path="profiles[1].clickhouse", env={})
    assert info.value.field == "profiles[1].clickhouse.ttl_days"


def test_password_never_shown() -> None:
    s = ClickHouseSettings(dsn="https://alice:s3cr%40t@ch.example:8443?compress=lz4")
    assert s.redacted_dsn == "https://alice:***@ch.example:8443?compress=lz4"
    assert "s3cr" not in repr(s)
    assert "s3cr" not in str(s)
    with pytest.raises(ConfigError) as info:
        ClickHouseSettings(dsn="https://alice:hunter2@ch.example:8443/db/x")
    assert "hunter2" not in str(info.value)


def test_redact_leaves_passwordless_dsn() -> None:
    assert redact_dsn("http://ch:8123") == "http://ch:8123"
    assert redact_dsn("chdb:///x") == "chdb:///x"


def test_dot_paths_are_relative_to_the_working_directory() -> None:
    cwd = Path.cwd()
    assert ClickHouseSettings(dsn="chdb:///.spendwatch/chdb").chdb_path == cwd / ".spendwatch/chdb"
    assert ClickHouseSettings(dsn="chdb://.spendwatch/x").chdb_path == cwd / ".spendwatch/x"
    assert ClickHouseSettings(dsn="chdb://data/x").chdb_path == cwd / "data/x"
    assert ClickHouseSettings(dsn="chdb:///tmp/x").chdb_path == Path("/tmp/x")


def test_memory_chdb_has_no_path() -> None:
    assert ClickHouseSettings(dsn="chdb://:memory:").chdb_path is None
    assert ClickHouseSettings(dsn="http://ch:8123").chdb_path is None
