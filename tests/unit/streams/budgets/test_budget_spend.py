"""apply_spend: thresholds once each, several at once, rollover, per-request, quotas, forecast,
ledger JSON round trip, override. Figures are computed by hand from the inputs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from schemas.alerts import Alert, alert_id_for
from streams.budgets import (
    Budget,
    LedgerState,
    Match,
    Threshold,
    apply_override,
    apply_spend,
    forecast,
)

USD = 1_000_000_000
T0 = datetime(2024, 5, 17, 9, 0, tzinfo=UTC)
DAY = "2024-05-17T00:00:00+00:00"


def make(**kw: Any) -> Budget:
    base: dict[str, Any] = {
        "name": "team",
        "limit_nusd": 100 * USD,
        "labels": (("team", "growth"),),
    }
    base.update(kw)
    return Budget(**base)


def ev(service: str = "chat", model: str = "gpt-4o", **kw: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "service": service,
        "provider": "openai",
        "model": model,
        "tags": {"team": "growth"},
        **kw,
    }


def feed(
    budget: Budget, spends: list[tuple[datetime, int]], state: LedgerState | None = None
) -> tuple[LedgerState | None, list[Alert]]:
    alerts: list[Alert] = []
    for ts, cost in spends:
        state, new = apply_spend(budget, state, event=ev(), cost_nusd=cost, ts=ts)
        alerts += new
    return state, alerts


def test_thresholds_fire_once_each() -> None:
    b = make()
    minutes = [T0 + timedelta(minutes=i) for i in range(12)]
    # 10 USD per event: 50 % at event 5, 80 % at 8, 95 % never exactly until 100 at 10.
    state, alerts = feed(b, [(ts, 10 * USD) for ts in minutes])
    threshold = [a for a in alerts if a.kind == "threshold"]
    assert [(a.labels["threshold"], a.severity, a.fired_at) for a in threshold] == [
        ("0.5", "info", minutes[4]),
        ("0.8", "warning", minutes[7]),
        ("0.95", "critical", minutes[9]),
        ("1", "emergency", minutes[9]),
    ]
    assert [a.alert_id for a in threshold] == [
        alert_id_for("threshold", "team", DAY, k) for k in ("0.5", "0.8", "0.95", "1")
    ]
    assert state is not None and state.spent_nusd == 120 * USD and state.events == 12
    assert state.fired == [f"{k}@{100 * USD}" for k in ("0.5", "0.8", "0.95", "1")]


def test_one_event_jumps_every_threshold() -> None:
    b = make()
    _, alerts = feed(b, [(T0, 49 * USD), (T0 + timedelta(seconds=1), 60 * USD)])
    assert [a.labels["threshold"] for a in alerts if a.kind == "threshold"] == [
        "0.5",
        "0.8",
        "0.95",
        "1",
    ]


def test_threshold_exactly_at_boundary_in_nano_usd() -> None:
    b = make(limit_nusd=3)  # 3 nano-USD: 0.5 x 3 = 1.5 -> crossed at 2, not 1
    state, alerts = feed(b, [(T0, 1)])
    assert alerts == []
    state, alerts = feed(b, [(T0, 1)], state)
    assert [a.labels["threshold"] for a in alerts] == ["0.5"]


def test_overrun_alert_carries_usage_analysis_and_figures() -> None:
    b = make()
    state = None
    spends = [("chat", "gpt-4o", "growth", 50), ("search", "gpt-4o-mini", "core", 30),
              ("chat", "gpt-4o-mini", "growth", 25)]  # fmt: skip
    alerts: list[Alert] = []
    for i, (service, model, team, usd) in enumerate(spends):
        event = ev(service, model, tags={"team": team})
        ts = T0 + timedelta(minutes=5 * i)
        state, new = apply_spend(b, state, event=event, cost_nusd=usd * USD, ts=ts)
        alerts += new
    overrun = alerts[-1]
    assert overrun.severity == "emergency" and overrun.kind == "threshold"
    assert overrun.labels == {"team": "growth", "budget": "team", "period": DAY, "threshold": "1"}
    # 105 USD over 10 min 0 s of data (first event at 09:00:00, now 09:10:00) -> 630 USD/h.
    assert overrun.figures == {
        "spent_usd": "105.00",
        "limit_usd": "100.00",
        "percent": "105.00",
        "period_start": DAY,
        "resets_at": "2024-05-18T00:00:00+00:00",
        "threshold": "1",
        "burn_rate_usd_per_h": "630.00",
        "runout_at": "2024-05-17T09:10:00+00:00",
    }
    got = [(c.dimension, c.name, c.cost_nusd, c.share) for c in overrun.contributors]
    assert got == [
        ("service", "chat", 75 * USD, "0.7142"),
        ("service", "search", 30 * USD, "0.2857"),
        ("model", "gpt-4o-mini", 55 * USD, "0.5238"),
        ("model", "gpt-4o", 50 * USD, "0.4761"),
        ("provider", "openai", 105 * USD, "1.0000"),
        ("tag:team", "growth", 75 * USD, "0.7142"),
        ("tag:team", "core", 30 * USD, "0.2857"),
    ]
    assert "exhausted" in overrun.title and "$105.00 of $100.00" in overrun.title
    assert Alert.from_json(overrun.to_json()) == overrun


def test_rollover_resets_spend_and_thresholds() -> None:
    b = make()
    state, alerts = feed(b, [(T0, 60 * USD)])
    assert [a.labels["threshold"] for a in alerts] == ["0.5"]
    next_day = T0 + timedelta(days=1)
    state, alerts = feed(b, [(next_day, 60 * USD)], state)
    assert state is not None and state.spent_nusd == 60 * USD
    assert state.period_start == datetime(2024, 5, 18, tzinfo=UTC)
    assert [a.alert_id for a in alerts] == [
        alert_id_for("threshold", "team", "2024-05-18T00:00:00+00:00", "0.5")
    ]
    assert alerts[0].labels["period"] == "2024-05-18T00:00:00+00:00"


def test_late_event_is_counted_aside() -> None:
    b = make()
    state, _ = feed(b, [(T0 + timedelta(days=1), 1 * USD)])
    state, alerts = feed(b, [(T0, 70 * USD)], state)
    assert alerts == []
    assert state is not None
    assert (state.spent_nusd, state.late_events, state.late_nusd) == (1 * USD, 1, 70 * USD)
    # positive control: the same 70 USD inside the current period crosses 50 % (71 of 100)
    day2 = T0 + timedelta(days=1)
    _, alerts = feed(b, [(day2, 1 * USD), (day2 + timedelta(minutes=1), 70 * USD)])
    assert [(a.kind, a.labels["threshold"]) for a in alerts] == [("threshold", "0.5")]


def test_replay_gives_the_same_alert_ids() -> None:
    b = make(per_request_limit_nusd=20 * USD)
    events = [(ev(), T0 + timedelta(minutes=i), (i + 1) * 7 * USD) for i in range(8)]

    def run() -> list[str]:
        state, ids = None, []
        for event, ts, cost in events:
            state, alerts = apply_spend(b, state, event=event, cost_nusd=cost, ts=ts)
            ids += [a.alert_id for a in alerts]
        return ids

    assert run() == run()


def test_per_request_limit() -> None:
    b = make(per_request_limit_nusd=2 * USD, per_request_severity="critical")
    event = ev(input_tokens=900_000, output_tokens=1_000)
    state, alerts = apply_spend(b, None, event=event, cost_nusd=2 * USD, ts=T0)
    assert alerts == []  # equal to the limit is allowed
    event2 = ev(input_tokens=900_000, output_tokens=1_000)
    _, alerts = apply_spend(b, state, event=event2, cost_nusd=2 * USD + 1, ts=T0)
    (alert,) = alerts
    assert alert.kind == "per_request" and alert.severity == "critical"
    assert alert.alert_id == alert_id_for("per_request", "team", event2["event_id"])
    assert alert.labels["service"] == "chat" and alert.labels["model"] == "gpt-4o"
    assert alert.figures["cost_usd"] == "2.000000001"
    assert alert.figures["per_request_limit_usd"] == "2.00"
    assert alert.figures["event_id"] == event2["event_id"]


def test_quotas_fire_once_per_window() -> None:
    b = make(requests_per_minute=3, tokens_per_day=1000, limit_nusd=10**18)
    state: LedgerState | None = None
    kinds: list[tuple[str, str]] = []
    # 5 requests in minute 09:00 (4th exceeds), 2 in 09:01, 5 more in 09:02 (4th exceeds).
    stamps = [
        T0 + timedelta(seconds=s) for s in (0, 10, 20, 30, 40, 61, 62, 120, 121, 122, 123, 124)
    ]
    for ts in stamps:
        state, alerts = apply_spend(b, state, event=ev(input_tokens=60, output_tokens=40),
                                    cost_nusd=1, ts=ts)  # fmt: skip
        kinds += [(a.labels["quota"], a.figures["window_start"]) for a in alerts]
    # tokens: 100 per event -> the 11th event makes 1100 > 1000 in the day.
    assert kinds == [
        ("requests_per_minute", "2024-05-17T09:00:00+00:00"),
        ("requests_per_minute", "2024-05-17T09:02:00+00:00"),
        ("tokens_per_day", "2024-05-17T00:00:00+00:00"),
    ]
    assert state is not None and state.day_tokens == 1200 and state.day_requests == 12


def forecast_budget() -> Budget:
    # 24 USD/day budget, UTC.
    return make(limit_nusd=24 * USD)


def test_forecast_needs_five_minutes_of_data() -> None:
    b = forecast_budget()
    # 1 USD per minute from 09:00: at 09:04 (4 min of data) there is no forecast.
    state, alerts = feed(b, [(T0 + timedelta(minutes=i), 1 * USD) for i in range(5)])
    assert [a.kind for a in alerts] == []
    # At 09:05 -> 6 USD over 300 s = 72 USD/h; 18 USD left -> 15 min -> 09:20, before midnight.
    state, alerts = feed(b, [(T0 + timedelta(minutes=5), 1 * USD)], state)
    (alert,) = alerts
    assert alert.kind == "forecast" and alert.severity == "warning"
    assert alert.alert_id == alert_id_for("forecast", "team", DAY)
    assert alert.figures["burn_rate_usd_per_h"] == "72.00"
    assert alert.figures["runout_at"] == "2024-05-17T09:20:00+00:00"
    assert alert.figures["window_s"] == "300"
    # Once per period.
    state, alerts = feed(b, [(T0 + timedelta(minutes=6), 1 * USD)], state)
    assert [a.kind for a in alerts] == []


def test_no_forecast_from_one_large_call_after_a_quiet_spell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b = forecast_budget()
    state, _ = feed(b, [(T0, 1 * USD)])
    state, alerts = feed(b, [(T0 + timedelta(hours=2), 20 * USD)], state)
    assert [a.kind for a in alerts] == ["threshold", "threshold"]  # 50 %, 80 %; no forecast
    # positive control: with one minute of spend enough, the same call is forecast: 20 USD
    # over 10:46..11:00 (840 s), 3 USD left -> 126 s -> 11:02:06.
    monkeypatch.setattr(forecast, "MIN_FORECAST_MINUTES", 1)
    state, _ = feed(b, [(T0, 1 * USD)])
    _, alerts = feed(b, [(T0 + timedelta(hours=2), 20 * USD)], state)
    assert [a.kind for a in alerts] == ["threshold", "threshold", "forecast"]
    assert alerts[-1].figures["runout_at"] == "2024-05-17T11:02:06+00:00"


def test_forecast_uses_only_the_last_15_minutes() -> None:
    b = make(limit_nusd=1000 * USD)
    # A burst long ago, then a slow trickle: 1 USD at 10:00..10:14 (15 samples).
    state, _ = feed(b, [(T0, 500 * USD)])
    later = T0 + timedelta(hours=1)
    state, _alerts = feed(b, [(later + timedelta(minutes=i), 1 * USD) for i in range(15)], state)
    # At 10:14 the window is the current minute and the 14 before (10:00..10:14): the 500 USD
    # burst at 09:00 is out of it; 15 USD over 840 s (10:00:00 -> 10:14:00).
    assert state is not None
    from streams.budgets import burn_rate

    rate = burn_rate(state, later + timedelta(minutes=14))
    assert (rate.window_nusd, rate.window_us, rate.minutes_with_spend) == (
        15 * USD,
        840 * 10**6,
        15,
    )
    assert rate.nusd_per_hour == 15 * USD * 3600 // 840
    assert rate.runout_at(485 * USD) == later + timedelta(minutes=14) + timedelta(
        microseconds=-(-485 * USD * 840 * 10**6 // (15 * USD))
    )
    # Idle for 15 minutes: the rate decays to zero.
    idle = burn_rate(state, later + timedelta(minutes=29))
    assert idle.window_nusd == 0 and idle.runout_at(1) is None


def test_no_forecast_when_runout_is_after_the_reset() -> None:
    b = make(limit_nusd=1200 * USD)
    _state, alerts = feed(b, [(T0 + timedelta(minutes=i), 1 * USD) for i in range(20)])
    # At most 6 USD / 5 min = 72 USD/h with >= 1180 left -> > 16 h -> after midnight.
    assert [a.kind for a in alerts] == []
    # positive control: with a 1000 USD limit the same spend runs out before midnight: at
    # 09:05, 994 USD left at 72 USD/h -> 13 h 48 min 20 s -> 22:53:20, one forecast.
    _state, alerts = feed(
        make(limit_nusd=1000 * USD), [(T0 + timedelta(minutes=i), 1 * USD) for i in range(20)]
    )
    assert [(a.kind, a.fired_at) for a in alerts] == [("forecast", T0 + timedelta(minutes=5))]
    assert alerts[0].figures["runout_at"] == "2024-05-17T22:53:20+00:00"


def test_state_json_round_trip() -> None:
    b = make(requests_per_minute=10)
    state, _ = feed(b, [(T0 + timedelta(minutes=i), 9 * USD) for i in range(8)])
    assert state is not None
    state, _ = apply_override(
        b, state, 200 * USD, T0 + timedelta(hours=2), T0 + timedelta(minutes=9)
    )
    raw = orjson.dumps(state.to_dict())
    again = LedgerState.from_dict(orjson.loads(raw))
    assert again == state
    assert LedgerState.from_json(state.to_json()) == state
    assert orjson.loads(state.to_json()) == state.to_dict()
    assert state.to_dict()["override_until"] == "2024-05-17T11:00:00+00:00"
    # A restored ledger continues exactly like the original.
    s1, a1 = apply_spend(b, state, event=ev(), cost_nusd=100 * USD, ts=T0 + timedelta(minutes=10))
    s2, a2 = apply_spend(b, again, event=ev(), cost_nusd=100 * USD, ts=T0 + timedelta(minutes=10))
    assert [a.alert_id for a in a1] == [a.alert_id for a in a2] and s1 == s2


def test_tallies_are_bounded_and_exact() -> None:
    b = make(limit_nusd=10**18)
    state = None
    for i in range(60):
        state, _ = apply_spend(b, state, event=ev(service=f"svc{i}"), cost_nusd=i + 1, ts=T0)
    assert state is not None
    services = state.tallies["service"]
    assert len(services) == 51 and services["(other)"] == sum(range(51, 61))
    assert sum(services.values()) == state.spent_nusd == sum(range(1, 61))


def test_custom_thresholds_above_100_percent() -> None:
    b = make(
        thresholds=(Threshold(Decimal("1"), "critical"), Threshold(Decimal("1.5"), "emergency"))
    )
    _, alerts = feed(b, [(T0, 100 * USD), (T0, 49 * USD), (T0, 1 * USD)])
    assert [(a.labels["threshold"], a.severity) for a in alerts] == [
        ("1", "critical"),
        ("1.5", "emergency"),
    ]


def test_naive_and_negative_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        apply_spend(make(), None, event=ev(), cost_nusd=1, ts=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="negative"):
        apply_spend(make(), None, event=ev(), cost_nusd=-1, ts=T0)


def test_scope_is_not_checked_here_but_by_matches() -> None:
    b = make(match=Match(services=("chat",)))
    assert b.matches(ev()) and not b.matches(ev(service="search"))
