"""Alerting throughput: dispatcher policy path (memory log), durable path (fsync'd file
log), and rendering. Prints figures and the machine; not a test.

    .venv/bin/python bench/bench_alerting.py [--alerts 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from datetime import UTC, datetime, timedelta

from alerting.config import AlertingSettings
from alerting.delivery import AlertDispatcher
from alerting.deliverylog import FileDeliveryLog, MemoryDeliveryLog
from alerting.notification import Notification
from alerting.notifiers.email import build_message
from alerting.notifiers.recording import RecordingNotifier
from alerting.render.slack import render_notification
from schemas.alerts import Alert, Contributor, alert_id_for

T0 = datetime(2025, 3, 14, tzinfo=UTC)


def alerts(n: int) -> list[Alert]:
    out = []
    for i in range(n):
        budget = f"budget-{i % 200}"
        out.append(
            Alert(
                alert_id=alert_id_for("threshold", budget, "2025-03-14", i),
                kind="threshold",
                severity="critical",
                title=f"Budget {budget} reached 95%",
                summary="Spent $1.90 of $2.00.",
                fired_at=T0,
                labels={"budget": budget, "period": "2025-03-14", "threshold": str(i)},
                figures={"spent_usd": "1.90", "limit_usd": "2.00", "percent": "95"},
                contributors=(Contributor("service", "checkout", 1_200_000_000, "0.63"),),
            )
        )
    return out


async def run_dispatcher(items: list[Alert], log: object) -> tuple[float, int]:
    cfg = AlertingSettings.from_config(
        {
            "group_wait_s": 1,
            "group_interval_s": 5,
            "default_inhibit": False,
            "receivers": [{"name": "r", "type": "console"}],
        }
    )
    rec = RecordingNotifier("r")
    d = AlertDispatcher(cfg, {"r": rec}, log, None, None)  # type: ignore[arg-type]
    start = time.perf_counter()
    for a in items:
        await d.submit(a, T0)
    await d.tick(T0 + timedelta(seconds=2))
    elapsed = time.perf_counter() - start
    await d.close()
    return elapsed, len(rec.delivered_keys)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=2000)
    args = parser.parse_args()
    items = alerts(args.alerts)
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )

    elapsed, sent = asyncio.run(run_dispatcher(items, MemoryDeliveryLog()))
    print(
        f"memory log: {len(items)} alerts -> {sent} delivered in 200 groups: "
        f"{len(items) / elapsed:,.0f} alerts/s ({elapsed * 1e6 / len(items):.0f} µs/alert)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        n = min(len(items), 500)
        elapsed, sent = asyncio.run(run_dispatcher(items[:n], FileDeliveryLog(f"{tmp}/log.jsonl")))
        # one fsync per accepted alert + one per delivered notification (200 groups)
        fsyncs = n + 200
        print(
            f"file log (fsync): {n} alerts -> {sent} delivered: {n / elapsed:,.0f} alerts/s, "
            f"{elapsed * 1e3 / fsyncs:.2f} ms per fsync'd entry"
        )

    one = Notification("r", "g", T0, (items[0],))
    reps = 2000
    start = time.perf_counter()
    for _ in range(reps):
        render_notification(one)
    slack_us = (time.perf_counter() - start) * 1e6 / reps
    start = time.perf_counter()
    for _ in range(reps):
        build_message(one, "a@x.com", ("b@x.com",)).as_bytes()
    email_us = (time.perf_counter() - start) * 1e6 / reps
    print(f"render one alert: Slack blocks {slack_us:.0f} µs, MIME email {email_us:.0f} µs")


if __name__ == "__main__":
    main()
