"""The short chaos run (``bench/chaos.py`` with a small plan): two workers sharing one
ClickHouse, 20,000 events (1 % sent twice), one SIGKILL, one Slack outage (500 then 429 with
Retry-After), one ClickHouse write outage, one broker restart, one unreachable-broker window
for an instrumented app. ``make chaos`` runs the long version (200,000 events, five kills,
longer outages) and records its table in bench/RESULTS.md.

Every row of the table must be exact except the ones below, which are shown in the table but
not asserted:

* the p99 comparison (phase C): a timing, which belongs in the benchmark, not in a test.

What the embedded broker (Tansu 0.6, memory storage) loses after a restart, which spendwatch
cannot prevent (it acknowledges produce requests for a topic it no longer has and drops them,
and answers some with UnknownError), is shown in the table as measured, not checked; the
checks are what is promised (README, "Known limits"): the SDK's drops and refusals are counted,
and what ClickHouse lacks is exactly those plus what Tansu lost.

The phase-B ledgers are asserted: after the restart every budget ledger equals the ClickHouse
``FINAL`` sum of its scope to the nano-dollar, without restarting the workers
(docs/exactly-once.md, "A restarted broker").
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import Plan, run

pytestmark = pytest.mark.integration

NOT_ASSERTED = ("C: p99 added by",)  # timing: measured in bench/, never asserted in a test


def test_short_chaos_run_loses_and_repeats_nothing(tmp_path: Path) -> None:
    plan = Plan(
        events=20_000,
        rate=500.0,
        kills=1,
        slack_outage_s=20.0,
        chfail_s=10.0,
        broker_outage_s=8.0,
        broker_after_s=15.0,
        queue_size=1_000,
        unreachable_s=5.0,
        seed=3,
        settle_timeout_s=240.0,
    )
    result = run(plan, tmp_path)
    table = result.table()
    print(table)
    missed = [r.check for r in result.missed if not r.check.startswith(NOT_ASSERTED)]
    assert not missed, table
    checks = {row.check: row for row in result.rows}
    # the faults happened: one kill, Slack answered errors, the ClickHouse outage was sampled
    assert checks["A: workers SIGKILLed and restarted"].got == "1", table
    assert checks["A: Slack answers 500 / 429 during its outage"].got != "0 / 0", table
    assert any(c.startswith("A: commits past the stored rows") for c in checks), table
    ledgers = checks["B: budget ledgers = ClickHouse FINAL sums after the restart"]
    assert ledgers.ok, table
