"""The daily digest: when it is due (pure, explicit ``now``) and what it says (ClickHouse).

At ``alerting.digest_at`` local time (``alerting.digest_timezone``) the worker sends the
digest of the day that just ended: spend by service and by model, each budget's state and
the day's alerts. The dispatcher keeps it to once per receiver and day across restarts; an
empty day (no spend, no alerts) sends nothing.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from alerting.digest import BudgetLine, DigestAlert, DigestSummary, SpendLine


def digest_day_due(now: datetime, at: time, timezone: str, last_sent: date | None) -> date | None:
    """The day whose digest is due at ``now``, or None.

    Due once local time has passed ``at``: the previous local day, unless it is
    ``last_sent``.
    """
    local = now.astimezone(ZoneInfo(timezone))
    if local.time() < at:
        return None
    day = local.date() - timedelta(days=1)
    return None if day == last_sent else day


def day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    """Start and end of ``day`` in ``timezone``, as UTC datetimes (so that ``end - start`` is
    the real length: 23 or 25 hours on DST days)."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time(0), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    return start, end


def ch_time(ts: datetime) -> str:
    """A ClickHouse DateTime64(6, 'UTC') literal for an aware datetime (exact to the µs)."""
    return f"toDateTime64('{ts.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}', 6, 'UTC')"


def digest_queries(day: date, timezone: str) -> dict[str, str]:
    """The read-only queries behind one digest (ClickHouse SQL, bounds as UTC literals)."""
    start, end = day_bounds(day, timezone)
    usage = f"usage_events WHERE ts >= {ch_time(start)} AND ts < {ch_time(end)}"
    fired = f"alerts WHERE fired_at >= {ch_time(start)} AND fired_at < {ch_time(end)}"
    what = "if(model != '', model, concat(provider, ' ', unit))"
    return {
        "total": f"SELECT sum(cost_nusd), count() FROM {usage}",
        "by_service": (
            f"SELECT service, sum(cost_nusd) AS c, count() FROM {usage} "
            "GROUP BY service ORDER BY c DESC, service"
        ),
        "by_model": (
            f"SELECT {what} AS m, sum(cost_nusd) AS c, count() FROM {usage} "
            "GROUP BY m ORDER BY c DESC, m"
        ),
        "alerts": (
            f"SELECT severity, title, fired_at, status FROM {fired} "
            "AND kind != 'pipeline' ORDER BY fired_at, alert_id, status"
        ),
    }


def build_summary(
    client: Any, day: date, timezone: str, budgets: tuple[BudgetLine, ...]
) -> DigestSummary | None:
    """Query ClickHouse (blocking: run it in a thread) for ``day``; None when the day was
    empty (no spend and no alerts)."""
    queries = digest_queries(day, timezone)
    [(total, calls)] = client.query(queries["total"]).result_rows
    alerts = client.query(queries["alerts"]).result_rows
    if not calls and not alerts:
        return None
    return DigestSummary(
        day=day,
        timezone=timezone,
        total_cost_nusd=int(total or 0),
        by_service=tuple(
            SpendLine(str(n), int(c), int(r))
            for n, c, r in client.query(queries["by_service"]).result_rows
        ),
        by_model=tuple(
            SpendLine(str(n), int(c), int(r))
            for n, c, r in client.query(queries["by_model"]).result_rows
        ),
        budgets=budgets,
        alerts=tuple(DigestAlert(str(s), str(t), f, str(st)) for s, t, f, st in alerts),
    )
