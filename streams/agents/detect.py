"""The detector's clock: warm start from ClickHouse, and the idle tick."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from streams.detect.history import read_history, read_open_alerts

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger("spendwatch.detect")

WARM_START_WAIT_S = 30.0  # the detector waits this long for ClickHouse, then starts cold


async def warm_start(pipeline: Pipeline) -> None:
    """Load the detector's history (minute rollups) and its open alerts from ClickHouse, so
    a restarted worker keeps its baselines; ClickHouse unreachable: start cold."""
    s = pipeline.settings.detect
    if not (s.enabled and s.warm_start):
        return
    started = time.monotonic()
    try:
        await asyncio.wait_for(pipeline.runtime.ready.wait(), WARM_START_WAIT_S)
        now = datetime.now(UTC)
        client = pipeline.runtime.query_client
        history, open_alerts = await asyncio.wait_for(
            asyncio.gather(
                asyncio.to_thread(read_history, client.query_np, s, now),
                asyncio.to_thread(
                    read_open_alerts, lambda sql: client.query(sql).result_rows, s, now
                ),
            ),
            WARM_START_WAIT_S,
        )
    except Exception:  # a detector without history beats one that waits for ClickHouse
        log.exception("detector starts cold: cannot read its history from ClickHouse")
        return
    pipeline.detector.load_history(history, now, open_alerts)
    log.info(
        "detector history: %d minutes of %d services and %d open alerts in %.1f s",
        sum(len(b) for b in history.values()),
        len(history),
        len(open_alerts),
        time.monotonic() - started,
    )


async def tick(pipeline: Pipeline) -> None:
    """Close minutes of an idle stream, notice silent services."""
    for alert in pipeline.detector.tick(datetime.now(UTC)):
        await pipeline.send_alert(alert)
