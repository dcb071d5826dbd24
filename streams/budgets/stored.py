"""What ClickHouse holds about a budget: the snapshot a ledger starts from.

A worker that takes over a budget (start-up, restart, rebalance) seeds its ledger from the
rows already stored, in one query that also returns, per usage partition, the last offset
those rows include: the ledger then counts only delta events past those offsets, so every
stored event is counted exactly once (docs/exactly-once.md). Everything here is blocking
(run it in a thread) and binds every value with clickhouse-connect: no SQL is built from data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from schemas.money import usd_to_nusd
from streams.budgets.ledger import MAX_NAMES_PER_DIMENSION, MAX_TAG_KEYS, OTHER, LedgerState
from streams.budgets.model import Budget, Match

Params = dict[str, Any]
_PLACEHOLDER: Final = re.compile(r"\{(\w+):[^{}]+\}")


def _patterns(column: str, patterns: tuple[str, ...], name: str, params: Params) -> str:
    """SQL for "``column`` equals one pattern or starts with a ``prefix*`` one" (the Python
    rule of ``streams.budgets.model``), the column being present (non-empty)."""
    exact = [p for p in patterns if not p.endswith("*")]
    prefixes = [p[:-1] for p in patterns if p.endswith("*")]
    parts = []
    if exact:
        params[f"{name}_in"] = exact
        parts.append(f"{column} IN {{{name}_in:Array(String)}}")
    for i, prefix in enumerate(prefixes):
        params[f"{name}_p{i}"] = prefix
        parts.append(f"startsWith({column}, {{{name}_p{i}:String}})")
    return f"({column} != '' AND ({' OR '.join(parts)}))"


def literal_scope_sql(match: Match) -> str:
    """:func:`scope_sql` with its values written in as SQL literals, for callers that run
    plain SQL text (the reports)."""
    from clickhouse_connect.driver.binding import format_query_value

    params: Params = {}
    sql = scope_sql(match, params)
    return _PLACEHOLDER.sub(lambda m: format_query_value(params[m.group(1)]), sql)


def scope_sql(match: Match, params: Params) -> str:
    """A ``WHERE`` condition over ``usage_events`` equal to ``match.matches`` (binds into
    ``params``); ``1`` for a budget over everything."""
    parts = []
    for column, patterns in (
        ("service", match.services),
        ("provider", match.providers),
        ("model", match.models),
    ):
        if patterns:
            parts.append(_patterns(column, patterns, column, params))
    for i, (key, pattern) in enumerate(match.tags):
        params[f"tag{i}_key"] = key
        value = f"tags[{{tag{i}_key:String}}]"
        condition = _patterns(value, (pattern,), f"tag{i}", params)
        parts.append(f"(mapContains(tags, {{tag{i}_key:String}}) AND {condition})")
    return " AND ".join(parts) or "1"


@dataclass(slots=True)
class StoredSpend:
    """A budget's period in ClickHouse: spend, events, and the source offsets they include."""

    spent_nusd: int = 0
    events: int = 0
    positions: dict[str, int] = field(default_factory=dict)
    tallies: dict[str, dict[str, int]] = field(default_factory=dict)
    burn: list[list[int]] = field(default_factory=list)


def stored_spend(
    client: Any,
    budget: Budget,
    start: datetime,
    end: datetime,
    *,
    burn_since: datetime | None = None,
) -> StoredSpend:
    """Spend of ``budget``'s scope with stored ``ts`` in ``[start, end)`` (FINAL: each event
    once), with ``positions`` = the last offset per ``epoch:partition`` among those rows, read
    in the same query (one snapshot). Then, in their own queries, the top contributors per
    dimension (the rest of each dimension's spend under ``(other)``) and per-minute spend
    since ``burn_since`` (forecast samples)."""
    params: Params = {"start": start, "end": end}
    where = (
        "ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')} "
        f"AND ({scope_sql(budget.match, params)})"
    )
    result = StoredSpend()
    rows = client.query(
        "SELECT kafka_epoch, kafka_partition, sum(cost_nusd), count(), max(kafka_offset) "
        f"FROM usage_events FINAL WHERE {where} GROUP BY kafka_epoch, kafka_partition",
        parameters=params,
    ).result_rows
    for epoch, partition, cost, events, offset in rows:
        result.spent_nusd += int(cost)
        result.events += int(events)
        if epoch:
            result.positions[f"{epoch}:{partition}"] = int(offset)
    if not result.events:
        return result
    dimensions = ["service", "provider", "model"]
    for dimension in dimensions:
        for name, cost in client.query(
            f"SELECT {dimension}, sum(cost_nusd) AS c FROM usage_events FINAL WHERE {where} "
            f"AND {dimension} != '' GROUP BY {dimension} HAVING c > 0 ORDER BY c DESC "
            f"LIMIT {MAX_NAMES_PER_DIMENSION}",
            parameters=params,
        ).result_rows:
            result.tallies.setdefault(dimension, {})[str(name)] = int(cost)
    for key, name, cost in client.query(
        "SELECT k, v, c FROM (SELECT k, v, sum(cost_nusd) AS c, "
        "row_number() OVER (PARTITION BY k ORDER BY c DESC) AS r "
        f"FROM usage_events FINAL ARRAY JOIN mapKeys(tags) AS k, mapValues(tags) AS v "
        f"WHERE {where} GROUP BY k, v HAVING c > 0) WHERE r <= {MAX_NAMES_PER_DIMENSION} "
        "ORDER BY k, c DESC",
        parameters=params,
    ).result_rows:
        tally = result.tallies.get(f"tag:{key}")
        if tally is None:
            if sum(1 for d in result.tallies if d.startswith("tag:")) >= MAX_TAG_KEYS:
                continue
            tally = result.tallies[f"tag:{key}"] = {}
        tally[str(name)] = int(cost)
    _add_others(client, result, where, params)
    if burn_since is not None:
        params["since"] = max(burn_since, start)
        result.burn = [
            [int(minute), int(cost)]
            for minute, cost in client.query(
                "SELECT intDiv(toUnixTimestamp(ts), 60) AS m, sum(cost_nusd) AS c "
                f"FROM usage_events FINAL WHERE {where} AND ts >= "
                "{since:DateTime64(6, 'UTC')} GROUP BY m HAVING c > 0 ORDER BY m",
                parameters=params,
            ).result_rows
        ]
    return result


