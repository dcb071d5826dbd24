"""The console's SQL, built from an explicit ``now`` (pure). Every query selects integers and
strings only (money as ``cost_nusd``, times as epoch milliseconds), so the rows read the same
through a ClickHouse client and through the worker's ``POST /sql`` JSON.

Spend by service, provider and model, calls, errors, cache hits and avoided cost come from the
``spend_by_day`` / ``spend_by_minute`` rollups; anything by tag needs ``usage_events``. Days are
UTC days (the rollups' days). Read with ``final = 1`` (the read-only client), so the figures
are the deduplicated ones ``spendwatch sql`` shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from clickhouse_connect.driver.binding import format_query_value

from streams.digest import ch_time

MINUTES: int = 60  # the spend-per-minute chart covers the last hour
RECENT_ALERTS_H: int = 24
MAX_ALERTS: int = 50
MAX_DEADLETTERS: int = 20
MAX_TAG_VALUES: int = 20
# An alert's latest status; a firing and a resolved row recorded in the same millisecond
# count as resolved.
LATEST_STATUS = "argMax(status, (recorded_at, status = 'resolved'))"


@dataclass(frozen=True, slots=True)
class Window:
    """The bounds the console shows at ``now`` (all UTC)."""

    now: datetime
    day_start: datetime
    month_start: datetime
    first_minute: datetime  # start of the chart's first minute (MINUTES minutes incl. now's)

    @classmethod
    def at(cls, now: datetime) -> Window:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        now = now.astimezone(UTC)
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        minute = now.replace(second=0, microsecond=0)
        return cls(now, day, day.replace(day=1), minute - timedelta(minutes=MINUTES - 1))


def _date(ts: datetime) -> str:
    return f"toDate('{ts:%Y-%m-%d}')"


def spend_by_dimension(w: Window) -> str:
    """Per (is_today, service, provider, model) this month: cost, calls, errors, cache hits,
    avoided cost."""
    return (
        f"SELECT toUInt8(day = {_date(w.day_start)}) AS is_today, service, provider, model, "
        "toInt64(sum(cost_nusd)), toUInt64(sum(events)), toUInt64(sum(errors)), "
        "toUInt64(sum(cache_hits)), toInt64(sum(avoided_cost_nusd)) FROM spend_by_day "
        f"WHERE day >= {_date(w.month_start)} AND day <= {_date(w.day_start)} "
        "GROUP BY is_today, service, provider, model ORDER BY is_today, service, provider, model"
    )


def spend_per_minute(w: Window) -> str:
    """Per (minute as epoch seconds, service) over the chart's hour: cost."""
    return (
        "SELECT toInt64(toUnixTimestamp(minute)) AS m, service, toInt64(sum(cost_nusd)) "
        f"FROM spend_by_minute WHERE minute >= {ch_time(w.first_minute)} "
        f"AND minute <= {ch_time(w.now)} GROUP BY m, service ORDER BY m, service"
    )


def spend_by_tag(w: Window, tag: str) -> str:
    """Per (is_today, value of ``tag``) this month: cost, calls. Events without the tag have
    the value ''."""
    return (
        f"SELECT toUInt8(ts >= {ch_time(w.day_start)}) AS is_today, "
        f"tags[{format_query_value(tag)}] AS value, toInt64(sum(cost_nusd)), count() "
        f"FROM usage_events WHERE ts >= {ch_time(w.month_start)} "
        "GROUP BY is_today, value ORDER BY is_today, value"
    )


def tag_keys(w: Window) -> str:
    """The tag names seen this month (for the console's tag picker)."""
    return (
        "SELECT DISTINCT arrayJoin(mapKeys(tags)) AS k FROM usage_events "
        f"WHERE ts >= {ch_time(w.month_start)} ORDER BY k LIMIT 100"
    )


def cost_per_unit_tag(w: Window, unit_tags: tuple[str, ...], since: datetime) -> str:
    """Per unit tag, over events since ``since`` that carry it: distinct values, cost, calls."""
    return (
        "SELECT u, toUInt64(uniqExact(tags[u])), toInt64(sum(cost_nusd)), count() "
        f"FROM usage_events ARRAY JOIN {format_query_value(list(unit_tags))} AS u "
        f"WHERE ts >= {ch_time(since)} AND mapContains(tags, u) GROUP BY u ORDER BY u"
    )


def recent_alerts(w: Window) -> str:
    """Alerts recorded in the last ``RECENT_ALERTS_H`` hours, newest first, one row per alert
    with its latest status."""
    since = w.now - timedelta(hours=RECENT_ALERTS_H)
    return (
        "SELECT alert_id, any(kind), any(severity), "
        f"{LATEST_STATUS} AS st, "
        "argMax(title, recorded_at), toInt64(toUnixTimestamp64Milli(min(fired_at))), "
        "toInt64(toUnixTimestamp64Milli(max(recorded_at))) AS last "
        f"FROM alerts WHERE recorded_at >= {ch_time(since)} "
        f"GROUP BY alert_id ORDER BY last DESC, alert_id LIMIT {MAX_ALERTS}"
    )


def alert_counts(w: Window) -> str:
    """(open, resolved) among the alerts of the last ``RECENT_ALERTS_H`` hours."""
    since = w.now - timedelta(hours=RECENT_ALERTS_H)
    return (
        "SELECT countIf(st = 'firing'), countIf(st = 'resolved') FROM ("
        f"SELECT alert_id, {LATEST_STATUS} AS st FROM alerts "
        f"WHERE recorded_at >= {ch_time(since)} GROUP BY alert_id)"
    )


def recent_deadletters(w: Window) -> str:
    """The latest dead letters: received (epoch ms), topic, reason code, reason."""
    return (
        "SELECT toInt64(toUnixTimestamp64Milli(received_at)) AS at, topic, reason_code, reason "
        f"FROM deadletter ORDER BY at DESC, topic, offset DESC LIMIT {MAX_DEADLETTERS}"
    )


def deadletter_reasons(w: Window) -> str:
    """Dead letters received today, per reason code."""
    return (
        "SELECT reason_code, count() AS n FROM deadletter "
        f"WHERE received_at >= {ch_time(w.day_start)} GROUP BY reason_code ORDER BY n DESC, "
        "reason_code"
    )
