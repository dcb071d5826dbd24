"""``spendwatch sql`` subcommand (wired into the lead's ``streams/cli.py`` via :func:`register`).

Defaults come from the config file (``--config``, else ``$SPENDWATCH_CONFIG`` or
``./spendwatch.toml``, read by ``streams.config.load_settings``): ``[clickhouse]`` for the
direct path, ``[worker] http_host/http_port`` for the endpoint. A caller may preset
``args.clickhouse_settings`` / ``args.worker_http_host`` / ``args.worker_http_port`` instead.
Flags win: ``--endpoint`` (else ``$SPENDWATCH_SQL_ENDPOINT``), ``--dsn``, ``--database``; with
both an endpoint and ``--dsn`` given, the config file is not read unless ``--config`` names it.

Exit codes: 0 success; 1 the query failed or ClickHouse is unreachable; 2 the query was
refused by the read-only rule (or bad arguments).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any

from schemas.errors import ConfigError
from sinks.query import DEFAULT_MAX_ROWS
from sinks.readonly import ReadOnlyQueryError
from sinks.settings import ClickHouseSettings
from sinks.sql import ENDPOINT_ENV, FORMATS, QueryFailedError, render, resolve_endpoint, run_sql

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``sql`` to the main CLI's subcommands."""
    parser = subparsers.add_parser(
        "sql",
        help="run a read-only SQL query on the spendwatch ClickHouse data",
        description=(
            "Run one read-only query (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS). "
            "Asks the running worker's SQL endpoint first, else opens ClickHouse directly. "
            "Rows are deduplicated (FINAL), money columns are exact."
        ),
    )
    parser.add_argument("query", help='the SQL text, e.g. "SELECT count() FROM usage_events"')
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config file (default: $SPENDWATCH_CONFIG or ./spendwatch.toml)",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default: table)"
    )
    parser.add_argument(
        "--endpoint",
        default=None,
        help=f"worker SQL endpoint URL (default: ${ENDPOINT_ENV} or the [worker] host/port)",
    )
    parser.add_argument(
        "--dsn",
        default=None,
        help="ClickHouse DSN for the direct path (default: [clickhouse] dsn, "
        "$SPENDWATCH_CLICKHOUSE_DSN, chdb:///.spendwatch/chdb)",
    )
    parser.add_argument("--database", default=None, help="database (default: spendwatch)")
    parser.add_argument(
        "--max-rows",
        type=int,
        default=DEFAULT_MAX_ROWS,
        help=f"return at most this many rows (default: {DEFAULT_MAX_ROWS})",
    )
    parser.set_defaults(func=sql_command)


def sql_command(args: argparse.Namespace) -> int:
    """Run the ``sql`` subcommand; print the result to stdout, errors to stderr."""
    try:
        settings, host, port = _config(args)
    except ConfigError as exc:
        print(f"spendwatch sql: configuration error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    endpoint = resolve_endpoint(args.endpoint, host, port)
    if args.max_rows < 1:
        print("spendwatch sql: --max-rows must be >= 1", file=sys.stderr)
        return EXIT_REFUSED
    try:
        outcome = run_sql(
            args.query,
            endpoint=endpoint,
            settings=settings,
            max_rows=args.max_rows,
            timeout_s=settings.query_timeout_s,
        )
    except ReadOnlyQueryError as exc:
        print(f"spendwatch sql: refused ({exc.rule}): {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except QueryFailedError as exc:
        print(f"spendwatch sql: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # ClickHouse errors on the direct path
        print(f"spendwatch sql: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(render(outcome.answer, args.format))
    return EXIT_OK


def _config(args: argparse.Namespace) -> tuple[ClickHouseSettings, str | None, int | None]:
    """ClickHouse settings and worker host/port: namespace overrides > config file > defaults."""
    base = getattr(args, "clickhouse_settings", None)
    host = getattr(args, "worker_http_host", None)
    port = getattr(args, "worker_http_port", None)
    flags_say_all = bool(args.dsn) and bool(args.endpoint or os.environ.get(ENDPOINT_ENV))
    if flags_say_all and getattr(args, "config", None) is None:
        # Endpoint and DSN given: nothing left to read from the config file.
        base = ClickHouseSettings.from_config({})
    elif not isinstance(base, ClickHouseSettings):
        try:
            # Lazy: the config loader lives with the CLI in streams/; sinks must not need it.
            config = importlib.import_module("streams.config")
        except ImportError:
            base = ClickHouseSettings.from_config({})
        else:
            loaded = config.load_settings(getattr(args, "config", None))
            base = loaded.clickhouse
            host = host or loaded.worker.http_host
            port = port or loaded.worker.http_port
    return _with_flags(base, args), host, port


def _with_flags(base: ClickHouseSettings, args: argparse.Namespace) -> ClickHouseSettings:
    changes: dict[str, Any] = {}
    if args.dsn:
        changes["dsn"] = args.dsn
    if args.database:
        changes["database"] = args.database
    try:
        return type(base)(**{**base.model_dump(), **changes}) if changes else base
    except ConfigError as exc:
        raise ConfigError(f"--{exc.field}", exc.message) from None


def main(argv: list[str] | None = None) -> int:
    """``python -m sinks.cli QUERY ...``: the ``sql`` command on its own (tests, scripts)."""
    parser = argparse.ArgumentParser(prog="spendwatch")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sql", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
