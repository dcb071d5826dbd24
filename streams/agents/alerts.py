"""Agent ``alerts``: alerts -> ClickHouse and the dispatcher (Slack, email, console, webhook).

The alerts topic is keyed by what must meet (a budget, a service), so grouping and inhibition
see every alert of a budget on one worker."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from schemas.alerts import Alert

if TYPE_CHECKING:
    from streams.app import Pipeline

# Faust's ``take`` hands over its buffer on a timer of this period, whenever an alert came in
# during it: an alert waits up to this long before it is stored and sent (0.05 s cost the
# budget-crossing -> Slack path ~25 ms on average at 5,000 events/s; bench/RESULTS.md).
TAKE_WITHIN_S = 0.01


async def deliver_alerts(pipeline: Pipeline, stream: Any) -> None:
    await pipeline.runtime.ready.wait()
    async for values in stream.take(500, within=TAKE_WITHIN_S):
        alerts = [Alert.from_json(v) for v in values]
        await pipeline.runtime.handle_alerts(alerts, datetime.now(UTC))
