"""Run every benchmark in this folder, one after another (``make bench``).

Each script prints its figures and the machine it ran on; record notable runs in
``bench/RESULTS.md`` with the command that produced them. Benchmarks are never timed
assertions in the test suite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = (
    ["bench_pricing.py"],
    ["bench_sink.py"],
    ["bench_budgets.py"],
    ["bench_alerting.py"],
    ["bench_sdk.py"],
    ["bench_sdk_integrations.py"],
    ["-m", "bench.detect_quality.run"],
    ["-m", "bench.detect_quality.real"],
    ["bench_warm_start.py"],
    ["bench_hot_path.py"],
    ["bench_ceiling.py"],
    ["bench_drain.py", "--two-workers"],
    ["bench_latency.py"],
    ["bench_pipeline.py", "--events", "10000", "--seconds", "10"],
)


def main() -> int:
    failed = []
    for script, *args in SCRIPTS:
        print(f"\n=== {script} {' '.join(args)}", flush=True)
        target = [script, *args] if script == "-m" else [str(HERE / script), *args]
        code = subprocess.call([sys.executable, *target], cwd=HERE.parent)
        if code:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
