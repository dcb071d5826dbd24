"""What the console shows, as one JSON-ready dict built from ClickHouse rows (blocking: run it
in a thread) plus the budget statuses followed from Kafka.

Every money figure travels twice: exact (``*_nusd`` integers, for machines and tests) and as
display text made here (``streams.report.figures``), so the browser only places text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from streams.console import queries as q
from streams.report.figures import per_unit, percent, usd
from streams.report.settings import ReportSettings

Rows = list[list[Any]]
Run = Callable[[str], Rows]
DIMENSIONS = ("service", "model", "provider")


def when(ms_or_dt: int | datetime | None) -> str | None:
    """``2026-12-02 14:03:07 UTC`` (seconds) from epoch ms or an aware datetime."""
    if ms_or_dt is None:
        return None
    ts = (
        ms_or_dt
        if isinstance(ms_or_dt, datetime)
        else datetime.fromtimestamp(int(ms_or_dt) / 1000, UTC)
    )
    return f"{ts.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def model_label(provider: str, model: str) -> str:
    """The model column's name for a row: the model, or ``twilio (metered)`` for calls that
    are not LLM calls."""
    return model or f"{provider or 'unknown'} (metered)"


@dataclass
class _Sum:
    cost_nusd: int = 0
    calls: int = 0
    errors: int = 0
    cache_hits: int = 0
    avoided_nusd: int = 0

    def add(self, cost: int, calls: int, errors: int, hits: int, avoided: int) -> None:
        self.cost_nusd += cost
        self.calls += calls
        self.errors += errors
        self.cache_hits += hits
        self.avoided_nusd += avoided


@dataclass
class _Scope:
    """today or this month."""

    total: _Sum = field(default_factory=_Sum)
    by: dict[str, dict[str, _Sum]] = field(
        default_factory=lambda: {d: {} for d in (*DIMENSIONS, "tag")}
    )

    def add(self, dim: str, key: str, *values: int) -> None:
        self.by[dim].setdefault(key, _Sum()).add(*values)


def spend_rows(sums: Mapping[str, _Sum], limit: int | None = None) -> list[dict[str, Any]]:
    """Rows sorted by cost (then name): name, cost, calls, cost per call."""
    ordered = sorted(sums.items(), key=lambda kv: (-kv[1].cost_nusd, kv[0]))
    if limit is not None:
        ordered = ordered[:limit]
    return [
        {
            "name": name,
            "cost_nusd": s.cost_nusd,
            "cost": usd(s.cost_nusd),
            "calls": s.calls,
            "per_call": per_unit(s.cost_nusd, s.calls),
        }
        for name, s in ordered
    ]


def build_figures(run: Run, now: datetime, tag: str, report: ReportSettings) -> dict[str, Any]:
    """Everything but the budgets, from ClickHouse at ``now``."""
    w = q.Window.at(now)
    scopes = {"today": _Scope(), "month": _Scope()}
    for is_today, service, provider, model, cost, calls, errors, hits, avoided in run(
        q.spend_by_dimension(w)
    ):
        values = (int(cost), int(calls), int(errors), int(hits), int(avoided))
        targets = [scopes["month"], scopes["today"]] if int(is_today) else [scopes["month"]]
        for scope in targets:
            scope.total.add(*values)
            scope.add("service", str(service), *values)
            scope.add("model", model_label(str(provider), str(model)), *values)
            scope.add("provider", str(provider) or "unknown", *values)
    for is_today, value, cost, calls in run(q.spend_by_tag(w, tag)):
        targets = [scopes["month"], scopes["today"]] if int(is_today) else [scopes["month"]]
        for scope in targets:
            scope.add("tag", str(value) or "(none)", int(cost), int(calls), 0, 0, 0)

    spend: dict[str, Any] = {}
    for name, scope in scopes.items():
        t = scope.total
        spend[name] = {
            "total_nusd": t.cost_nusd,
            "total": usd(t.cost_nusd),
            "calls": t.calls,
            "per_call": per_unit(t.cost_nusd, t.calls),
            **{dim: spend_rows(scope.by[dim]) for dim in (*DIMENSIONS,)},
            "tag": spend_rows(scope.by["tag"], q.MAX_TAG_VALUES),
        }

    today = scopes["today"]
    cache = {
        "calls": today.total.calls,
        "hits": today.total.cache_hits,
        "hit_rate": percent(today.total.cache_hits, today.total.calls),
        "avoided_nusd": today.total.avoided_nusd,
        "avoided": usd(today.total.avoided_nusd),
        "by_service": [
            {
                "name": name,
                "calls": s.calls,
                "hits": s.cache_hits,
                "hit_rate": percent(s.cache_hits, s.calls),
                "avoided_nusd": s.avoided_nusd,
                "avoided": usd(s.avoided_nusd),
            }
            for name, s in sorted(today.by["service"].items())
            if s.cache_hits or s.avoided_nusd
        ],
    }
    errors = [
        {
            "name": name,
            "calls": s.calls,
            "errors": s.errors,
            "error_rate": percent(s.errors, s.calls),
        }
        for name, s in sorted(today.by["provider"].items(), key=lambda kv: (-kv[1].errors, kv[0]))
    ]

    units: list[dict[str, Any]] = [
        _unit("call", "calls", scopes["today"].total, scopes["month"].total)
    ]
    if report.unit_tags:
        month_rows = {r[0]: r for r in run(q.cost_per_unit_tag(w, report.unit_tags, w.month_start))}
        day_rows = {r[0]: r for r in run(q.cost_per_unit_tag(w, report.unit_tags, w.day_start))}
        for unit in report.unit_tags:
            units.append(_unit_tag(unit, day_rows.get(unit), month_rows.get(unit)))

    first = int(w.first_minute.timestamp())
    minutes = [first + 60 * i for i in range(q.MINUTES)]
    series: dict[str, list[int]] = {}
    for minute, service, cost in run(q.spend_per_minute(w)):
        index = (int(minute) - first) // 60
        if 0 <= index < q.MINUTES:
            series.setdefault(str(service), [0] * q.MINUTES)[index] += int(cost)

    alert_rows = run(q.recent_alerts(w))
    [(open_n, resolved_n)] = run(q.alert_counts(w)) or [[0, 0]]
    alerts = [
        {
            "id": str(aid),
            "kind": str(kind),
            "severity": str(sev),
            "status": str(status),
            "title": str(title),
            "fired_at": when(int(fired)),
            "updated_at": when(int(last)),
        }
        for aid, kind, sev, status, title, fired, last in alert_rows
    ]
    letters = [
        {"received_at": when(int(at)), "topic": str(topic), "code": str(code), "reason": str(r)}
        for at, topic, code, r in run(q.recent_deadletters(w))
    ]
    reasons = [{"code": str(c), "count": int(n)} for c, n in run(q.deadletter_reasons(w))]
    return {
        "generated_at": when(w.now),
        "day": f"{w.day_start:%Y-%m-%d}",
        "month": f"{w.month_start:%Y-%m}",
        "tag": tag,
        "tags": sorted({str(k) for (k,) in run(q.tag_keys(w))} | {tag}),
        "spend": spend,
        "cache": cache,
        "errors": errors,
        "units": units,
        "minutes": {"start": first, "t": minutes, "series": series},
        "alerts": {
            "open": [a for a in alerts if a["status"] == "firing"],
            "recent": alerts,
            "open_count": int(open_n),
            "resolved_count": int(resolved_n),
        },
        "deadletters": {
            "recent": letters,
            "today": reasons,
            "today_count": sum(r["count"] for r in reasons),
        },
    }


def _unit(name: str, plural: str, today: _Sum, month: _Sum) -> dict[str, Any]:
    return {
        "unit": name,
        "today": {
            "units": today.calls,
            "cost_nusd": today.cost_nusd,
            "per_unit": per_unit(today.cost_nusd, today.calls),
        },
        "month": {
            "units": month.calls,
            "cost_nusd": month.cost_nusd,
            "per_unit": per_unit(month.cost_nusd, month.calls),
        },
    }


def _unit_tag(unit: str, day: list[Any] | None, month: list[Any] | None) -> dict[str, Any]:
    def part(row: list[Any] | None) -> dict[str, Any]:
        units, cost = (int(row[1]), int(row[2])) if row else (0, 0)
        return {"units": units, "cost_nusd": cost, "per_unit": per_unit(cost, units)}

    return {"unit": unit, "today": part(day), "month": part(month)}


def budget_rows(statuses: Iterable[Any], now: datetime) -> list[dict[str, Any]]:
    """The budgets as the worker last published them (``spendwatch.status.BudgetStatus`` or
    ``schemas.budget_status.BudgetStatus``), by name. A status whose period ended is shown as
    the new, empty period would be: spent unknown until the worker publishes it."""
    out = []
    for s in sorted(statuses, key=lambda s: s.budget):
        stale = now >= s.reset_at
        limit = int(s.limit_nusd)
        spent = int(s.spent_nusd)
        fraction = Decimal(spent) / limit if limit > 0 else Decimal(0)
        out.append(
            {
                "name": s.budget,
                "spent_nusd": spent,
                "limit_nusd": limit,
                "spent": usd(spent),
                "limit": usd(limit),
                "percent": percent(spent, limit, floor=True),
                "bar_percent": float(min(fraction * 100, Decimal(100))),
                "state": s.state,
                "stale": stale,
                "runout_at": when(s.projected_runout_at),
                "reset_at": when(s.reset_at),
                "override_until": when(s.override_until),
                "updated_at": when(s.updated_at),
            }
        )
    return out
