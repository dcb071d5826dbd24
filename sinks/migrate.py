"""Schema migrations: apply ``schemas/clickhouse/NNN_name.sql`` in order, idempotently.

Called once at start-up (worker, ``spendwatch sql`` on a fresh chDB path, tests) before any
sink writes. Each file holds ``CREATE ... IF NOT EXISTS`` statements with two placeholders,
``${database}`` and ``${ttl_days}``; an applied file is recorded in ``schema_migrations``
(version, name, checksum of the template). Re-running is safe: recorded versions are skipped,
and a file that failed half-way re-runs cleanly because every statement is ``IF NOT EXISTS``.

``ttl_days`` is a setting, not a schema version: when it changes, :func:`migrate` rewrites the
TTL of each table (without rewriting existing parts; expired rows go at the next merge).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from string import Template

from clickhouse_connect.driver import Client

from sinks.identifiers import quote_identifier
from sinks.settings import ClickHouseSettings

log = logging.getLogger(__name__)

_FILE_RE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")

# table -> TTL expression (must match the DDL files) for ttl_days changes.
TTL_COLUMNS: dict[str, str] = {
    "usage_events": "toDateTime(ts)",
    "spend_by_minute": "toDateTime(minute)",
    "spend_by_day": "day",
    "deadletter": "toDateTime(received_at)",
    "alerts": "toDateTime(fired_at)",
    "alert_deliveries": "toDateTime(at)",
}


ROLLUP_TABLES: tuple[str, ...] = ("spend_by_minute", "spend_by_day")


class MigrationError(RuntimeError):
    """A recorded migration no longer matches its file, or a statement failed."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered DDL file."""

    version: int
    name: str
    template: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.template.encode()).hexdigest()[:16]

    def statements(self, database: str, ttl_days: int) -> list[str]:
        text = Template(self.template).substitute(
            database=quote_identifier(database), ttl_days=ttl_days
        )
        return split_statements(text)


def load_migrations() -> list[Migration]:
    """All DDL files shipped in ``schemas/clickhouse``, ordered by version.

    Raises :class:`MigrationError` for a misnamed file or a repeated version number.
    """
    found: dict[int, Migration] = {}
    for entry in resources.files("schemas").joinpath("clickhouse").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_RE.match(entry.name)
        if not match:
            raise MigrationError(f"DDL file {entry.name!r} is not named NNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two DDL files share version {version}")
        found[version] = Migration(version, match.group(2), entry.read_text())
    return [found[v] for v in sorted(found)]


def split_statements(sql: str) -> list[str]:
    """Split a SQL script on ``;`` outside quotes and comments; drop empty statements."""
    out: list[str] = []
    buf: list[str] = []
    i, n = 0, len(sql)
    quote: str | None = None
    while i < n:
        ch = sql[i]
        if quote:
            buf.append(ch)
            if ch == "\\" and i + 1 < n:
                buf.append(sql[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in ("'", '"', "`"):
            quote = ch
            buf.append(ch)
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            buf.append(sql[i:end])
            i = end
            continue
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            buf.append(sql[i:end])
            i = end
            continue
        elif ch == ";":
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    out.append("".join(buf))
    return [s.strip() for s in out if _has_code(s)]


def _has_code(statement: str) -> bool:
    lines = [ln.split("--", 1)[0].strip() for ln in statement.splitlines()]
    return any(lines)


def migrate(client: Client, settings: ClickHouseSettings) -> list[int]:
    """Create the database and apply every pending migration; return the versions applied.

    Safe to call on every start-up and from several processes of a server deployment
    (statements are idempotent). Raises :class:`MigrationError` when an applied file was
    edited afterwards (its checksum differs) or a statement fails.
    """
    db = quote_identifier(settings.database)
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations ("
        " version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC')"
        ") ENGINE = ReplacingMergeTree(applied_at) ORDER BY version"
    )
    rows = client.query(f"SELECT version, checksum FROM {db}.schema_migrations FINAL").result_rows
    applied = {int(v): str(c) for v, c in rows}
    done: list[int] = []
    for mig in load_migrations():
        if mig.version in applied:
            if applied[mig.version] != mig.checksum:
                raise MigrationError(
                    f"migration {mig.version:03d}_{mig.name}.sql changed after it was applied "
                    f"(checksum {applied[mig.version]} -> {mig.checksum}); add a new numbered "
                    "file instead of editing an applied one"
                )
            continue
        for statement in mig.statements(settings.database, settings.ttl_days):
            try:
                client.command(statement)
            except Exception as exc:
                raise MigrationError(
                    f"migration {mig.version:03d}_{mig.name}.sql failed: {exc}"
                ) from exc
        client.insert(
            f"{db}.schema_migrations",
            [[mig.version, mig.name, mig.checksum, datetime.now(UTC)]],
            column_names=["version", "name", "checksum", "applied_at"],
        )
        log.info("applied ClickHouse migration %03d_%s", mig.version, mig.name)
        done.append(mig.version)
    _apply_ttl(client, settings)
    return done


async def migrate_async(client: Client, settings: ClickHouseSettings) -> list[int]:
    """:func:`migrate` in a worker thread, for callers on an event loop."""
    return await asyncio.to_thread(migrate, client, settings)


def _apply_ttl(client: Client, settings: ClickHouseSettings) -> None:
    """Bring each table's TTL to ``settings.ttl_days`` when it differs."""
    db = settings.database
    rows = client.query(
        "SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
        parameters={"db": db},
    ).result_rows
    engines = {str(name): str(engine) for name, engine in rows}
    wanted = f"toIntervalDay({settings.ttl_days})"
    for table, expr in TTL_COLUMNS.items():
        engine = engines.get(table)
        if engine is None or wanted in engine:
            continue
        client.command(
            f"ALTER TABLE {quote_identifier(db)}.{quote_identifier(table)} "
            f"MODIFY TTL {expr} + {wanted}",
            settings={"materialize_ttl_after_modify": 0},
        )
        log.info("set TTL of %s to %d days", table, settings.ttl_days)


def rebuild_rollups(client: Client, settings: ClickHouseSettings) -> None:
    """Recompute ``spend_by_minute`` and ``spend_by_day`` from deduplicated ``usage_events``.

    For the rare double count a concurrent replay can leave in a rollup (see
    ``002_rollups.sql``). Run it while no worker writes: rows inserted during the rebuild may
    be counted twice or not at all.
    """
    db = quote_identifier(settings.database)
    for table in ROLLUP_TABLES:
        mv = f"{table}_mv"
        select = client.query(
            "SELECT as_select FROM system.tables"
            " WHERE database = {db:String} AND name = {mv:String}",
            parameters={"db": settings.database, "mv": mv},
        ).result_rows
        if not select:
            raise MigrationError(f"materialized view {mv} is missing; run migrate() first")
        body = str(select[0][0])
        # The view reads usage_events as inserted; the rebuild must read it deduplicated.
        client.command(f"TRUNCATE TABLE {db}.{quote_identifier(table)}")
        client.command(f"INSERT INTO {db}.{quote_identifier(table)} {body}", settings={"final": 1})
