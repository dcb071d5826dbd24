"""The ``spendwatch`` command line.

``spendwatch init``        write a commented ./spendwatch.toml to start from
``spendwatch up --demo``   broker + worker + ClickHouse in-process + demo traffic, one machine
``spendwatch worker``      one stream worker against the configured Kafka and ClickHouse
``spendwatch config``      validate the whole config file as the worker would
``spendwatch ingest``      HTTP ingest: OTLP GenAI spans and JSON-lines events -> Kafka
``spendwatch sql``         read-only SQL on the events and alerts
``spendwatch budgets``     check the budgets file; raise a limit for a while
``spendwatch silence``     add, list and expire alert silences
``spendwatch detect``      backtest the spike detector on a CSV time series
``spendwatch report``      spend report for a day, week or month against the previous one
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from schemas import environment
from schemas.errors import ConfigError

if TYPE_CHECKING:
    from streams.config import Settings

EXAMPLE = "spendwatch.example.toml"  # package data of ``streams``


def _add_config_arg(parser: argparse.ArgumentParser, *, settings: bool = False) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config file (default: $SPENDWATCH_CONFIG or ./spendwatch.toml)",
    )
    if settings:  # flags beat the environment, which beats the file
        for var in environment.SETTINGS:
            assert var.setting is not None and var.flag is not None
            parser.add_argument(
                var.flag,
                dest="_".join(var.setting),
                default=None,
                metavar="VALUE",
                help=f"{'.'.join(var.setting)} (beats ${var.name} and the file)",
            )


def _flags(args: argparse.Namespace) -> dict[str, object]:
    return {
        ".".join(var.setting): getattr(args, "_".join(var.setting), None)
        for var in environment.SETTINGS
        if var.setting is not None
    }


def _load(args: argparse.Namespace) -> Settings:
    from streams.config import load_settings

    return load_settings(args.config, flags=_flags(args))


def _cmd_worker(args: argparse.Namespace) -> int:
    from streams.probe import kafka_problem

    settings = _load(args)
    for disabled in settings.alerting.disabled:
        print(f"spendwatch: warning: {disabled.describe()}", file=sys.stderr)
    if args.kafka_wait_s > 0:
        problem = kafka_problem(
            settings.kafka.bootstrap_servers,
            origin=settings.origins.get("kafka.bootstrap_servers", ""),
            wait_s=args.kafka_wait_s,
        )
        if problem is not None:
            print(f"spendwatch: {problem}", file=sys.stderr)
            return 1
    from sinks.http_endpoint import set_health_note
    from streams.worker import run_worker

    set_health_note(
        "receivers_disabled",
        [{"name": d.name, "type": d.type, "unset": d.variable} for d in settings.alerting.disabled],
    )
    return run_worker(settings, loglevel=args.loglevel)


def _cmd_config_check(args: argparse.Namespace) -> int:
    settings = _load(args)
    where = settings.source if settings.source and settings.source.exists() else None
    print(f"{where or 'no config file: defaults'}: OK")
    origins = settings.origins
    rows = [
        ("kafka.bootstrap_servers", settings.kafka.bootstrap_servers),
        ("kafka.consumer_group", settings.kafka.consumer_group),
        ("clickhouse.dsn", settings.clickhouse.redacted_dsn),
        ("clickhouse.database", settings.clickhouse.database),
        ("worker.state_dir", str(settings.worker.state_dir)),
        ("worker.http", f"{settings.worker.http_host}:{settings.worker.http_port}"),
        ("prices", f"{len(settings.prices)} entries"),
        ("budgets", ", ".join(b.name for b in settings.budgets) or "none"),
        ("alerting.receivers", ", ".join(settings.alerting.receiver_names)),
        ("detect", "enabled" if settings.detect.enabled else "disabled"),
    ]
    for name, value in rows:
        origin = origins.get(name)
        print(f"  {name:<24} {value}" + (f"  ({origin})" if origin else ""))
    for disabled in settings.alerting.disabled:
        print(f"  warning: {disabled.describe()}")
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from importlib.resources import files

    target: Path = args.path
    if target.exists() and not args.force:
        print(f"spendwatch: {target} exists; keep it, or use --force to overwrite", file=sys.stderr)
        return 1
    target.write_text((files("streams") / EXAMPLE).read_text())
    print(f"spendwatch: wrote {target}; check it with: spendwatch budgets check")
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    from streams.up import run_up

    return run_up(
        config=args.config,
        demo=args.demo,
        duration_s=args.duration,
        loglevel=args.loglevel,
        port=args.port,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spendwatch",
        description="Streaming spend telemetry and budget alerts for LLM and metered APIs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run broker, worker and ClickHouse on this machine")
    _add_config_arg(up)
    up.add_argument("--demo", action="store_true", help="also run a demo fleet of agents")
    up.add_argument(
        "--duration", type=float, default=None, metavar="S", help="stop after S seconds"
    )
    up.add_argument(
        "--port", type=int, default=None, help="broker port (default 9092 if free, else any)"
    )
    up.add_argument("--loglevel", default="WARNING")
    up.set_defaults(func=_cmd_up)

    worker = sub.add_parser("worker", help="run one stream worker (Kafka + ClickHouse from config)")
    _add_config_arg(worker, settings=True)
    worker.add_argument("--loglevel", default="WARNING")
    worker.add_argument(
        "--kafka-wait-s",
        type=float,
        default=10.0,
        metavar="S",
        help="wait this long for the broker to answer before giving up (0: do not check)",
    )
    worker.set_defaults(func=_cmd_worker)

    config = sub.add_parser("config", help="validate the config file")
    config_sub = config.add_subparsers(dest="config_command", metavar="{check}", required=True)
    check = config_sub.add_parser("check", help="validate the whole file as the worker would")
    _add_config_arg(check, settings=True)
    check.set_defaults(func=_cmd_config_check)

    init = sub.add_parser("init", help="write a commented spendwatch.toml to start from")
    init.add_argument("path", nargs="?", type=Path, default=Path("spendwatch.toml"))
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=_cmd_init)

    from alerting.cli import register as register_silence
    from ingest.cli import register as register_ingest
    from sinks.cli import register as register_sql
    from streams.budgets.cli import register as register_budgets
    from streams.detect.cli import register as register_detect
    from streams.report.cli import register as register_report  # issue 17

    for register in (
        register_ingest,
        register_sql,
        register_budgets,
        register_silence,
        register_detect,
        register_report,
    ):
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spendwatch`` script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"spendwatch: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
