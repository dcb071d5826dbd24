"""``spendwatch detect FILE.csv``: backtest the detectors on an exported ``timestamp,value``
series.

Writes ``timestamp,value,anomaly_score,alert`` (score in [0, 1], alert 0/1), one line per input
line in input order, to stdout or ``-o/--out``; what was done to read the file and a summary
of the alert episodes go to stderr. Exit codes: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.detect.exports import KINDS, Kind, parse_rows, to_grid
from streams.detect.offline import detect_grid
from streams.detect.settings import DetectSettings

_KIND_HELP = (
    "spend: USD spent per row (default; rows in one step are summed, a missing step is $0, "
    "money floors apply); count: an amount of anything else per row (calls, tokens; summed, "
    "missing = 0); gauge: a reading (CPU %%, latency, a balance; averaged, missing = no "
    "reading). count and gauge have no dollar minimum and no ratio rule."
)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``detect`` subcommand to the ``spendwatch`` parser."""
    parser = subparsers.add_parser(
        "detect",
        help="backtest the spike detector on a CSV time series",
        description="Score a timestamp,value CSV with the streaming detectors and flag the rows "
        "that would have alerted. Any interval (the most common gap; irregular rows go to the "
        "nearest step), repeated or unordered timestamps, negative values.",
    )
    parser.add_argument("file", help="CSV with timestamp,value rows ('-' for stdin)")
    parser.add_argument(
        "-o", "--out", type=Path, default=None, help="write the CSV here, not stdout"
    )
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
        "(default: min_delta_usd_per_min x the interval in minutes for spend; none otherwise)",
    )
    parser.add_argument(
        "--timezone",
        default="UTC",
        metavar="ZONE",
        help="IANA zone of timestamps written without an offset (default UTC)",
    )
    parser.add_argument("--kind", choices=KINDS, default="spend", help=_KIND_HELP)
    parser.set_defaults(func=run)


def _settings(config: Path | None) -> DetectSettings:
    from streams.config import load_settings  # the lead's loader validates the whole file

    detect: DetectSettings = load_settings(config).detect
    return detect


def _fail(message: str) -> int:
    print(f"spendwatch detect: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Run the backtest for parsed ``args``; returns the exit code."""
    settings = _settings(args.config)
    kind: Kind = args.kind
    min_delta: Decimal | None = None
    if args.min_delta is not None:
        try:
            min_delta = Decimal(args.min_delta)
        except InvalidOperation:
            return _fail(f"--min-delta {args.min_delta!r} is not a number")
        if not min_delta.is_finite() or min_delta <= 0:
            return _fail("--min-delta must be positive")
    try:
        zone = ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return _fail(f"--timezone {args.timezone!r} is not an IANA time zone")
    try:
        if args.file == "-":
            lines = sys.stdin.read().splitlines()
        else:
            lines = Path(args.file).read_text().splitlines()
        rows = parse_rows(lines, zone)
        grid = to_grid(rows, kind)
        result = detect_grid(grid, settings, kind=kind, min_delta=min_delta)
    except (OSError, ValueError) as exc:
        return _fail(f"{args.file}: {exc}")
    out = ["timestamp,value,anomaly_score,alert"]
    for ts, value, step in zip(rows.raw_ts, rows.raw_values, grid.row_steps, strict=True):
        out.append(f"{ts},{value},{result.scores[step]:.4f},{result.alerts[step]}")
    text = "\n".join(out) + "\n"
    if args.out is not None:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    for note in grid.notes:
        print(f"note: {note}", file=sys.stderr)
    gaps = "left without a reading" if kind == "gauge" else "counted as 0"
    alert_rows = sum(result.alerts[step] for step in grid.row_steps)
    print(
        f"{len(rows.raw_ts)} rows, interval {result.interval_s}s, {result.missing_steps} missing "
        f"steps {gaps}, {alert_rows} alert rows, {len(result.episodes)} episodes",
        file=sys.stderr,
    )
    unit = "$" if kind == "spend" else ""
    for ep in result.episodes:
        end = result.step_time(ep.resolved).isoformat() if ep.resolved is not None else "still open"
        what = "rise" if ep.direction == "rise" else "drop"
        print(
            f"  {what} from {result.step_time(ep.first).isoformat()}, fired at "
            f"{result.step_time(ep.fired).isoformat()}, resolved {end}: {unit}{ep.observed:g} "
            f"per step against a baseline of {unit}{ep.baseline:g}",
            file=sys.stderr,
        )
    return 0
