"""Client factory: one ``clickhouse_connect`` client for either an embedded chDB path or a server.

chDB facts this module relies on (measured with chdb 4.4 / clickhouse-connect 1.12):

* Only one *process* may hold a chDB data directory: a second process fails to open it
  (``Cannot lock file .../status``), reported here as :class:`ChdbPathLockedError`.
* Inside one process any number of clients may open the *same* path; they share the engine
  and see each other's writes at once. Each client serialises its own calls with a lock, so
  give concurrent users (sink, SQL endpoint) their own client.
* One process can host one engine path at a time: opening a *different* path while a client
  is open fails (``EmbeddedServer already initialized with path``); after every client on the
  first path is closed, another path opens fine (tests can use a fresh path per test).
* chDB has no async client but releases the GIL while a query runs: async code calls the
  client through ``asyncio.to_thread``.
"""

from __future__ import annotations

import logging
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
from clickhouse_connect.driver import Client
from clickhouse_connect.driver.exceptions import ProgrammingError

from sinks.errors import ChdbPathLockedError
from sinks.identifiers import quote_identifier
from sinks.settings import ClickHouseSettings

log = logging.getLogger(__name__)


def make_client(
    settings: ClickHouseSettings, *, create_database: bool = True, read_only: bool = False
) -> Client:
    """Open a client on ``settings.dsn`` with ``settings.database`` as its default database.

    ``create_database`` runs ``CREATE DATABASE IF NOT EXISTS`` first (a server refuses a
    default database that does not exist). Datetimes come back timezone-aware (UTC).

    ``read_only=True`` gives a query client for ad-hoc SQL: every query it runs reads
    deduplicated rows (``final = 1``) and the session is read-only - ``readonly = 1`` on chDB
    (no writes, no setting changes, no table functions), ``readonly = 2`` on a server (no
    writes; settings may still change, which the HTTP interface needs). Use it only for
    queries; give writers their own client.

    Raises :class:`ChdbPathLockedError` when another process holds the chDB path, and
    clickhouse-connect's ``OperationalError`` when a server cannot be reached.
    """
    common: dict[str, Any] = {"tz_mode": "aware"}
    if settings.is_chdb:
        path = settings.chdb_path
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
        try:
            client = clickhouse_connect.get_client(
                interface="chdb", path=str(path) if path else None, **common
            )
        except ProgrammingError as exc:
            text = str(exc)
            if "Error initializing EmbeddedServer" in text or "Cannot lock file" in text:
                raise ChdbPathLockedError(
                    f"chDB path {path} is held by another process (only one process may open "
                    "it); while a worker runs, query through its SQL endpoint"
                ) from exc
            raise
    else:
        # The database is created below before it becomes the default, so keep it out of the
        # DSN (clickhouse-connect would select it while connecting).
        parts = urlsplit(settings.dsn)
        client = clickhouse_connect.get_client(
            dsn=urlunsplit(parts._replace(path="")),
            connect_timeout=settings.connect_timeout_s,
            send_receive_timeout=settings.query_timeout_s,
            # One HTTP session per client would refuse concurrent calls from worker threads.
            autogenerate_session_id=False,
            **common,
        )
    try:
        if create_database:
            client.command(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(settings.database)}")
        client.database = settings.database
        if read_only:
            apply_read_only(client, chdb=settings.is_chdb, query_timeout_s=settings.query_timeout_s)
    except Exception:
        client.close()
        raise
    log.debug("clickhouse client open on %s, database %s", settings.redacted_dsn, settings.database)
    return client


# What one ad-hoc query may return (``result_overflow_mode = 'break'``: the answer stops
# there, and the caller reports it truncated). Without it, ``SELECT * FROM system.numbers``
# grew the worker - which hosts the SQL endpoint beside the hot path - by gigabytes a second
# until the query timeout.
MAX_RESULT_ROWS: Final = 1_000_001
MAX_RESULT_BYTES: Final = 256 * 1024 * 1024
RESULT_LIMITS: Final = {
    "max_result_rows": MAX_RESULT_ROWS,
    "max_result_bytes": MAX_RESULT_BYTES,
    "result_overflow_mode": "break",
}


def apply_read_only(client: Client, *, chdb: bool, query_timeout_s: float) -> None:
    """Make ``client``'s session read-only with deduplicated reads and bounded answers (see
    :func:`make_client` and :data:`RESULT_LIMITS`)."""
    client.set_client_setting("final", 1)
    client.set_client_setting("max_execution_time", int(query_timeout_s))
    for name, value in RESULT_LIMITS.items():
        client.set_client_setting(name, value)
    # Last: once readonly=1 is set, no other setting may change on this session.
    client.set_client_setting("readonly", 1 if chdb else 2)


def is_read_only(client: Client) -> bool:
    """Whether ``client`` was made by ``make_client(..., read_only=True)``."""
    return client.get_client_setting("readonly") in ("1", "2", 1, 2)
