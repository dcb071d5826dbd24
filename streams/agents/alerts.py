"""Agent ``alerts``: alerts -> ClickHouse and the dispatcher (Slack, email, console, webhook).

The alerts topic is keyed by what must meet (a budget, a service), so grouping and inhibition
see every alert of a budget on one worker."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from schemas.alerts import Alert

if TYPE_CHECKING:
    from streams.app import Pipeline


async def deliver_alerts(pipeline: Pipeline, stream: Any) -> None:
    await pipeline.runtime.ready.wait()
    async for values in stream.take(500, within=0.05):
        alerts = [Alert.from_json(v) for v in values]
        await pipeline.runtime.handle_alerts(alerts, datetime.now(UTC))
