"""Timer ``publish-status``: budget status to the SDK guards (compacted topic, key = budget)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.app import Pipeline

# Every budget's status is republished at least this often, even when nothing changed, so a
# period rollover reaches the SDK guard and the SDK can tell a quiet worker from a dead one.
STATUS_HEARTBEAT = timedelta(seconds=10)


async def publish_status(pipeline: Pipeline) -> None:
    """Changed budgets every tick, every budget at least every ``STATUS_HEARTBEAT``. Only the
    owner publishes a budget (another worker's copy would be stale), and only once its ledger
    is seeded ("ok" from an empty ledger could unblock a guard)."""
    book = pipeline.book
    now = datetime.now(UTC)
    heartbeat = now - pipeline.last_heartbeat >= STATUS_HEARTBEAT
    if heartbeat:
        pipeline.last_heartbeat = now
    names = set(book.states) if heartbeat else book.dirty & set(book.states)
    book.dirty -= names
    for name in sorted(names & book.owned):
        status = book.status(name, now)
        await pipeline.status_topic.send(key=name.encode(), value=status.to_json())
