"""``spendwatch budgets check`` and ``spendwatch budgets override``.

``check`` validates ``[[budgets]]`` of the config file and prints each budget with its current
period in its own time zone; exit 2 with the line and field of the first error.
``override`` publishes an :class:`~streams.budgets.control.OverrideCommand` to
``spendwatch.control.v1`` (key = budget); the worker applies and announces it.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import socket
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TextIO

from schemas import environment
from schemas.errors import ConfigError
from schemas.money import format_usd
from streams.budgets.control import OverrideCommand, parse_duration
from streams.budgets.model import Budget
from streams.budgets.periods import period_bounds
from streams.config import Settings, config_path, load_settings

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``budgets check`` and ``budgets override`` to the ``spendwatch`` CLI."""
    parser = subparsers.add_parser("budgets", help="check budgets, override a limit")
    sub = parser.add_subparsers(dest="budgets_command", metavar="{check,override}")
    sub.required = True

    check = sub.add_parser("check", help="validate [[budgets]] and show current periods")
    check.add_argument("--config", default=argparse.SUPPRESS, help="spendwatch.toml path")
    check.set_defaults(func=cmd_check)

    override = sub.add_parser("override", help="raise a budget's limit for a while")
    override.add_argument("budget", help="budget name")
    override.add_argument("--limit-usd", required=True, help="new limit in USD, e.g. 750")
    override.add_argument(
        "--for", dest="for_", required=True, metavar="DURATION", help="e.g. 2h, 90m, 1d"
    )
    override.add_argument("--reason", default="", help="why (shown in the announcement)")
    override.add_argument("--by", default=None, help="who (default user@host)")
    override.add_argument("--config", default=argparse.SUPPRESS, help="spendwatch.toml path")
    override.add_argument(
        "--bootstrap-servers",
        default=None,
        help=f"Kafka bootstrap (else ${environment.KAFKA_BOOTSTRAP.name}, else [kafka])",
    )
    override.set_defaults(func=cmd_override)


def _settings(args: argparse.Namespace, *, file_required: bool) -> Settings:
    """The whole file validated as the worker does (``--config`` > ``$SPENDWATCH_CONFIG`` >
    ``./spendwatch.toml``); without a file, defaults unless ``file_required``."""
    explicit = getattr(args, "config", None)
    path = config_path(explicit)
    flags = {"kafka.bootstrap_servers": getattr(args, "bootstrap_servers", None)}
    if not path.exists() and file_required:
        hint = "" if explicit else " (`spendwatch init` writes one)"
        raise ConfigError("config", f"file not found: {path}{hint}")
    return load_settings(explicit, flags=flags)


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds()) // 60
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    return f"{days}d {hours}h" if days else f"{hours}h {mins}m"


def describe(budget: Budget, now: datetime) -> list[str]:
    """Lines that ``budgets check`` prints for one budget (``now`` picks the current period)."""
    start, end = period_bounds(budget, now)
    fmt = "%Y-%m-%d %H:%M %Z"
    thresholds = ", ".join(
        f"{format((t.at * 100).normalize(), 'f')}% {t.severity}" for t in budget.thresholds
    )
    limit = format_usd(budget.limit_nusd)
    if budget.per_request_limit_nusd is not None:
        limit += f"  (per request {format_usd(budget.per_request_limit_nusd)})"
    lines = [
        budget.name,
        f"  scope       {budget.match.describe()}",
        f"  period      {budget.describe_period()} in {budget.timezone}",
        f"  limit       {limit}",
        f"  thresholds  {thresholds}",
    ]
    quotas = [
        f"{value} {label}"
        for value, label in (
            (budget.requests_per_minute, "requests/min"),
            (budget.requests_per_day, "requests/day"),
            (budget.tokens_per_minute, "tokens/min"),
            (budget.tokens_per_day, "tokens/day"),
        )
        if value
    ]
    if quotas:
        lines.append(f"  quotas      {', '.join(quotas)}")
    at_limit: str = budget.on_exhausted
    if budget.degrade_to:
        at_limit += " (" + ", ".join(f"{a} -> {b}" for a, b in budget.degrade_to) + ")"
    lines.append(f"  at limit    {at_limit}")
    if budget.labels or budget.receivers:
        labels = ", ".join(f"{k}={v}" for k, v in budget.labels)
        if budget.receivers:
            labels = ", ".join(filter(None, [labels, "receivers=" + ",".join(budget.receivers)]))
        lines.append(f"  labels      {labels}")
    lines.append(
        f"  current     {start.astimezone(budget.tz).strftime(fmt)} -> "
        f"{end.astimezone(budget.tz).strftime(fmt)} (resets in {_span(end - now)})"
    )
    return lines


def cmd_check(
    args: argparse.Namespace, *, now: datetime | None = None, out: TextIO | None = None
) -> int:
    """Validate the budgets of the config file; print them. 0 = valid, 2 = config error."""
    out = out or sys.stdout
    path = config_path(getattr(args, "config", None))
    now = now or datetime.now(UTC)
    try:
        budgets = _settings(args, file_required=True).budgets
    except ConfigError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{path}: {len(budgets)} budget{'s' if len(budgets) != 1 else ''} OK", file=out)
    for budget in budgets:
        print("", file=out)
        print("\n".join(describe(budget, now)), file=out)
    return EXIT_OK


async def publish_override(bootstrap_servers: str, command: OverrideCommand) -> None:
    """Send one command to ``spendwatch.control.v1`` and wait for the broker's ack."""
    from aiokafka import AIOKafkaProducer

    from streams.topics import CONTROL

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        enable_idempotence=False,  # Tansu refuses idempotent producers
        acks="all",
        request_timeout_ms=10_000,
    )
    try:
        await producer.start()
        await producer.send_and_wait(CONTROL, command.to_json(), key=command.budget.encode())
    finally:
        await producer.stop()


def cmd_override(
    args: argparse.Namespace, *, now: datetime | None = None, out: TextIO | None = None
) -> int:
    """Publish an override command. 0 = sent, 1 = broker failure, 2 = bad input/config."""
    out = out or sys.stdout
    now = now or datetime.now(UTC)
    try:
        settings = _settings(args, file_required=False)
        if settings.source is not None and settings.source.exists():
            budgets = settings.budgets
            if args.budget not in {b.name for b in budgets}:
                known = ", ".join(b.name for b in budgets) or "none"
                raise ConfigError(
                    "budget", f"{args.budget!r} is not in {settings.source} (known: {known})"
                )
        try:
            limit = Decimal(str(args.limit_usd))
        except InvalidOperation:
            raise ConfigError(
                "--limit-usd", f"{args.limit_usd!r} is not a decimal amount"
            ) from None
        if not limit.is_finite() or limit <= 0:
            raise ConfigError("--limit-usd", "must be a positive amount")
        try:
            duration = parse_duration(args.for_)
        except ValueError as exc:
            raise ConfigError("--for", str(exc)) from None
        by = args.by if args.by is not None else f"{getpass.getuser()}@{socket.gethostname()}"
        command = OverrideCommand(
            budget=args.budget,
            limit_usd=limit,
            until=now + duration,
            at=now,
            reason=args.reason,
            by=by,
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    bootstrap = settings.kafka.bootstrap_servers
    try:
        asyncio.run(publish_override(bootstrap, command))
    except Exception as exc:  # report any broker/connection failure as an exit code
        print(f"error: could not publish to {bootstrap}: {exc!r}", file=sys.stderr)
        return EXIT_FAILED
    print(command.to_json().decode(), file=out)
    return EXIT_OK
