"""``spendwatch.toml``: one file, one settings object per component, validated at start-up.

Precedence for every setting: explicit argument (CLI flag) > environment variable > the file >
default. Each environment variable is declared once, here or in the component that owns it:

``SPENDWATCH_CONFIG``            path of the config file (default ``./spendwatch.toml``)
``SPENDWATCH_KAFKA_BOOTSTRAP``   Kafka bootstrap servers, ``host:port[,host:port]``
``SPENDWATCH_STATE_DIR``         local state (chDB data, delivery log, silences); ``./.spendwatch``
``SPENDWATCH_CLICKHOUSE_DSN``    see ``sinks.settings``

Every error is a :class:`schemas.errors.ConfigError` naming the field (and the line when the
file text is at hand); nothing is half-loaded.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.errors import ConfigError

ENV_CONFIG = "SPENDWATCH_CONFIG"
ENV_BOOTSTRAP = "SPENDWATCH_KAFKA_BOOTSTRAP"
ENV_STATE_DIR = "SPENDWATCH_STATE_DIR"
DEFAULT_CONFIG = Path("spendwatch.toml")
DEFAULT_STATE_DIR = Path(".spendwatch")

_BOOTSTRAP_RE = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")
_KNOWN_SECTIONS = {
    "kafka",
    "clickhouse",
    "worker",
    "prices",
    "budgets",
    "alerting",
    "detect",
    "demo",
    "ingest",  # read by ``spendwatch ingest`` (ingest.settings), not by the worker
}


def check_bootstrap(value: object, path: str) -> str:
    """Validate a ``host:port[,host:port]`` list; return it stripped."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(path, "must be a non-empty 'host:port[,host:port]' string")
    for part in value.split(","):
        if not _BOOTSTRAP_RE.match(part.strip()):
            raise ConfigError(path, f"{part.strip()!r} is not host:port")
    return value.strip()


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Broker connection and topic layout for the worker."""

    bootstrap_servers: str = "127.0.0.1:9092"
    partitions: int = 1
    consumer_group: str = "spendwatch-worker"
    fetch_max_wait_ms: int = 100

    @classmethod
    def from_config(cls, section: dict[str, Any], path: str = "kafka") -> KafkaSettings:
        _no_unknown(
            section,
            {"bootstrap_servers", "partitions", "consumer_group", "fetch_max_wait_ms"},
            path,
        )
        raw = os.environ.get(ENV_BOOTSTRAP) or section.get("bootstrap_servers", "127.0.0.1:9092")
        partitions = section.get("partitions", 1)
        if (
            not isinstance(partitions, int)
            or isinstance(partitions, bool)
            or not 1 <= partitions <= 256
        ):
            raise ConfigError(f"{path}.partitions", "must be an integer from 1 to 256")
        group = section.get("consumer_group", "spendwatch-worker")
        if not isinstance(group, str) or not group:
            raise ConfigError(f"{path}.consumer_group", "must be a non-empty string")
        wait = section.get("fetch_max_wait_ms", 100)
        if not isinstance(wait, int) or isinstance(wait, bool) or not 1 <= wait <= 10_000:
            raise ConfigError(f"{path}.fetch_max_wait_ms", "must be an integer from 1 to 10000")
        return cls(check_bootstrap(raw, f"{path}.bootstrap_servers"), partitions, group, wait)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """The worker process: its read-only SQL endpoint and local state directory."""

    http_host: str = "127.0.0.1"
    http_port: int = 8787
    state_dir: Path = DEFAULT_STATE_DIR
    status_interval_s: float = 1.0

    @classmethod
    def from_config(cls, section: dict[str, Any], path: str = "worker") -> WorkerSettings:
        _no_unknown(section, {"http_host", "http_port", "state_dir", "status_interval_s"}, path)
        port = section.get("http_port", 8787)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ConfigError(f"{path}.http_port", "must be an integer from 0 to 65535")
        host = section.get("http_host", "127.0.0.1")
        if not isinstance(host, str) or not host:
            raise ConfigError(f"{path}.http_host", "must be a host name or address")
        state = section.get("state_dir") or os.environ.get(ENV_STATE_DIR) or DEFAULT_STATE_DIR
        interval = section.get("status_interval_s", 1.0)
        if not isinstance(interval, int | float) or isinstance(interval, bool) or interval <= 0:
            raise ConfigError(f"{path}.status_interval_s", "must be a positive number of seconds")
        return cls(host, port, Path(state), float(interval))


@dataclass(frozen=True)
class Settings:
    """Everything the worker needs, validated. Build with :func:`load_settings`."""

    kafka: KafkaSettings
    worker: WorkerSettings
    clickhouse: Any
    prices: Any
    budgets: tuple[Any, ...]
    alerting: Any
    detect: Any
    source: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


def _no_unknown(section: dict[str, Any], allowed: set[str], path: str) -> None:
    if not isinstance(section, dict):
        raise ConfigError(path, "must be a table")
    for key in section:
        if key not in allowed:
            raise ConfigError(
                f"{path}.{key}", f"unknown setting (expected one of {sorted(allowed)})"
            )


def line_of(text: str, key: str, section: str | None = None) -> int | None:
    """1-based line of ``key = ...`` (or a ``[key]`` header) in ``text``, looked up after the
    ``[section]`` header when one is given; None when it cannot be found."""
    start = 0
    if section:
        header = re.compile(rf"^[ \t]*\[+[ \t]*{re.escape(section)}[ \t]*\]+", re.M)
        found = header.search(text)
        if found:
            start = found.end()
    pattern = re.compile(
        rf"^[ \t]*(\[+[ \t]*{re.escape(key)}[ \t]*\]+|{re.escape(key)}[ \t]*=)", re.M
    )
    match = pattern.search(text, start)
    return text.count("\n", 0, match.start()) + 1 if match else None


def load_settings(path: Path | str | None = None, *, text: str | None = None) -> Settings:
    """Read and validate the config file (or ``text``). A missing default file means defaults.

    Raises :class:`ConfigError` naming the field; TOML syntax errors name the line.
    """
    source: Path | None = None
    if text is None:
        explicit = path is not None or ENV_CONFIG in os.environ
        source = Path(path or os.environ.get(ENV_CONFIG) or DEFAULT_CONFIG)
        if source.exists():
            text = source.read_text()
        elif explicit:
            raise ConfigError("config", f"file not found: {source}")
        else:
            text = ""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"not valid TOML: {exc}") from exc
    for key in raw:
        if key not in _KNOWN_SECTIONS:
            raise ConfigError(
                key,
                f"unknown section (expected {sorted(_KNOWN_SECTIONS)})",
                line=line_of(text, key),
            )
    return build_settings(raw, text, source)


def build_settings(raw: dict[str, Any], text: str, source: Path | None) -> Settings:
    """Hand each section to the component that owns it."""
    from alerting.config import AlertingSettings
    from sinks.settings import ClickHouseSettings
    from streams.budgets import load_budgets
    from streams.detect import DetectSettings
    from streams.pricing import PriceTable

    def section(name: str) -> dict[str, Any]:
        value = raw.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(name, "must be a table", line=line_of(text, name))
        return value

    def array(name: str) -> list[dict[str, Any]]:
        value = raw.get(name, [])
        if not isinstance(value, list):
            raise ConfigError(
                name, f"must be an array of tables ([[{name}]])", line=line_of(text, name)
            )
        return value

    def with_line(exc: ConfigError) -> ConfigError:
        if exc.line is None:
            parts = exc.field.split(".")
            leaf = parts[-1].split("[", 1)[0]
            section = parts[0].split("[", 1)[0] if len(parts) > 1 else None
            return ConfigError(exc.field, exc.message, line=line_of(text, leaf, section))
        return exc

    try:
        return Settings(
            kafka=KafkaSettings.from_config(section("kafka")),
            worker=WorkerSettings.from_config(section("worker")),
            clickhouse=ClickHouseSettings.from_config(section("clickhouse")),
            prices=PriceTable.from_config(array("prices")),
            budgets=tuple(load_budgets(array("budgets"), text)),
            alerting=AlertingSettings.from_config(section("alerting")),
            detect=DetectSettings.from_config(section("detect")),
            source=source,
            raw=raw,
        )
    except ConfigError as exc:
        raise with_line(exc) from None
