"""The ``spendwatch`` command line.

``spendwatch up --demo``   broker + worker + ClickHouse in-process + demo traffic, one machine
``spendwatch worker``      one stream worker against the configured Kafka and ClickHouse
``spendwatch ingest``      HTTP ingest: OTLP GenAI spans and JSON-lines events -> Kafka
``spendwatch sql``         read-only SQL on the events and alerts
``spendwatch budgets``     check the budgets file; raise a limit for a while
``spendwatch silence``     add, list and expire alert silences
``spendwatch detect``      backtest the spike detector on a CSV time series
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from schemas.errors import ConfigError


def _add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config file (default: $SPENDWATCH_CONFIG or ./spendwatch.toml)",
    )


def _cmd_worker(args: argparse.Namespace) -> int:
    from streams.config import load_settings
    from streams.worker import run_worker

    return run_worker(load_settings(args.config), loglevel=args.loglevel)


def _cmd_up(args: argparse.Namespace) -> int:
    from streams.up import run_up

    return run_up(
        config=args.config, demo=args.demo, duration_s=args.duration, loglevel=args.loglevel
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
    up.add_argument("--loglevel", default="WARNING")
    up.set_defaults(func=_cmd_up)

    worker = sub.add_parser("worker", help="run one stream worker (Kafka + ClickHouse from config)")
    _add_config_arg(worker)
    worker.add_argument("--loglevel", default="WARNING")
    worker.set_defaults(func=_cmd_worker)

    from alerting.cli import register as register_silence
    from ingest.cli import register as register_ingest
    from sinks.cli import register as register_sql
    from streams.budgets.cli import register as register_budgets
    from streams.detect.cli import register as register_detect

    for register in (
        register_ingest,
        register_sql,
        register_budgets,
        register_silence,
        register_detect,
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
