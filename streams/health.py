"""The pipeline's own health as alerts (failure protocol): a sink that keeps failing pages
someone, and the page resolves when the sink writes again."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from schemas.alerts import Alert, alert_id_for
from sinks.batching import SinkStats

SINK_FAILURES_TO_ALERT: Final = 3  # consecutive failed write attempts before paging


def sink_health_alert(
    sink: str,
    stats: SinkStats,
    episodes: dict[str, datetime],
    now: datetime,
    failing: bool,
) -> Alert | None:
    """The firing alert when ``sink`` starts failing, the resolved one when it recovers, else
    None. ``episodes`` (sink → episode start) is the caller's memory between calls; the alert
    id is derived from the sink and the episode start, so each outage pages once."""
    started = episodes.get(sink)
    if failing and started is None:
        episodes[sink] = now
        return _alert(sink, now, now, "firing", stats)
    if not failing and started is not None:
        del episodes[sink]
        return _alert(sink, started, now, "resolved", stats)
    return None


def _alert(sink: str, started: datetime, now: datetime, status: str, stats: SinkStats) -> Alert:
    return Alert(
        alert_id=alert_id_for("pipeline", "sink", sink, started.isoformat()),
        kind="pipeline",
        severity="critical",
        status="firing" if status == "firing" else "resolved",
        title=f"spendwatch cannot write to {sink}",
        summary=(
            f"{sink} has failed {stats.consecutive_failures} times in a row "
            f"({stats.last_error or 'no error text'}). Rows wait in the worker and offsets are "
            "not committed past them: nothing is lost, but ClickHouse falls behind."
            if status == "firing"
            else f"{sink} writes again; the rows that waited have been written."
        ),
        fired_at=now,
        labels={"component": "sink", "sink": sink},
        figures={
            "since": started.isoformat(),
            "pending_rows": str(stats.rows_added - stats.rows_written),
        },
    )
