"""``spendwatch sql``: ask the worker's SQL endpoint, else open ClickHouse directly.

Order: (1) the read-only rule, checked locally (exit 2 when refused); (2) the worker endpoint
(``--endpoint``, else ``$SPENDWATCH_SQL_ENDPOINT``, else the ``[worker]`` host/port the CLI
passes in); (3) when nothing answers there, the ClickHouse DSN directly (``--dsn``, else the
``[clickhouse]`` settings) with a read-only session. A chDB path held by another process
while its endpoint is silent is reported as such (exit 1).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Final

import orjson

from schemas import environment
from sinks.client import make_client
from sinks.errors import ChdbPathLockedError, error_code
from sinks.query import DEFAULT_MAX_ROWS, QueryAnswer, run_read_only
from sinks.readonly import ReadOnlyQueryError, check_read_only
from sinks.settings import ClickHouseSettings

ENDPOINT_ENV: Final = environment.SQL_ENDPOINT.name
"""Environment variable: URL of the worker's ``POST /sql`` endpoint."""

FORMATS: Final = ("table", "csv", "json")
UNKNOWN_DATABASE: Final = 81
_NUMERIC_TYPE: Final = re.compile(r"^(Nullable\()?(U?Int|Float|Decimal)")


class QueryFailedError(Exception):
    """The query reached ClickHouse (or the endpoint) and failed; the message says why."""


class EndpointUnreachableError(Exception):
    """Nothing answered at the endpoint URL (so the caller may go direct)."""


@dataclass(frozen=True, slots=True)
class SqlOutcome:
    """What ran where: ``via`` is ``endpoint`` or ``direct``."""

    answer: QueryAnswer
    via: str


def resolve_endpoint(explicit: str | None, host: str | None, port: int | None) -> str:
    """Endpoint URL: explicit flag > ``$SPENDWATCH_SQL_ENDPOINT`` > config host/port > default."""
    if explicit:
        return explicit
    if os.environ.get(ENDPOINT_ENV):
        return os.environ[ENDPOINT_ENV]
    return f"http://{host or '127.0.0.1'}:{port or 8787}/sql"


def query_endpoint(
    url: str, sql: str, *, max_rows: int = DEFAULT_MAX_ROWS, timeout_s: float = 300.0
) -> QueryAnswer:
    """POST ``sql`` to a worker endpoint.

    Raises :class:`EndpointUnreachableError` when nothing listens there,
    :class:`ReadOnlyQueryError` when the endpoint refuses it by rule, and
    :class:`QueryFailedError` for any other error answer.
    """
    request = urllib.request.Request(
        url,
        data=orjson.dumps({"query": sql, "max_rows": max_rows}),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return QueryAnswer.from_dict(orjson.loads(response.read()))
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            detail = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise QueryFailedError(f"endpoint {url} answered HTTP {exc.code}") from None
        if isinstance(detail, dict) and detail.get("rule"):
            message = str(detail.get("error", "")).removeprefix("refused: ")
            raise ReadOnlyQueryError(str(detail["rule"]), message) from None
        error = detail.get("error") if isinstance(detail, dict) else detail
        raise QueryFailedError(f"{error} (HTTP {exc.code} from {url})") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (ConnectionRefusedError, socket.gaierror, FileNotFoundError)):
            raise EndpointUnreachableError(f"nothing answers at {url}: {exc.reason}") from exc
        if isinstance(exc.reason, (TimeoutError, socket.timeout)):
            raise EndpointUnreachableError(f"{url} timed out") from exc
        raise QueryFailedError(f"endpoint {url}: {exc.reason}") from exc
    except ConnectionError as exc:
        raise EndpointUnreachableError(f"nothing answers at {url}: {exc}") from exc


def query_direct(
    settings: ClickHouseSettings, sql: str, *, max_rows: int = DEFAULT_MAX_ROWS
) -> QueryAnswer:
    """Open a read-only client on ``settings`` and run ``sql``; close the client.

    Raises :class:`ChdbPathLockedError` when another process holds the chDB path and
    :class:`QueryFailedError` when there is no spendwatch data at that DSN.
    """
    path = settings.chdb_path
    if path is not None and not path.exists():
        raise QueryFailedError(f"no chDB data at {path} (nothing written there yet? see --dsn)")
    client = make_client(settings, create_database=False, read_only=True)
    try:
        return run_read_only(client, sql, max_rows=max_rows)
    except Exception as exc:
        if error_code(exc) == UNKNOWN_DATABASE:
            raise QueryFailedError(
                f"database {settings.database!r} does not exist at {settings.redacted_dsn} "
                "(nothing written there yet? see --database / --dsn)"
            ) from exc
        raise
    finally:
        client.close()


def run_sql(
    sql: str,
    *,
    endpoint: str,
    settings: ClickHouseSettings,
    max_rows: int = DEFAULT_MAX_ROWS,
    timeout_s: float = 300.0,
) -> SqlOutcome:
    """The whole ``spendwatch sql`` path (see the module docstring)."""
    check_read_only(sql)
    try:
        answer = query_endpoint(endpoint, sql, max_rows=max_rows, timeout_s=timeout_s)
        return SqlOutcome(answer, "endpoint")
    except EndpointUnreachableError as unreachable:
        try:
            return SqlOutcome(query_direct(settings, sql, max_rows=max_rows), "direct")
        except ChdbPathLockedError as exc:
            raise QueryFailedError(f"{exc}; and {unreachable}") from exc


def render(answer: QueryAnswer, fmt: str) -> str:
    """The answer as an aligned text table, CSV or JSON (``fmt`` in :data:`FORMATS`)."""
    if fmt == "json":
        return json.dumps(
            {"columns": answer.columns, "rows": answer.rows, "truncated": answer.truncated},
            ensure_ascii=False,
        )
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(answer.columns)
        writer.writerows([[_cell(v, csv_mode=True) for v in row] for row in answer.rows])
        return buf.getvalue().rstrip("\n")
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return _table(answer)


def _table(answer: QueryAnswer) -> str:
    cells = [[_cell(v) for v in row] for row in answer.rows]
    widths = [len(c) for c in answer.columns]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    numeric = [
        bool(_NUMERIC_TYPE.match(answer.types[i])) if i < len(answer.types) else False
        for i in range(len(answer.columns))
    ]

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(widths[i]) if numeric[i] else v.ljust(widths[i]) for i, v in enumerate(values)
        ]
        return "  ".join(parts).rstrip()

    out = [line(answer.columns), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in cells)
    count = len(answer.rows)
    footer = f"({count} row{'s' if count != 1 else ''}{', truncated' if answer.truncated else ''})"
    out.append(footer)
    return "\n".join(out)


def _cell(value: Any, *, csv_mode: bool = False) -> str:
    if value is None:
        return "" if csv_mode else "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = str(value)
    return text if csv_mode else text.replace("\n", "\\n").replace("\t", "\\t")
