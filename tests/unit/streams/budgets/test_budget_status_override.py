"""status_of (ok/warning/critical/exhausted) and apply_override (effective limit, announced,
thresholds re-armed at the new limit only, expiry)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.alerts import alert_id_for
from schemas.budget_status import BudgetStatus
from streams.budgets import Budget, LedgerState, apply_override, apply_spend, status_of

USD = 1_000_000_000
T0 = datetime(2024, 5, 17, 9, 0, tzinfo=UTC)
DAY = "2024-05-17T00:00:00+00:00"


def make(**kw: Any) -> Budget:
    return Budget(**{"name": "team", "limit_nusd": 100 * USD, **kw})


def spend(
    b: Budget, state: LedgerState | None, usd: int, ts: datetime = T0
) -> tuple[LedgerState, list[str]]:
    event = {"event_id": f"e-{usd}-{ts.isoformat()}", "service": "chat", "model": "gpt-4o"}
    state, alerts = apply_spend(b, state, event=event, cost_nusd=usd * USD, ts=ts)
    return state, [f"{a.kind}:{a.labels.get('threshold', '')}" for a in alerts]


@pytest.mark.parametrize(
    ("usd", "level", "fraction"),
    [(0, "ok", "0.000000"), (49, "ok", "0.490000"), (50, "ok", "0.500000"),
     (80, "warning", "0.800000"), (95, "critical", "0.950000"), (99, "critical", "0.990000"),
     (100, "exhausted", "1.000000"), (130, "exhausted", "1.300000")],
)  # fmt: skip
def test_status_levels(usd: int, level: str, fraction: str) -> None:
    b = make(per_request_limit_nusd=5 * USD)
    state, _ = spend(b, None, usd)
    status = status_of(b, state, T0 + timedelta(minutes=1))
    assert status.state == level
    assert status.fraction == fraction
    assert status.spent_nusd == usd * USD and status.limit_nusd == 100 * USD
    assert status.period_start == datetime(2024, 5, 17, tzinfo=UTC)
    assert status.reset_at == datetime(2024, 5, 18, tzinfo=UTC)
    assert status.per_request_limit_nusd == 5 * USD
    assert status.projected_runout_at is None  # one sample: no reliable rate
    assert BudgetStatus.from_json(status.to_json()) == status


def test_status_of_a_closed_period_is_the_fresh_one() -> None:
    b = make()
    state, _ = spend(b, None, 100)
    before = state.to_dict()
    status = status_of(b, state, T0 + timedelta(days=1))
    assert (status.state, status.spent_nusd) == ("ok", 0)
    assert status.period_start == datetime(2024, 5, 18, tzinfo=UTC)
    assert state.to_dict() == before  # not modified
    assert status_of(b, None, T0).state == "ok"


def test_status_projects_runout() -> None:
    b = make()
    state = None
    for i in range(10):  # 2 USD per minute 09:00..09:09
        state, _ = spend(b, state, 2, T0 + timedelta(minutes=i))
    status = status_of(b, state, T0 + timedelta(minutes=9))
    # 20 USD over 540 s; 80 left -> 2160 s after 09:09 -> 09:45:00.
    assert status.projected_runout_at == T0 + timedelta(minutes=45)


def test_override_raises_the_limit_and_is_announced() -> None:
    b = make(labels=(("team", "growth"),))
    state, kinds = spend(b, None, 100)
    assert kinds == ["threshold:0.5", "threshold:0.8", "threshold:0.95", "threshold:1"]
    assert status_of(b, state, T0).state == "exhausted"
    now = T0 + timedelta(minutes=5)
    until = now + timedelta(hours=2)
    state, alert = apply_override(b, state, 200 * USD, until, now, reason="launch", by="ana")
    assert alert.kind == "override" and alert.severity == "warning"
    assert alert.alert_id == alert_id_for(
        "override", "team", now.isoformat(), 200 * USD, until.isoformat()
    )
    assert alert.labels == {"team": "growth", "budget": "team", "period": DAY}
    assert (
        alert.figures["limit_usd"] == "200.00" and alert.figures["previous_limit_usd"] == "100.00"
    )
    assert alert.figures["percent"] == "50.00" and alert.figures["reason"] == "launch"
    status = status_of(b, state, now)
    assert (status.state, status.limit_nusd, status.fraction) == ("ok", 200 * USD, "0.500000")
    assert status.override_until == until

    # 50 % of the new limit was already reached: not announced again. 80 % of 200 fires.
    state, kinds = spend(b, state, 59, now + timedelta(minutes=1))
    assert kinds == []
    state, kinds = spend(b, state, 1, now + timedelta(minutes=2))
    # 160 USD in 3 distinct minutes over 420 s: the burn also forecasts a run-out at the new limit.
    assert kinds == ["threshold:0.8", "forecast:"]

    # After expiry the configured limit applies again; its fired thresholds stay fired.
    after = until + timedelta(seconds=1)
    assert status_of(b, state, after).state == "exhausted"
    assert status_of(b, state, after).override_until is None
    state, kinds = spend(b, state, 1, after)
    assert kinds == []
    assert state.override_limit_nusd is None


def test_override_threshold_ids_carry_the_limit() -> None:
    b = make()
    state, _ = spend(b, None, 10)
    state, _ = apply_override(b, state, 50 * USD, T0 + timedelta(hours=1), T0)
    event = {"event_id": "x", "service": "chat"}
    state, alerts = apply_spend(b, state, event=event, cost_nusd=20 * USD, ts=T0)
    assert [a.alert_id for a in alerts] == [alert_id_for("threshold", "team", DAY, "0.5", 50 * USD)]


def test_override_outlives_the_period_while_active() -> None:
    b = make()
    state, _ = spend(b, None, 10, datetime(2024, 5, 17, 23, 0, tzinfo=UTC))
    until = datetime(2024, 5, 18, 2, 0, tzinfo=UTC)
    state, _ = apply_override(b, state, 300 * USD, until, datetime(2024, 5, 17, 23, 30, tzinfo=UTC))
    state, _ = spend(b, state, 150, datetime(2024, 5, 18, 0, 30, tzinfo=UTC))
    assert state.period_start == datetime(2024, 5, 18, tzinfo=UTC)
    status = status_of(b, state, datetime(2024, 5, 18, 1, tzinfo=UTC))
    assert (status.state, status.limit_nusd, status.spent_nusd) == ("ok", 300 * USD, 150 * USD)


def test_override_validation() -> None:
    b = make()
    with pytest.raises(ValueError, match="not after"):
        apply_override(b, None, USD, T0, T0)
    with pytest.raises(ValueError, match="positive"):
        apply_override(b, None, 0, T0 + timedelta(hours=1), T0)
    with pytest.raises(ValueError, match="aware"):
        apply_override(b, None, USD, datetime(2030, 1, 1), T0)
