"""Counting spend against a budget: ``apply_spend`` and the alerts it raises.

Pure: the caller passes the event, its cost and its timestamp; nothing reads the clock. Every
alert id is derived from what identifies the alert, so replaying the same events in the same
order yields the same alerts with the same ids:

- threshold: ``alert_id_for("threshold", budget.name, period_start.isoformat(), threshold_key)``
  where ``threshold_key`` is the fraction's canonical text (``"0.5"``, ``"0.95"``, ``"1"``) and
  ``period_start`` is the UTC start of the period. While an operator override is in force the
  effective limit (nano-USD) is appended as a fifth part: a threshold can fire once per
  (budget, period, threshold, effective limit).
- forecast: ``alert_id_for("forecast", budget.name, period_start_iso)`` (+ the limit under an
  override), at most once per period; checked at the first event of each UTC minute and at
  every threshold crossing.
- per_request: ``alert_id_for("per_request", budget.name, event_id)``.
- quota: ``alert_id_for("quota", budget.name, quota_name, window_start_iso)``, once per window
  (the UTC minute for ``*_per_minute``, the budget's local day for ``*_per_day``).

Policy (grouping, inhibition, repeats) is the alerting package's job; here every crossed
threshold is emitted, several at once when one event jumps them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.alerts import Alert, Severity, alert_id_for
from schemas.money import format_usd as money
from schemas.money import usd_text
from streams.budgets.delta import BudgetDelta
from streams.budgets.forecast import BurnRate, burn_rate, record_burn_minute, unix_minute
from streams.budgets.ledger import LedgerState, new_state
from streams.budgets.model import Budget, Threshold
from streams.budgets.periods import bounds_for, period_bounds
from streams.budgets.render import local_text, percent_text, usage_analysis

_QUOTA_NAMES = ("requests_per_minute", "tokens_per_minute", "requests_per_day", "tokens_per_day")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_US_PER_MINUTE = 60_000_000
_NEVER = 2**127


def current_state(budget: Budget, state: LedgerState | None, ts: datetime) -> LedgerState:
    """The ledger for the period containing ``ts``: ``state`` itself, or a new one at rollover.

    A rollover starts from zero spend and no fired thresholds, and carries what outlives a
    period: burn samples (a rate is a rate), quota counters and an active override. A ``ts``
    before ``state.period_start`` (a late event) returns ``state`` unchanged.
    """
    ts = ts.astimezone(UTC)
    if state is not None and ts < state.period_end:
        return state
    start, end = period_bounds(budget, ts)
    fresh = new_state(budget.name, start, end)
    if state is None:
        return fresh
    fresh.observed_since = state.observed_since
    fresh.burn = state.burn
    fresh.quota_minute = state.quota_minute
    fresh.minute_requests = state.minute_requests
    fresh.minute_tokens = state.minute_tokens
    fresh.quota_day_start = state.quota_day_start
    fresh.quota_day_end = state.quota_day_end
    fresh.day_requests = state.day_requests
    fresh.day_tokens = state.day_tokens
    fresh.quota_fired = state.quota_fired
    if state.override_until is not None and state.override_until > ts:
        fresh.override_limit_nusd = state.override_limit_nusd
        fresh.override_until = state.override_until
        fresh.override_reason = state.override_reason
        fresh.override_by = state.override_by
    return fresh


def threshold_key(threshold: Threshold, limit_nusd: int) -> str:
    """What ``LedgerState.fired`` remembers: the threshold at a given effective limit."""
    return f"{threshold.key}@{limit_nusd}"


def threshold_alert_id(
    budget: Budget, period_start: datetime, threshold: Threshold, limit_nusd: int
) -> str:
    """The deterministic id of a threshold alert (see the module docstring)."""
    parts: list[object] = ["threshold", budget.name, period_start.isoformat(), threshold.key]
    if limit_nusd != budget.limit_nusd:
        parts.append(limit_nusd)
    return alert_id_for(*parts)


def _event_tokens(event: dict[str, Any]) -> int:
    # input_tokens includes cached tokens and output_tokens includes reasoning tokens (v1).
    total = 0
    for key in ("input_tokens", "output_tokens"):
        value = event.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            total += value
    return total


def _us(ts: datetime) -> int:
    return (ts - _EPOCH) // _MICRO


def _at(ts_us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ts_us)


def apply_delta(
    budget: Budget, state: LedgerState | None, delta: BudgetDelta
) -> tuple[LedgerState, list[Alert]]:
    """Count one :class:`BudgetDelta` (the budget's events of one hot-path batch).

    Each event is counted at most once per source position: events whose offset is not past
    ``state.positions`` for their ``epoch:partition`` are skipped, so a delta sent twice, or
    one whose rows were already in the ClickHouse snapshot the ledger was seeded from, adds
    nothing. The delta's contributors are added before its events are counted, so an alert
    it raises lists them. Returns the ledger (updated in place, or a new one after a period
    rollover: keep the returned object) and the alerts due, in event order.
    """
    positions = state.positions if state is not None else {}
    prefix = delta.epoch + ":"
    events: list[tuple[int, int, int]] = []
    floors: dict[int, int] = {}  # partition -> the last offset counted (or seeded)
    for partition, offset, ts_us, cost, tokens in delta.events():
        floor = floors.get(partition)
        if floor is None:
            floor = positions.get(prefix + str(partition), -1)
        if offset <= floor:
            floors[partition] = floor
            continue
        floors[partition] = offset
        events.append((ts_us, cost, tokens))
    last = {
        key: offset
        for partition, offset in floors.items()
        if offset > positions.get(key := prefix + str(partition), -1)
    }
    if not events:
        return (state if state is not None else current_state(budget, None, _at(0))), []
    state = current_state(budget, state, _at(events[0][0]))
    for name, names in delta.tallies.items():
        for who, cost in names.items():
            state.add_tally(name, who, cost)
    state, alerts = _count(budget, state, events)
    state.positions.update(last)
    return state, alerts


def apply_spend(
    budget: Budget,
    state: LedgerState | None,
    *,
    event: dict[str, Any],
    cost_nusd: int,
    ts: datetime,
) -> tuple[LedgerState, list[Alert]]:
    """Count one priced event (already known to match ``budget``) and return the alerts due:
    :func:`apply_delta` for a single event without a source position, plus the per-request
    limit check (the hot path checks that one itself, per event, with the event at hand).

    ``ts`` should be the event time, clamped by the caller to the ingest time so a client
    with a skewed clock cannot roll a period over early. Raises ``ValueError`` for a naive
    ``ts`` or a negative cost.
    """
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError("ts must be timezone-aware")
    if cost_nusd < 0:
        raise ValueError(f"cost_nusd must not be negative, got {cost_nusd}")
    ts = ts.astimezone(UTC)
    state = current_state(budget, state, ts)
    if cost_nusd and ts >= state.period_start:
        _tally(state, event, cost_nusd)
    alerts: list[Alert] = []
    if (
        budget.per_request_limit_nusd is not None
        and cost_nusd > budget.per_request_limit_nusd
        and ts >= state.period_start
    ):
        alerts.append(per_request_alert(budget, state.period_start, event, cost_nusd, ts))
    state, counted = _count(budget, state, [(_us(ts), cost_nusd, _event_tokens(event))])
    return state, alerts + counted


def _count(
    budget: Budget, state: LedgerState, events: list[tuple[int, int, int]]
) -> tuple[LedgerState, list[Alert]]:
    """Add ``(ts_us, cost_nusd, tokens)`` events in order: the per-event rules of a ledger.

    An event past the period end rolls the ledger over; one before the period start is late
    (counted in ``late_events`` / ``late_nusd`` only). Thresholds fire at the exact event
    that crosses them; the forecast is checked at the first event of each UTC minute and at
    every crossing; quotas count every event.
    """
    alerts: list[Alert] = []
    quotas = bool(
        budget.requests_per_minute
        or budget.tokens_per_minute
        or budget.requests_per_day
        or budget.tokens_per_day
    )
    start_us, end_us = _us(state.period_start), _us(state.period_end)
    override_us = _us(state.override_until) if state.override_until is not None else None
    limit = budget.limit_nusd
    if override_us is not None and state.override_limit_nusd is not None:
        limit = state.override_limit_nusd
    next_fire = _next_fire(budget, state, limit)
    spent = state.spent_nusd
    counted = 0
    first_us = last_us = -1
    burn_minute, burn_nusd = -1, 0
    for ts_us, cost, tokens in events:
        if ts_us >= end_us:  # rollover: settle the old period, start the new one
            state.spent_nusd, state.events = spent, state.events + counted
            _settle(state, first_us, last_us)
            record_burn_minute(state, burn_minute, burn_nusd)
            burn_minute, burn_nusd, counted, first_us, last_us = -1, 0, 0, -1, -1
            state = current_state(budget, state, _at(ts_us))
            start_us, end_us = _us(state.period_start), _us(state.period_end)
            override_us = _us(state.override_until) if state.override_until is not None else None
            limit = state.effective_limit(budget.limit_nusd, _at(ts_us))
            next_fire = _next_fire(budget, state, limit)
            spent = state.spent_nusd
        if ts_us < start_us:
            state.late_events += 1
            state.late_nusd += cost
            continue
        spent += cost
        counted += 1
        if first_us < 0 or ts_us < first_us:
            first_us = ts_us
        if ts_us > last_us:
            last_us = ts_us
        minute = ts_us // _US_PER_MINUTE
        new_minute = minute != state.forecast_minute
        if cost:
            if minute != burn_minute:
                record_burn_minute(state, burn_minute, burn_nusd)
                burn_minute, burn_nusd = minute, 0
            burn_nusd += cost
        if override_us is not None and ts_us >= override_us:
            _clear_override(state)
            override_us = None
            limit = budget.limit_nusd
            next_fire = _next_fire(budget, state, limit)
        if quotas:
            state.spent_nusd = spent
            alerts.extend(_count_quotas(budget, state, tokens, _at(ts_us)))
        crossing = spent >= next_fire
        if not (crossing or new_minute):
            continue
        # The slow path: a threshold crossed, or the first event of a minute (forecast).
        state.spent_nusd, state.events = spent, state.events + counted
        counted = 0
        _settle(state, first_us, last_us)
        record_burn_minute(state, burn_minute, burn_nusd)
        burn_minute, burn_nusd = -1, 0
        ts = _at(ts_us)
        rate: BurnRate | None = None
        if crossing:
            for threshold in budget.thresholds:
                if not threshold.crossed(spent, limit):
                    break  # thresholds are strictly increasing
                key = threshold_key(threshold, limit)
                if key in state.fired:
                    continue
                state.fired.append(key)
                if rate is None:
                    rate = burn_rate(state, ts)
                alerts.append(_threshold_alert(budget, state, threshold, limit, ts, rate))
            next_fire = _next_fire(budget, state, limit)
        if (
            spent < limit
            and (rate is not None or new_minute)
            and str(limit) not in state.forecast_fired
        ):
            state.forecast_minute = minute
            rate = rate or burn_rate(state, ts)
            if rate.reliable:
                runout = rate.runout_at(limit - spent)
                if runout is not None and runout < state.period_end:
                    state.forecast_fired.append(str(limit))
                    alerts.append(_forecast_alert(budget, state, limit, ts, rate, runout))
        elif new_minute:
            state.forecast_minute = minute
    state.spent_nusd, state.events = spent, state.events + counted
    _settle(state, first_us, last_us)
    record_burn_minute(state, burn_minute, burn_nusd)
    return state, alerts


def _settle(state: LedgerState, first_us: int, last_us: int) -> None:
    """Fold the events' time range into ``last_ts`` / ``observed_since``."""
    if last_us < 0:
        return
    if state.last_ts is None or last_us > _us(state.last_ts):
        state.last_ts = _at(last_us)
    if state.observed_since is None or first_us < _us(state.observed_since):
        state.observed_since = _at(first_us)


def _next_fire(budget: Budget, state: LedgerState, limit: int) -> int:
    """The spend at which the lowest threshold not yet fired at ``limit`` is crossed."""
    for threshold in budget.thresholds:
        if threshold_key(threshold, limit) not in state.fired:
            return threshold.amount(limit)
    return _NEVER


def _clear_override(state: LedgerState) -> None:
    state.override_limit_nusd = None
    state.override_until = None
    state.override_reason = ""
    state.override_by = ""


def _tally(state: LedgerState, event: dict[str, Any], cost_nusd: int) -> None:
    for dimension in ("service", "provider", "model"):
        name = event.get(dimension)
        if isinstance(name, str) and name:
            state.add_tally(dimension, name, cost_nusd)
    tags = event.get("tags")
    if isinstance(tags, dict):
        for key in sorted(tags):
            value = tags[key]
            if isinstance(value, str):
                state.add_tally(f"tag:{key}", value, cost_nusd)


def _base_labels(budget: Budget, state: LedgerState) -> dict[str, str]:
    labels = budget.alert_labels
    labels["period"] = state.period_start.isoformat()
    return labels


def _period_figures(budget: Budget, state: LedgerState, limit: int) -> dict[str, str]:
    return {
        "spent_usd": usd_text(state.spent_nusd),
        "limit_usd": usd_text(limit),
        "percent": percent_text(state.spent_nusd, limit),
        "period_start": state.period_start.astimezone(budget.tz).isoformat(),
        "resets_at": state.period_end.astimezone(budget.tz).isoformat(),
    }


def _threshold_alert(
    budget: Budget,
    state: LedgerState,
    threshold: Threshold,
    limit: int,
    ts: datetime,
    rate: BurnRate,
) -> Alert:
    labels = _base_labels(budget, state)
    labels["threshold"] = threshold.key
    figures = _period_figures(budget, state, limit)
    figures["threshold"] = threshold.key
    figures["burn_rate_usd_per_h"] = usd_text(rate.nusd_per_hour)
    overrun = threshold.at >= 1
    if overrun:
        # The limit was reached by this event: that is when the budget ran out.
        figures["runout_at"] = ts.isoformat()
    else:
        runout = rate.runout_at(limit - state.spent_nusd) if rate.reliable else None
        figures["runout_at"] = runout.isoformat() if runout else ""
    if limit != budget.limit_nusd:
        figures["override_until"] = state.override_until.isoformat() if state.override_until else ""
    pct = format((threshold.at * 100).normalize(), "f")
    resets = local_text(state.period_end, budget.tz)
    if overrun:
        title = f"Budget {budget.name} exhausted: {money(state.spent_nusd)} of {money(limit)}"
        action = {
            "block": "SDK guards block further calls",
            "degrade": "SDK guards switch to the cheaper models",
            "allow": "calls continue (on_exhausted = allow)",
        }[budget.on_exhausted]
        summary = (
            f"{budget.name} ({budget.match.describe()}, {budget.describe_period()}) spent "
            f"{money(state.spent_nusd)} of {money(limit)} ({figures['percent']}%); "
            f"resets {resets}. {action}. Override: spendwatch budgets override {budget.name} "
            f"--limit-usd X --for 2h."
        )
    else:
        title = f"Budget {budget.name} passed {pct}%: {money(state.spent_nusd)} of {money(limit)}"
        summary = (
            f"{budget.name} ({budget.match.describe()}, {budget.describe_period()}) spent "
            f"{money(state.spent_nusd)} of {money(limit)} ({figures['percent']}%); resets {resets}."
        )
    return Alert(
        alert_id=threshold_alert_id(budget, state.period_start, threshold, limit),
        kind="threshold",
        severity=threshold.severity,
        title=title,
        summary=summary,
        fired_at=ts,
        labels=labels,
        figures=figures,
        contributors=usage_analysis(state),
    )


def _forecast_alert(
    budget: Budget,
    state: LedgerState,
    limit: int,
    ts: datetime,
    rate: BurnRate,
    runout: datetime,
) -> Alert:
    parts: list[object] = ["forecast", budget.name, state.period_start.isoformat()]
    if limit != budget.limit_nusd:
        parts.append(limit)
    figures = _period_figures(budget, state, limit)
    figures["burn_rate_usd_per_h"] = usd_text(rate.nusd_per_hour)
    figures["runout_at"] = runout.isoformat()
    figures["window_s"] = str(rate.window_us // 1_000_000)
    return Alert(
        alert_id=alert_id_for(*parts),
        kind="forecast",
        severity="warning",
        title=(
            f"Budget {budget.name} will run out at {local_text(runout, budget.tz)} "
            f"(before its reset {local_text(state.period_end, budget.tz)})"
        ),
        summary=(
            f"At the last {figures['window_s']} s burn rate of "
            f"${figures['burn_rate_usd_per_h']}/h, "
            f"{money(limit - state.spent_nusd)} left of {money(limit)} lasts until "
            f"{local_text(runout, budget.tz)}."
        ),
        fired_at=ts,
        labels=_base_labels(budget, state),
        figures=figures,
        contributors=usage_analysis(state),
    )


def per_request_alert(
    budget: Budget, period_start: datetime, event: dict[str, Any], cost_nusd: int, ts: datetime
) -> Alert:
    """The alert for one call that cost more than ``budget``'s per-request limit (its id is
    derived from the budget and the event id, so a replay repeats it, never doubles it)."""
    assert budget.per_request_limit_nusd is not None
    event_id = str(event.get("event_id") or ts.isoformat())
    labels = budget.alert_labels
    labels["period"] = period_start.isoformat()
    for key in ("service", "provider", "model"):
        value = event.get(key)
        if isinstance(value, str):
            labels[key] = value
    figures = {
        "cost_usd": usd_text(cost_nusd),
        "per_request_limit_usd": usd_text(budget.per_request_limit_nusd),
        "event_id": event_id,
        "input_tokens": str(event.get("input_tokens", 0)),
        "output_tokens": str(event.get("output_tokens", 0)),
    }
    where = f"{event.get('service', '?')} / {event.get('model') or event.get('operation', '?')}"
    return Alert(
        alert_id=alert_id_for("per_request", budget.name, event_id),
        kind="per_request",
        severity=budget.per_request_severity,
        title=(
            f"One request cost {money(cost_nusd)} (> {money(budget.per_request_limit_nusd)} "
            f"per-request limit of {budget.name}): {where}"
        ),
        summary=(
            f"Event {event_id} from {where} cost ${figures['cost_usd']} with "
            f"{figures['input_tokens']} input and {figures['output_tokens']} output tokens."
        ),
        fired_at=ts,
        labels=labels,
        figures=figures,
    )


def _count_quotas(budget: Budget, state: LedgerState, tokens: int, ts: datetime) -> list[Alert]:
    minute = unix_minute(ts)
    if state.quota_minute is None or minute > state.quota_minute:
        state.quota_minute = minute
        state.minute_requests = state.minute_tokens = 0
        state.quota_fired = [k for k in state.quota_fired if "_per_minute@" not in k]
    if minute == state.quota_minute:
        state.minute_requests += 1
        state.minute_tokens += tokens
    day_start, day_end = state.quota_day_start, state.quota_day_end
    if day_start is None or day_end is None or not day_start <= ts < day_end:
        day_start, day_end = bounds_for("day", budget.tz, ts)
    if state.quota_day_start is None or day_start > state.quota_day_start:
        state.quota_day_start, state.quota_day_end = day_start, day_end
        state.day_requests = state.day_tokens = 0
        state.quota_fired = [k for k in state.quota_fired if "_per_day@" not in k]
    if day_start == state.quota_day_start:
        state.day_requests += 1
        state.day_tokens += tokens

    minute_start = datetime.fromtimestamp(state.quota_minute * 60, tz=UTC)
    observed = {
        "requests_per_minute": (state.minute_requests, minute_start),
        "tokens_per_minute": (state.minute_tokens, minute_start),
        "requests_per_day": (state.day_requests, state.quota_day_start),
        "tokens_per_day": (state.day_tokens, state.quota_day_start),
    }
    alerts: list[Alert] = []
    for name in _QUOTA_NAMES:
        quota: int | None = getattr(budget, name)
        count, window_start = observed[name]
        if quota is None or count <= quota:
            continue
        key = f"{name}@{window_start.isoformat()}"
        if key in state.quota_fired:
            continue
        state.quota_fired.append(key)
        labels = _base_labels(budget, state)
        labels["quota"] = name
        severity: Severity = "warning"
        what = name.replace("_per_", " per ")
        alerts.append(
            Alert(
                alert_id=alert_id_for("quota", budget.name, name, window_start.isoformat()),
                kind="quota",
                severity=severity,
                title=f"Budget {budget.name}: {what} quota exceeded ({count} > {quota})",
                summary=(
                    f"{count} {what.split(' ')[0]} in the {name.rsplit('_', 1)[-1]} starting "
                    f"{local_text(window_start, budget.tz)}, quota {quota}."
                ),
                fired_at=ts,
                labels=labels,
                figures={
                    "quota": str(quota),
                    "observed": str(count),
                    "window_start": window_start.isoformat(),
                },
            )
        )
    return alerts
