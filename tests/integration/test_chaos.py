"""The short chaos run (``bench/chaos.py`` with a small plan): two workers sharing one
ClickHouse, 20,000 events (1 % sent twice), one SIGKILL, one Slack outage (500 then 429 with
Retry-After), one ClickHouse write outage, one broker restart, one unreachable-broker window
for an instrumented app. Every figure of the table must be exact; ``make chaos`` runs the
long version (200,000 events, five kills, longer outages).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import Plan, run

pytestmark = pytest.mark.integration


def test_short_chaos_run_loses_and_repeats_nothing(tmp_path: Path) -> None:
    plan = Plan(
        events=20_000,
        rate=500.0,
        kills=1,
        slack_outage_s=20.0,
        chfail_s=10.0,
        broker_after_s=15.0,
        broker_outage_s=8.0,
        queue_size=1_000,
        unreachable_s=5.0,
        seed=3,
        settle_timeout_s=240.0,
    )
    result = run(plan, tmp_path)
    table = result.table()
    print(table)
    assert not result.missed, table
    # the faults happened (preconditions of the figures above, not figures themselves)
    checks = {row.check: row.got for row in result.rows}
    assert checks["A: workers SIGKILLed and restarted"] == "1", table
