"""Every environment variable the pipeline reads, declared once, with its meaning.

Precedence for a setting that has a variable: explicit flag > environment variable > the
config file > default. ``setting`` names the ``(section, key)`` of ``spendwatch.toml`` a
variable sets; ``flag`` the command-line option that beats it. The README's table lists
these (a test keeps the two equal). The SDK declares its own (``spendwatch.config``): apps
never import the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class EnvVar:
    name: str
    meaning: str
    setting: tuple[str, str] | None = None
    flag: str | None = None


CONFIG: Final = EnvVar(
    "SPENDWATCH_CONFIG", "path of the config file (default `./spendwatch.toml`)", flag="--config"
)
KAFKA_BOOTSTRAP: Final = EnvVar(
    "SPENDWATCH_KAFKA_BOOTSTRAP",
    "the worker's Kafka bootstrap servers, `host:port[,host:port]`",
    ("kafka", "bootstrap_servers"),
    "--bootstrap-servers",
)
CLICKHOUSE_DSN: Final = EnvVar(
    "SPENDWATCH_CLICKHOUSE_DSN",
    "ClickHouse: `chdb:///path` (embedded) or `http(s)://user:password@host:8123/database`",
    ("clickhouse", "dsn"),
    "--clickhouse-dsn",
)
STATE_DIR: Final = EnvVar(
    "SPENDWATCH_STATE_DIR",
    "local state: alert delivery log, silences (default `./.spendwatch`)",
    ("worker", "state_dir"),
    "--state-dir",
)
SQL_ENDPOINT: Final = EnvVar(
    "SPENDWATCH_SQL_ENDPOINT",
    "where `spendwatch sql` finds a running worker (default: the `[worker]` host and port)",
    flag="--endpoint",
)

INGEST_TOKEN: Final = EnvVar(
    "SPENDWATCH_INGEST_TOKEN",
    "the bearer token clients of `spendwatch ingest` must send (beats `ingest.token`)",
)
FAULTS: Final = EnvVar(
    "SPENDWATCH_FAULTS",
    "fault injection for the crash tests and `make chaos`; never set in production",
)
MEMTRACE: Final = EnvVar(
    "SPENDWATCH_MEMTRACE",
    "debug: `[py:|burst:]<file>[@s]` the worker appends RSS, allocator, chDB (and Python "
    "heap) memory to every s (10) seconds (`streams.memtrace`); never set in production",
)
PIPELINE: Final = (
    CONFIG,
    KAFKA_BOOTSTRAP,
    CLICKHOUSE_DSN,
    STATE_DIR,
    SQL_ENDPOINT,
    INGEST_TOKEN,
    FAULTS,
    MEMTRACE,
)
SETTINGS: Final = tuple(v for v in PIPELINE if v.setting is not None)
