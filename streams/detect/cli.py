"""``spendwatch detect FILE.csv``: backtest the spike detector on a ``timestamp,value`` series.

Writes ``timestamp,value,anomaly_score,alert`` (score in [0, 1], alert 0/1) to stdout or
``--out``; a summary of the alert episodes goes to stderr. Exit codes: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

from streams.detect.offline import detect_series, parse_rows
from streams.detect.settings import DetectSettings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``detect`` subcommand to the ``spendwatch`` parser."""
    parser = subparsers.add_parser(
        "detect",
        help="backtest the spike detector on a CSV time series",
        description="Score a timestamp,value CSV (any regular interval; values are USD per "
        "row) with the streaming spike detector and flag the rows that would have alerted.",
    )
    parser.add_argument("file", help="CSV with timestamp,value rows ('-' for stdin)")
    parser.add_argument("--out", type=Path, default=None, help="write the CSV here, not stdout")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config file whose [detect] section to use (default: $SPENDWATCH_CONFIG or "
        "./spendwatch.toml if present, else built-in defaults)",
    )
    parser.add_argument(
        "--min-delta",
        default=None,
        metavar="VALUE",
        help="smallest excess per row worth an alert, in the series' units "
        "(default: min_delta_usd_per_min x the interval in minutes)",
    )
    parser.set_defaults(func=run)


def _settings(config: Path | None) -> DetectSettings:
    from streams.config import load_settings  # the lead's loader validates the whole file

    detect: DetectSettings = load_settings(config).detect
    return detect


def run(args: argparse.Namespace) -> int:
    """Run the backtest for parsed ``args``; returns the exit code."""
    settings = _settings(args.config)
    min_delta: Decimal | None = None
    if args.min_delta is not None:
        try:
            min_delta = Decimal(args.min_delta)
        except InvalidOperation:
            print(
                f"spendwatch detect: --min-delta {args.min_delta!r} is not a number",
                file=sys.stderr,
            )
            return 2
        if not min_delta.is_finite() or min_delta <= 0:
            print("spendwatch detect: --min-delta must be positive", file=sys.stderr)
            return 2
    try:
        if args.file == "-":
            lines = sys.stdin.read().splitlines()
        else:
            lines = Path(args.file).read_text().splitlines()
        raw_ts, stamps, raw_values, values = parse_rows(lines)
        result = detect_series(stamps, values, settings, min_delta=min_delta)
    except (OSError, ValueError) as exc:
        print(f"spendwatch detect: {args.file}: {exc}", file=sys.stderr)
        return 2
    out = ["timestamp,value,anomaly_score,alert"]
    for ts, value, score, flag in zip(
        raw_ts, raw_values, result.scores, result.alerts, strict=True
    ):
        out.append(f"{ts},{value},{score:.4f},{flag}")
    text = "\n".join(out) + "\n"
    if args.out is not None:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    print(
        f"{len(raw_ts)} rows, interval {result.interval_s}s, {result.missing_steps} missing "
        f"steps counted as 0, {sum(result.alerts)} alert rows, {len(result.episodes)} episodes",
        file=sys.stderr,
    )
    for ep in result.episodes:
        end = raw_ts[ep.resolved] if ep.resolved is not None else "still firing"
        print(
            f"  {raw_ts[ep.first]} fired at {raw_ts[ep.fired]}, resolved {end}: {ep.alert.title}",
            file=sys.stderr,
        )
    return 0
