"""The worker's detector and ``spendwatch detect`` give the same alerts on the same input.

One spend series, four and a half days of minutes with a day/night cycle, a runaway on the
second day and a spend drop on the fifth: once as priced events through ``DetectStream`` (the
worker's path: minute aggregation, then the monitor), once as a CSV through the
``spendwatch detect`` command. Same alert ids, statuses, times and figures.
"""

from __future__ import annotations

import argparse
import math
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from schemas.money import usd_to_nusd
from streams.detect import DetectStream
from streams.detect.cli import register
from streams.detect.exports import parse_rows, to_grid
from streams.detect.offline import detect_grid
from tests.unit.streams.detect.helpers_detect import T0

MINUTES = int(4.5 * 1440)
RUNAWAY = range(1440 + 800, 1440 + 812)  # day two, 13:20, x3 for 12 minutes
DROP = range(4 * 1440 + 300, 4 * 1440 + 340)  # day five, 05:00, to a fifth for 40 minutes


def usd(m: int) -> Decimal:
    """$0.40 at night to $2.00 mid-afternoon, a little wobble, the two incidents."""
    tod = m % 1440
    v = 0.4 + 1.6 * (0.5 + 0.5 * math.cos(2 * math.pi * (tod - 900) / 1440))
    v *= 1.0 + 0.05 * math.sin(m * 1.7)
    if m in RUNAWAY:
        v *= 3
    if m in DROP:
        v /= 5
    return Decimal(f"{v:.6f}")


def stream_alerts() -> list[tuple[str, str, str, str, str]]:
    stream = DetectStream()
    alerts = []
    for m in range(MINUTES):
        event = {
            "event_id": f"e{m}",
            "ts": (T0 + timedelta(minutes=m, seconds=30)).isoformat(),
            "service": "series",
            "operation": "chat",
            "status": "ok",
            "cost_nusd": usd_to_nusd(usd(m)),
        }
        alerts += stream.add(event)
    alerts += stream.flush()
    return [
        (a.alert_id, a.status, a.fired_at.isoformat(), a.figures["observed"], a.figures["baseline"])
        for a in alerts
    ]


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="spendwatch")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["detect", *argv])
    code: int = args.func(args)
    return code


def test_worker_and_offline_backtest_send_the_same_alerts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ["timestamp,value"] + [
        f"{(T0 + timedelta(minutes=m)).strftime('%Y-%m-%dT%H:%M:%SZ')},{usd(m)}"
        for m in range(MINUTES)
    ]
    csv = tmp_path / "spend.csv"
    csv.write_text("\n".join(lines) + "\n")
    config = tmp_path / "spendwatch.toml"
    config.write_text("[detect]\n")

    # what the worker sends
    expected = stream_alerts()
    kinds = [(status, fired[:16]) for _, status, fired, _, _ in expected]
    assert kinds == [
        ("firing", "2025-03-04T13:22"),  # the runaway, at its second minute
        ("resolved", "2025-03-04T13:35"),
        ("firing", "2025-03-07T05:04"),  # the drop: median of five minutes, confirmed
        ("resolved", "2025-03-07T05:45"),
    ]

    # what the backtest finds, through the same reading as the command
    result = detect_grid(to_grid(parse_rows(lines), "spend"))
    offline = []
    for ep in result.episodes:
        a = ep.alert
        fired = (a.fired_at.isoformat(), a.figures["observed"], a.figures["baseline"])
        offline.append((a.alert_id, "firing", *fired))
        if ep.resolved is not None:
            end = (T0 + timedelta(minutes=ep.resolved + 1)).isoformat()
            offline.append((a.alert_id, "resolved", end, *fired[1:]))
    stream_key = [(aid, status, at) for aid, status, at, _, _ in expected]
    assert [(aid, status, at) for aid, status, at, _, _ in offline] == stream_key
    firing = [row for row in expected if row[1] == "firing"]
    assert [row for row in offline if row[1] == "firing"] == firing

    # and the command itself: the same episodes, and the alert rows inside them
    assert run_cli([str(csv), "--config", str(config), "-o", str(tmp_path / "out.csv")]) == 0
    err = capsys.readouterr()[1]
    assert f"{MINUTES} rows, interval 60s, 0 missing steps counted as 0" in err
    assert "  rise from 2025-03-04T13:20:00+00:00, fired at 2025-03-04T13:21:00+00:00" in err
    assert "  drop from 2025-03-07T05:02:00+00:00, fired at 2025-03-07T05:03:00+00:00" in err
    rows = (tmp_path / "out.csv").read_text().splitlines()[1:]
    flagged = [i for i, row in enumerate(rows) if row.endswith(",1")]
    # every runaway minute; the drop from the minute its five-minute median fell to the two
    # minutes the median takes to climb back
    assert flagged == [*RUNAWAY, *range(DROP[0] + 2, DROP[-1] + 3)]
