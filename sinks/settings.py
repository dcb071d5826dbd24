"""ClickHouse settings: one frozen object, validated at start-up.

Precedence for the DSN (STYLE.md, "explicit argument beats environment variable beats default"):

1. ``dsn`` written in the ``[clickhouse]`` section of ``spendwatch.toml``;
2. else the environment variable ``SPENDWATCH_CLICKHOUSE_DSN``;
3. else :data:`DEFAULT_DSN`, the embedded chDB engine under ``./.spendwatch/chdb``.

DSN forms:

* ``chdb:///.spendwatch/chdb`` (the default) or ``chdb://.spendwatch/chdb`` - embedded chDB,
  path relative to the working directory: a path whose first segment starts with a dot is
  read as relative (a hidden directory at the filesystem root is never the intent);
* ``chdb:///var/lib/spendwatch`` - embedded chDB, absolute path;
* ``chdb://:memory:`` - embedded chDB in memory (tests, demos);
* ``http://user:password@host:8123`` or ``https://...:8443`` - a ClickHouse server
  (query parameters are passed to clickhouse-connect, e.g. ``?compress=lz4``); a path
  (``http://host:8123/spendwatch``) names the database when ``database`` is not set.

The password never leaves this object in clear text except to the client factory:
:attr:`ClickHouseSettings.redacted_dsn` is what logs and error messages show.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from schemas.errors import ConfigError

DSN_ENV: Final = "SPENDWATCH_CLICKHOUSE_DSN"
"""Environment variable: the ClickHouse DSN when the config file does not name one."""

DEFAULT_DSN: Final = "chdb:///.spendwatch/chdb"
MAX_BATCH_ROWS: Final = 1_000_000  # one Native block per insert stays atomic below this
_SCHEMES: Final = ("chdb", "http", "https")


@dataclass(frozen=True, slots=True)
class ClickHouseSettings:
    """Where ClickHouse is and how the sink writes to it.

    ``retry_*`` drive the sink's handling of transient errors (connection refused, 5xx,
    timeouts): the first retry waits ``retry_initial_s``, each next one twice as long, capped
    at ``retry_max_s``; ``retry_deadline_s`` = 0 retries for ever (the sink then applies
    backpressure: ``add`` waits), otherwise ``flush`` raises after that long and keeps the
    rows for the next attempt.
    """

    dsn: str = DEFAULT_DSN
    database: str = "spendwatch"
    batch_rows: int = 5000
    flush_interval_s: float = 1.0
    ttl_days: int = 395
    retry_initial_s: float = 0.2
    retry_max_s: float = 30.0
    retry_deadline_s: float = 0.0
    connect_timeout_s: float = 10.0
    query_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        _check_dsn("dsn", self.dsn)
        _check_identifier("database", self.database)
        dsn_db = _dsn_database(self.dsn)
        if dsn_db and dsn_db != self.database:
            raise ConfigError(
                "database", f"{self.database!r} differs from {dsn_db!r} named in the DSN path"
            )
        _check_int("batch_rows", self.batch_rows, 1, MAX_BATCH_ROWS)
        _check_int("ttl_days", self.ttl_days, 1, 10_000)  # DateTime ends in 2106
        _check_float("flush_interval_s", self.flush_interval_s, 0.001, 3600.0)
        _check_float("retry_initial_s", self.retry_initial_s, 0.001, 3600.0)
        _check_float("retry_max_s", self.retry_max_s, self.retry_initial_s, 86_400.0)
        _check_float("retry_deadline_s", self.retry_deadline_s, 0.0, 7 * 86_400.0)
        _check_float("connect_timeout_s", self.connect_timeout_s, 0.1, 3600.0)
        _check_float("query_timeout_s", self.query_timeout_s, 0.1, 86_400.0)

    @classmethod
    def from_config(
        cls,
        section: Mapping[str, Any] | None,
        path: str = "clickhouse",
        env: Mapping[str, str] | None = None,
    ) -> ClickHouseSettings:
        """Build settings from the ``[clickhouse]`` TOML table (``None`` or ``{}``: defaults).

        ``env`` defaults to ``os.environ``; it only supplies the DSN when the section does
        not. Raises :class:`ConfigError` whose ``field`` is ``f"{path}.{name}"`` for an
        unknown key, a wrong type or an out-of-range value.
        """
        section = dict(section or {})
        environ = os.environ if env is None else env
        known = {f.name for f in fields(cls)}
        for key in section:
            if key not in known:
                raise ConfigError(
                    f"{path}.{key}", f"unknown setting (known: {', '.join(sorted(known))})"
                )
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in section:
                continue
            raw = section[f.name]
            where = f"{path}.{f.name}"
            if f.type in ("str", str):
                if not isinstance(raw, str):
                    raise ConfigError(where, f"must be a string, got {type(raw).__name__}")
                values[f.name] = raw
            elif f.type in ("int", int):
                if isinstance(raw, bool) or not isinstance(raw, int):
                    raise ConfigError(where, f"must be an integer, got {raw!r}")
                values[f.name] = raw
            else:
                if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                    raise ConfigError(where, f"must be a number, got {raw!r}")
                values[f.name] = float(raw)
        if "dsn" not in values and environ.get(DSN_ENV):
            values["dsn"] = environ[DSN_ENV]
        dsn_db = _dsn_database(values.get("dsn", ""))
        if dsn_db and "database" not in values:
            values["database"] = dsn_db
        try:
            return cls(**values)
        except ConfigError as exc:
            detail = exc.message
            if exc.field == "dsn" and "dsn" not in section:
                detail = f"{detail} (from ${DSN_ENV})"
            raise ConfigError(f"{path}.{exc.field}", detail) from None

    @property
    def scheme(self) -> str:
        """``chdb``, ``http`` or ``https``."""
        return self.dsn.split("://", 1)[0].lower()

    @property
    def is_chdb(self) -> bool:
        return self.scheme == "chdb"

    @property
    def chdb_path(self) -> Path | None:
        """Absolute chDB data directory (relative DSNs resolve against the working directory
        now); ``None`` for in-memory chDB and for HTTP DSNs."""
        if not self.is_chdb:
            return None
        location = self.dsn.split("://", 1)[1]
        if location in ("", ":memory:", "memory"):
            return None
        if location.startswith("/."):
            location = location[1:]  # chdb:///.spendwatch/chdb -> .spendwatch/chdb (relative)
        return Path(location).expanduser().resolve()

    @property
    def redacted_dsn(self) -> str:
        """The DSN with any password replaced by ``***`` - safe to log and print."""
        return redact_dsn(self.dsn)

    def __repr__(self) -> str:
        # dataclass repr would print the password inside the DSN.
        shown = ", ".join(
            f"{f.name}={self.redacted_dsn if f.name == 'dsn' else getattr(self, f.name)!r}"
            for f in fields(self)
        )
        return f"ClickHouseSettings({shown})"

    __str__ = __repr__


def redact_dsn(dsn: str) -> str:
    """Replace the password of a URL-style DSN by ``***`` (other text unchanged)."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "<unparseable dsn>"
    if parts.password is None:
        return dsn
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _check_dsn(name: str, dsn: str) -> None:
    if "://" not in dsn:
        raise ConfigError(name, f"must look like chdb://path or http(s)://host:8123, got {dsn!r}")
    scheme, rest = dsn.split("://", 1)
    if scheme.lower() not in _SCHEMES:
        shown = redact_dsn(dsn)
        raise ConfigError(name, f"scheme must be one of {', '.join(_SCHEMES)}: {shown!r}")
    if scheme.lower() == "chdb":
        if "?" in rest or "@" in rest:
            raise ConfigError(name, "a chdb:// DSN is a path; it takes no user or query")
        return
    try:
        parts = urlsplit(dsn)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError(name, f"not a valid URL ({exc}): {redact_dsn(dsn)!r}") from None
    if not parts.hostname:
        raise ConfigError(name, f"no host in {redact_dsn(dsn)!r}")
    if "/" in parts.path.strip("/"):
        raise ConfigError(name, f"the DSN path names one database: {redact_dsn(dsn)!r}")


def _dsn_database(dsn: str) -> str | None:
    """The database named by an http(s) DSN path (``http://h:8123/spendwatch``), if any."""
    if not dsn.lower().startswith(("http://", "https://")):
        return None
    try:
        path = urlsplit(dsn).path.strip("/")
    except ValueError:
        return None
    return path or None


def _check_identifier(name: str, value: str) -> None:
    if not value or not (value[0].isalpha() or value[0] == "_"):
        raise ConfigError(name, f"must be a ClickHouse identifier, got {value!r}")
    if not all(ch.isalnum() or ch == "_" for ch in value) or not value.isascii():
        raise ConfigError(name, f"must be letters, digits and _ only, got {value!r}")


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, f"must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(name, f"must be between {low} and {high}, got {value}")


def _check_float(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(name, f"must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(name, f"must be between {low:g} and {high:g}, got {value:g}")
