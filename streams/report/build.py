"""Build a :class:`~streams.report.model.Report` from ClickHouse (blocking; run in a thread).

``run(sql)`` returns rows of integers and strings: a ClickHouse client's ``result_rows`` or the
worker's ``POST /sql`` answer (``spendwatch report`` uses whichever answers, as
``spendwatch sql`` does). Every query reads ``usage_events`` (exact, one row per event with
``final``) between explicit UTC bounds; buckets are local to the report's time zone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from clickhouse_connect.driver.binding import format_query_value

from streams.console.snapshot import model_label
from streams.digest import ch_time
from streams.report.model import BudgetUse, Line, Mover, Report, UnitCost
from streams.report.periods import ReportSpan, Span
from streams.report.settings import ReportSettings

Run = Callable[[str], list[list[Any]]]
TOP_MOVERS: Final = 5
MAX_LINES: Final = 15


def _where(span: Span) -> str:
    return f"ts >= {ch_time(span.start)} AND ts < {ch_time(span.end)}"


def dimension_query(span: Span) -> str:
    """Per (service, provider, model): cost, calls, cache hits, avoided cost."""
    return (
        "SELECT service, provider, model, toInt64(sum(cost_nusd)), count(), countIf(cache_hit), "
        f"toInt64(sum(avoided_cost_nusd)) FROM usage_events WHERE {_where(span)} "
        "GROUP BY service, provider, model ORDER BY service, provider, model"
    )


def tag_query(span: Span, tag: str) -> str:
    return (
        f"SELECT tags[{format_query_value(tag)}] AS v, toInt64(sum(cost_nusd)), count() "
        f"FROM usage_events WHERE {_where(span)} GROUP BY v ORDER BY v"
    )


def unit_query(span: Span, unit_tags: tuple[str, ...]) -> str:
    return (
        "SELECT u, toUInt64(uniqExact(tags[u])), toInt64(sum(cost_nusd)) FROM usage_events "
        f"ARRAY JOIN {format_query_value(list(unit_tags))} AS u "
        f"WHERE {_where(span)} AND mapContains(tags, u) GROUP BY u ORDER BY u"
    )


def series_query(span: Span, timezone: str, bucket: str) -> str:
    fn = "toStartOfHour" if bucket == "hour" else "toStartOfDay"
    return (
        f"SELECT toString({fn}(ts, {format_query_value(timezone)})) AS b, service, "
        f"toInt64(sum(cost_nusd)) FROM usage_events WHERE {_where(span)} "
        "GROUP BY b, service ORDER BY b, service"
    )


def budget_spend_query(start: datetime, end: datetime, scope: str) -> str:
    """A budget's spend in its period: one row, whatever the number of distinct tag values
    (``scope``: the budget's match as SQL, ``streams.budgets.stored.literal_scope_sql``)."""
    return (
        "SELECT toInt64(sum(cost_nusd)) "
        f"FROM usage_events WHERE ts >= {ch_time(start)} AND ts < {ch_time(end)} AND ({scope})"
    )


def threshold_alerts_query(span: Span) -> str:
    return (
        "SELECT labels['budget'] AS b, toUInt64(uniqExact(alert_id)) FROM alerts "
        f"WHERE kind = 'threshold' AND fired_at >= {ch_time(span.start)} "
        f"AND fired_at < {ch_time(span.end)} GROUP BY b ORDER BY b"
    )


def _lines(
    now: Mapping[str, tuple[int, int]], before: Mapping[str, tuple[int, int]], limit: int | None
) -> tuple[Line, ...]:
    names = set(now) | set(before)
    lines = [Line(n, *now.get(n, (0, 0)), *before.get(n, (0, 0))) for n in names]
    lines.sort(key=lambda line: (-line.cost_nusd, -line.previous_nusd, line.name))
    return tuple(lines[:limit] if limit is not None else lines)


def _add(into: dict[str, tuple[int, int]], key: str, cost: int, calls: int) -> None:
    c, n = into.get(key, (0, 0))
    into[key] = (c + cost, n + calls)


class _Side:
    """The figures of one span."""

    def __init__(self, run: Run, span: Span, report: ReportSettings) -> None:
        self.total = (0, 0)
        self.service: dict[str, tuple[int, int]] = {}
        self.model: dict[str, tuple[int, int]] = {}
        self.tier: dict[str, tuple[int, int]] = {}
        self.hits = 0
        self.avoided = 0
        for service, provider, model, cost, calls, hits, avoided in run(dimension_query(span)):
            cost, calls = int(cost), int(calls)
            self.total = (self.total[0] + cost, self.total[1] + calls)
            _add(self.service, str(service), cost, calls)
            _add(self.model, model_label(str(provider), str(model)), cost, calls)
            _add(self.tier, report.tier_of(str(model)), cost, calls)
            self.hits += int(hits)
            self.avoided += int(avoided)
        self.tag: dict[str, tuple[int, int]] = {}
        for value, cost, calls in run(tag_query(span, report.tag)):
            _add(self.tag, str(value) or "(none)", int(cost), int(calls))
        self.units: dict[str, tuple[int, int]] = {}
        if report.unit_tags:
            for unit, units, cost in run(unit_query(span, report.unit_tags)):
                self.units[str(unit)] = (int(units), int(cost))


def build_report(
    run: Run,
    span: ReportSpan,
    report: ReportSettings,
    budgets: Iterable[Any] = (),
) -> Report:
    """The report of ``span`` (see the module docstring). ``budgets`` are the configured
    :class:`~streams.budgets.Budget` objects; each is shown in its period containing the end
    of the span."""
    now, before = _Side(run, span.current, report), _Side(run, span.previous, report)
    by_service = _lines(now.service, before.service, None)
    by_model = _lines(now.model, before.model, None)
    movers = sorted(
        [Mover("service", line) for line in by_service] + [Mover("model", m) for m in by_model],
        key=lambda m: (-abs(m.line.delta_nusd), m.dimension, m.line.name),
    )
    tier_order = {name: i for i, name in enumerate(report.tier_names)}
    tiers = tuple(
        sorted(
            _lines(now.tier, before.tier, None),
            key=lambda line: tier_order.get(line.name, len(tier_order)),
        )
    )
    units = [UnitCost("call", now.total[1], now.total[0], before.total[1], before.total[0])]
    for unit in report.unit_tags:
        u, c = now.units.get(unit, (0, 0))
        pu, pc = before.units.get(unit, (0, 0))
        units.append(UnitCost(unit, u, c, pu, pc))

    bucket = "hour" if span.period == "day" else "day"
    buckets: dict[str, dict[str, int]] = {}
    for label, service, cost in run(series_query(span.current, span.timezone, bucket)):
        buckets.setdefault(str(label), {})[str(service)] = int(cost)
    series = tuple(
        (label, tuple(sorted(buckets.get(label, {}).items())))
        for label in bucket_labels(span.current, span.timezone, bucket)
    )
    return Report(
        span=span,
        tag=report.tag,
        total=Line("total", *now.total, *before.total),
        by_service=by_service,
        by_model=by_model,
        by_tag=_lines(now.tag, before.tag, MAX_LINES),
        movers=tuple(m for m in movers[:TOP_MOVERS] if m.line.delta_nusd),
        budgets=_budget_use(run, span, budgets),
        cache_hits=now.hits,
        avoided_nusd=now.avoided,
        previous_cache_hits=before.hits,
        previous_avoided_nusd=before.avoided,
        tiers=tiers,
        units=tuple(units),
        series=series,
        bucket=bucket,
    )


def bucket_labels(span: Span, timezone: str, bucket: str) -> list[str]:
    """Every bucket of ``span`` in local time (``YYYY-MM-DD HH:00:00`` hours or
    ``YYYY-MM-DD 00:00:00`` days, as ClickHouse's ``toString`` writes them), empty ones too."""
    zone = ZoneInfo(timezone)
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    local = span.start.astimezone(zone)
    out: list[str] = []
    while local.astimezone(UTC) < span.end:
        out.append(
            f"{local:%Y-%m-%d %H}:00:00" if bucket == "hour" else f"{local:%Y-%m-%d} 00:00:00"
        )
        # step in local wall time, then normalise (DST days are 23 or 25 hours long)
        nxt = (local.replace(tzinfo=None) + step).replace(tzinfo=zone)
        local = datetime.fromtimestamp(nxt.timestamp(), zone)
    return out


def _budget_use(run: Run, span: ReportSpan, budgets: Iterable[Any]) -> tuple[BudgetUse, ...]:
    from streams.budgets import period_bounds
    from streams.budgets.stored import literal_scope_sql

    alerts = {str(b): int(n) for b, n in run(threshold_alerts_query(span.current))}
    at = span.current.end - timedelta(microseconds=1)
    out = []
    for budget in sorted(budgets, key=lambda b: b.name):
        start, end = period_bounds(budget, at)
        # Summed in ClickHouse: a GROUP BY of (service, provider, model, tags) brought one
        # row per distinct tag set into Python (a million dicts for a million tag values).
        [[spent]] = run(budget_spend_query(start, end, literal_scope_sql(budget.match)))
        spent = int(spent or 0)
        label = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
        out.append(
            BudgetUse(budget.name, label, spent, budget.limit_nusd, alerts.get(budget.name, 0))
        )
    return tuple(out)
