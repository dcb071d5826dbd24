"""The benchmarks the README quotes still run against today's code.

Each script runs as the README says, at a tiny size, and must finish and print its result
line. Two had gone stale without anyone noticing (the pricer and the insert-format bench
still fed the hot path dicts and JSON bodies after it moved to decoded structs and Arrow
blocks). The figures themselves are measured in ``bench/``, never asserted here; the one
check that is a property, not a speed, is kept: the cached pricer equals genai-prices'
``calc_price`` on every event of the mix.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

SCRIPTS = [
    (["bench/bench_pricing.py", "--events", "300", "--repeat", "1"], "identical results"),
    (
        ["bench/bench_insert_formats.py", "--events", "2000", "--repeats", "1"],
        "| the worker's own Arrow blocks |",
    ),
    (["bench/bench_hot_path.py", "--events", "2000", "--batch", "1000"], "ledgers (apply_delta"),
    (["bench/bench_sink.py", "--rows", "2000", "--batches", "1000"], "rows per run: 2,000"),
]


@pytest.mark.parametrize(("args", "expect"), SCRIPTS, ids=[s[0][0] for s in SCRIPTS])
def test_bench_script_runs(args: list[str], expect: str) -> None:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert expect in done.stdout, done.stdout[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
