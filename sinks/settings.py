"""ClickHouse settings: one frozen object, validated at start-up.

Precedence for the DSN, as for every setting with a variable: ``--clickhouse-dsn`` >
``$SPENDWATCH_CLICKHOUSE_DSN`` > ``dsn`` in ``[clickhouse]`` > :data:`DEFAULT_DSN`, the
embedded chDB engine under ``./.spendwatch/chdb``.

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

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from schemas import environment
from schemas.settings import FieldError, Range, Section, config_error
from schemas.tomlpos import Loc
from sinks.identifiers import check_identifier

DSN_ENV: Final = environment.CLICKHOUSE_DSN.name
DEFAULT_DSN: Final = "chdb:///.spendwatch/chdb"
MAX_BATCH_ROWS: Final = 1_000_000  # one Native block per insert stays atomic below this
_SCHEMES: Final = ("chdb", "http", "https")


def _check_dsn(dsn: str) -> str:
    if "://" not in dsn:
        raise ValueError(f"must look like chdb://path or http(s)://host:8123, got {dsn!r}")
    scheme, rest = dsn.split("://", 1)
    if scheme.lower() not in _SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(_SCHEMES)}: {redact_dsn(dsn)!r}")
    if scheme.lower() == "chdb":
        if "?" in rest or "@" in rest:
            raise ValueError("a chdb:// DSN is a path; it takes no user or query")
        return dsn
    try:
        parts = urlsplit(dsn)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc}): {redact_dsn(dsn)!r}") from None
    if not parts.hostname:
        raise ValueError(f"no host in {redact_dsn(dsn)!r}")
    if "/" in parts.path.strip("/"):
        raise ValueError(f"the DSN path names one database: {redact_dsn(dsn)!r}")
    return dsn


class ClickHouseSettings(Section):
    """Where ClickHouse is and how the sink writes to it (the ``[clickhouse]`` section).

    ``retry_*`` drive the sink's handling of transient errors (connection refused, 5xx,
    timeouts): the first retry waits ``retry_initial_s``, each next one twice as long, capped
    at ``retry_max_s``; ``retry_deadline_s`` = 0 retries for ever (the sink then applies
    backpressure: ``add`` waits), otherwise ``flush`` raises after that long and keeps the
    rows for the next attempt. A DSN path (``http://host:8123/spendwatch``) names the
    database when ``database`` is not set. Constructing one with a bad value raises
    :class:`ConfigError` naming the field.
    """

    dsn: Annotated[StrictStr, AfterValidator(_check_dsn)] = DEFAULT_DSN
    database: Annotated[StrictStr, AfterValidator(check_identifier)] = "spendwatch"
    batch_rows: Annotated[StrictInt, Range(1, MAX_BATCH_ROWS)] = 5000
    flush_interval_s: Annotated[StrictFloat, Range(0.001, 3600)] = 1.0
    ttl_days: Annotated[StrictInt, Range(1, 10_000)] = 395  # DateTime ends in 2106
    retry_initial_s: Annotated[StrictFloat, Range(0.001, 3600)] = 0.2
    retry_max_s: Annotated[StrictFloat, Range(0.001, 86_400)] = 30.0
    retry_deadline_s: Annotated[StrictFloat, Range(0, 7 * 86_400)] = 0.0
    connect_timeout_s: Annotated[StrictFloat, Range(0.1, 3600)] = 10.0
    query_timeout_s: Annotated[StrictFloat, Range(0.1, 86_400)] = 300.0

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(exc, type(self)) from None

    @model_validator(mode="before")
    @classmethod
    def _database_from_dsn(cls, data: Any) -> Any:
        if isinstance(data, dict) and "database" not in data:
            named = _dsn_database(data.get("dsn"))
            if named:
                return {**data, "database": named}
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> ClickHouseSettings:
        named = _dsn_database(self.dsn)
        if named and named != self.database:
            raise FieldError(
                ("database",), f"{self.database!r} differs from {named!r} named in the DSN path"
            )
        if self.retry_max_s < self.retry_initial_s:
            raise FieldError(
                ("retry_max_s",),
                f"must be between {self.retry_initial_s:g} and 86400, got {self.retry_max_s:g}",
            )
        return self

    @classmethod
    def from_config(
        cls,
        section: Mapping[str, Any] | None,
        path: str = "clickhouse",
        env: Mapping[str, str] | None = None,
    ) -> ClickHouseSettings:
        """Build settings from the ``[clickhouse]`` TOML table (``None`` or ``{}``: defaults).

        ``$SPENDWATCH_CLICKHOUSE_DSN`` (read from ``env``, default ``os.environ``) beats the
        section's ``dsn``. Raises :class:`ConfigError` whose ``field`` is ``f"{path}.{name}"``.
        """
        values = dict(section or {})
        environ = os.environ if env is None else env
        outside: dict[Loc, str] = {}
        if environ.get(DSN_ENV):
            values["dsn"] = environ[DSN_ENV]
            outside[(path, "dsn")] = f"${DSN_ENV}"
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise config_error(exc, cls, prefix=(path,), outside=outside) from None

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
        # The default repr would print the password inside the DSN.
        shown = ", ".join(
            f"{name}={self.redacted_dsn if name == 'dsn' else getattr(self, name)!r}"
            for name in type(self).model_fields
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


def _dsn_database(dsn: object) -> str | None:
    """The database named by an http(s) DSN path (``http://h:8123/spendwatch``), if any."""
    if not isinstance(dsn, str) or not dsn.lower().startswith(("http://", "https://")):
        return None
    try:
        path = urlsplit(dsn).path.strip("/")
    except ValueError:
        return None
    return path or None
