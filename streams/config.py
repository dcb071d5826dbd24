"""``spendwatch.toml``: one file, one settings model per component, validated at start-up.

Precedence for every setting that has a variable (``schemas.environment``): explicit flag >
environment variable > the file > default. ``SPENDWATCH_CONFIG`` (or ``--config``) names the
file, default ``./spendwatch.toml``; a missing default file means defaults.

:class:`ConfigFile` is the whole file as pydantic models (each section owned by its
component: ``sinks.settings``, ``streams.pricing.table``, ``streams.budgets.config``,
``alerting.config``); :func:`load_settings` validates it in one pass and returns the typed
:class:`Settings` the worker runs on. Every error is a :class:`schemas.errors.ConfigError`
naming the line and the field (``line 4: budgets[0].limit_usd: must be positive, got '-2'``);
nothing is half-loaded.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final

from pydantic import (
    AfterValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

from alerting.config import AlertingConfig, AlertingSettings
from schemas import environment
from schemas.errors import ConfigError
from schemas.settings import Range, Section, Text, config_error
from schemas.tomlpos import Loc, key_lines
from sinks.settings import ClickHouseSettings
from streams.budgets.config import BudgetConfigs
from streams.budgets.model import Budget
from streams.console.settings import ConsoleSettings
from streams.detect.settings import DetectSettings
from streams.pricing.table import PriceEntries, PriceTable
from streams.report.settings import ReportSettings

ENV_CONFIG: Final = environment.CONFIG.name
ENV_BOOTSTRAP: Final = environment.KAFKA_BOOTSTRAP.name
ENV_STATE_DIR: Final = environment.STATE_DIR.name
DEFAULT_CONFIG: Final = Path("spendwatch.toml")
DEFAULT_STATE_DIR: Final = Path(".spendwatch")

_BOOTSTRAP_RE: Final = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


def check_bootstrap(value: str) -> str:
    """Validate a ``host:port[,host:port]`` list; return it stripped."""
    if not value.strip():
        raise ValueError("must be a non-empty 'host:port[,host:port]' string")
    for part in value.split(","):
        if "://" in part:
            raise ValueError(f"{part.strip()!r} is a URL: give host:port (e.g. 'kafka:9092')")
        if not _BOOTSTRAP_RE.match(part.strip()):
            raise ValueError(f"{part.strip()!r} is not host:port")
    return value.strip()


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be a positive number of seconds")
    return value


class KafkaSettings(Section):
    """Broker connection and topic layout for the worker (``[kafka]``)."""

    bootstrap_servers: Annotated[StrictStr, AfterValidator(check_bootstrap)] = "127.0.0.1:9092"
    partitions: Annotated[StrictInt, Range(1, 256)] = 1
    consumer_group: Text = "spendwatch-worker"  # the hot path's group (the usage topic)
    fetch_max_wait_ms: Annotated[StrictInt, Range(1, 10_000)] = 100
    max_batch_records: Annotated[StrictInt, Range(1, 50_000)] = 20_000  # per hot-path batch
    session_timeout_ms: Annotated[StrictInt, Range(3000, 300_000)] = 10_000
    replication_factor: Annotated[StrictInt, Range(1, 16)] = 1  # of the topics it creates
    export_priced: StrictBool = False  # also publish priced events to spendwatch.priced.v1


class WorkerSettings(Section):
    """The worker process: its read-only SQL endpoint and local state directory
    (``[worker]``)."""

    http_host: Text = "127.0.0.1"
    http_port: Annotated[StrictInt, Range(0, 65535)] = 8787
    state_dir: Path = DEFAULT_STATE_DIR
    status_interval_s: Annotated[StrictFloat, AfterValidator(_positive)] = 1.0
    # The hot path's window of stored event ids (streams/hot/dedupe.py): how far back, how
    # many at most, and how fast a client clock is trusted to run.
    dedupe_window_s: Annotated[StrictInt, Range(60, 7 * 86400)] = 3600
    dedupe_max_ids: Annotated[StrictInt, Range(10_000, 100_000_000)] = 1_500_000
    max_clock_skew_s: Annotated[StrictInt, Range(0, 86400)] = 120


class DemoSettings(Section):
    """``[demo]``: reserved for the demo fleet; no settings yet."""


class ConfigFile(Section):
    """The whole ``spendwatch.toml`` as written: one model per section."""

    is_whole_file: ClassVar[bool] = True

    kafka: KafkaSettings = KafkaSettings()
    worker: WorkerSettings = WorkerSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    prices: PriceEntries = []
    budgets: BudgetConfigs = []
    alerting: AlertingConfig = AlertingConfig()
    detect: DetectSettings = DetectSettings()
    demo: DemoSettings = DemoSettings()
    # Validated by their own models after the rest (they need worker.http_host and the
    # receivers): streams/console/settings.py, streams/report/settings.py.
    console: dict[str, Any] = {}
    report: dict[str, Any] = {}
    ingest: dict[str, Any] = {}  # read by ``spendwatch ingest`` (ingest/settings.py)


@dataclass(frozen=True)
class Settings:
    """Everything the worker needs, validated. Build with :func:`load_settings`.

    ``origins`` says where each setting with a variable came from: ``--flag``,
    ``$VARIABLE``, ``file`` or ``default`` (``spendwatch config check`` prints it).
    """

    kafka: KafkaSettings
    worker: WorkerSettings
    clickhouse: ClickHouseSettings
    prices: PriceTable
    budgets: tuple[Budget, ...]
    alerting: AlertingSettings
    detect: DetectSettings
    demo: DemoSettings = field(default_factory=DemoSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    report: ReportSettings = field(default_factory=ReportSettings)
    source: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    origins: Mapping[str, str] = field(default_factory=dict)


def config_path(
    explicit: Path | str | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """The config file: ``--config`` > ``$SPENDWATCH_CONFIG`` > ``./spendwatch.toml``."""
    env = os.environ if environ is None else environ
    return Path(explicit or env.get(ENV_CONFIG) or DEFAULT_CONFIG)


def load_settings(
    path: Path | str | None = None,
    *,
    text: str | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> Settings:
    """Read and validate the config file (or ``text``), apply the environment and ``flags``.

    ``flags`` maps ``"section.key"`` (e.g. ``"kafka.bootstrap_servers"``) to an explicit
    value (None = not given). A missing default file means defaults; a missing file named by
    ``path`` or ``$SPENDWATCH_CONFIG`` is an error. Raises :class:`ConfigError` naming the
    field and, for values from the file, the line.
    """
    env = os.environ if environ is None else environ
    source: Path | None = None
    if text is None:
        explicit = path is not None or bool(env.get(ENV_CONFIG))
        source = config_path(path, env)
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
    data, outside, origins = _apply_precedence(raw, env, flags or {})
    try:
        config = ConfigFile.model_validate(data, context={"environ": env})
    except ValidationError as exc:
        raise config_error(exc, ConfigFile, lines=key_lines(text), outside=outside) from None
    alerting = config.alerting.build()
    try:
        # A receiver disabled for a missing secret is still a receiver the file names.
        names = (*alerting.receiver_names, *(d.name for d in alerting.disabled))
        report = ReportSettings.from_config(config.report, names)
        console = ConsoleSettings.from_config(config.console, config.worker.http_host)
    except ConfigError as exc:
        line = key_lines(text).get(tuple(exc.field.split(".")))
        raise ConfigError(exc.field, exc.message, line=line) from None
    return Settings(
        kafka=config.kafka,
        worker=config.worker,
        clickhouse=config.clickhouse,
        prices=PriceTable.from_entries(config.prices),
        budgets=tuple(b.build() for b in config.budgets),
        alerting=alerting,
        detect=config.detect,
        demo=config.demo,
        console=console,
        report=report,
        source=source,
        raw=raw,
        origins=origins,
    )


def _apply_precedence(
    raw: dict[str, Any], env: Mapping[str, str], flags: Mapping[str, object]
) -> tuple[dict[str, Any], dict[Loc, str], dict[str, str]]:
    """The file's data with environment variables, then flags, written over it."""
    data = dict(raw)
    outside: dict[Loc, str] = {}
    origins: dict[str, str] = {}
    for var in environment.SETTINGS:
        assert var.setting is not None
        section, key = var.setting
        name = f"{section}.{key}"
        table = data.get(section, {})
        if not isinstance(table, dict):
            continue  # the section's own error will be reported
        origins[name] = "file" if key in table else "default"
        for value, origin in (
            (env.get(var.name) or None, f"${var.name}"),
            (flags.get(name), var.flag),
        ):
            if value is not None and origin is not None:
                table = {**table, key: str(value)}
                outside[(section, key)] = origin
                origins[name] = origin
        data[section] = table
    return data, outside, origins