def announced_thresholds(client: Any, budget: str, since: datetime) -> set[str]:
    """Threshold keys (``"0.5"``, ``"1"``) of ``budget`` alerted at or after ``since`` (the
    period start): the ``alerts`` table holds every alert the worker emitted. Keyed by the
    threshold rather than the alert id, so a budget redefined in the config (another period
    start) does not announce again what it announced today."""
    rows = client.query(
        "SELECT DISTINCT labels['threshold'] FROM alerts WHERE kind = 'threshold' AND "
        "labels['budget'] = {budget:String} AND fired_at >= {since:DateTime64(3, 'UTC')}",
        parameters={"budget": budget, "since": since},
    ).result_rows
    return {str(r[0]) for r in rows}


@dataclass(frozen=True, slots=True)
class StoredOverride:
    limit_nusd: int
    until: datetime
    reason: str
    by: str


def latest_override(client: Any, budget: str, now: datetime) -> StoredOverride | None:
    """The override of ``budget`` still in force at ``now``, from its last ``override`` alert."""
    rows = client.query(
        "SELECT figures['limit_usd'], figures['override_until'], figures['reason'], "
        "figures['by'] FROM alerts FINAL WHERE kind = 'override' AND labels['budget'] = "
        "{budget:String} ORDER BY fired_at DESC LIMIT 1",
        parameters={"budget": budget},
    ).result_rows
    if not rows:
        return None
    limit_usd, until_text, reason, by = rows[0]
    try:
        until = datetime.fromisoformat(str(until_text)).astimezone(UTC)
        limit_nusd = usd_to_nusd(str(limit_usd))
    except (ValueError, ArithmeticError):
        return None
    if until <= now or limit_nusd <= 0:
        return None
    return StoredOverride(limit_nusd, until, str(reason), str(by))


def _add_others(client: Any, result: StoredSpend, where: str, params: Params) -> None:
    """Put what the top names leave of each dimension's spend under ``(other)``, as the
    ledger does for names past the first :data:`MAX_NAMES_PER_DIMENSION`: a seeded ledger's
    tallies then add up to its spend, to the nano-dollar, however many distinct values the
    stored rows have (a client sending a new tag value per event)."""
    totals = {"service": result.spent_nusd}
    [row] = client.query(
        "SELECT sumIf(cost_nusd, provider != ''), sumIf(cost_nusd, model != '') "
        f"FROM usage_events FINAL WHERE {where}",
        parameters=params,
    ).result_rows
    totals.update(zip(("provider", "model"), map(int, row), strict=True))
    for key, cost in client.query(
        f"SELECT k, sum(cost_nusd) FROM usage_events FINAL ARRAY JOIN mapKeys(tags) AS k "
        f"WHERE {where} GROUP BY k",
        parameters=params,
    ).result_rows:
        totals[f"tag:{key}"] = int(cost)
    for dimension, names in result.tallies.items():
        # Rows stored after the first query are not in spent_nusd (their deltas count them).
        total = min(totals.get(dimension, 0), result.spent_nusd)
        rest = total - sum(names.values())
        if rest > 0:
            names[OTHER] = names.get(OTHER, 0) + rest


def seeded_state(
    budget: Budget, stored: StoredSpend, start: datetime, end: datetime
) -> LedgerState:
    """A ledger for ``[start, end)`` holding ``stored`` (no thresholds marked yet)."""
    state = LedgerState(budget=budget.name, period_start=start, period_end=end)
    state.spent_nusd = stored.spent_nusd
    state.events = stored.events
    state.positions = dict(stored.positions)
    state.tallies = {d: dict(n) for d, n in stored.tallies.items()}
    state.burn = [list(s) for s in stored.burn]
    return state
