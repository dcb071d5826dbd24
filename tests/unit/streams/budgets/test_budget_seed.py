"""Rebuilding a ledger from stored spend: matching groups count, crossed thresholds stay
announced, the next crossing still fires once."""

from __future__ import annotations

from datetime import UTC, datetime

from streams.budgets import apply_spend, load_budgets
from streams.budgets.seed import seed_state

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
BUDGETS = load_budgets(
    [
        {
            "name": "growth",
            "period": "day",
            "limit_usd": "10",
            "match": {"tags": {"team": "growth"}},
        },
    ]
)


def group(service: str, team: str | None, cost_nusd: int, events: int = 1) -> tuple:
    tags = {"team": team} if team else {}
    return (
        {"service": service, "provider": "openai", "model": "gpt-4o", "tags": tags},
        cost_nusd,
        events,
    )


def test_seed_counts_matching_groups_and_marks_crossed_thresholds() -> None:
    budget = BUDGETS[0]
    state = seed_state(
        budget,
        [
            group("search", "growth", 4_000_000_000, 40),
            group("chat", "growth", 1_500_000_000, 15),
            group("chat", "support", 9_000_000_000, 90),  # another team: not this budget
        ],
        NOW,
    )
    assert state.spent_nusd == 5_500_000_000
    assert state.events == 55
    assert state.period_start == datetime(2026, 11, 23, tzinfo=UTC)
    assert state.tallies["service"] == {"search": 4_000_000_000, "chat": 1_500_000_000}
    assert len(state.fired) == 1  # 50 % was crossed before the restart

    event = group("search", "growth", 0)[0] | {"event_id": "e1"}
    state, alerts = apply_spend(budget, state, event=event, cost_nusd=2_600_000_000, ts=NOW)
    assert state.spent_nusd == 8_100_000_000
    assert [a.labels["threshold"] for a in alerts] == ["0.8"]


def test_seed_with_nothing_stored_is_an_empty_ledger() -> None:
    state = seed_state(BUDGETS[0], [], NOW)
    assert (state.spent_nusd, state.events, state.fired) == (0, 0, [])


def test_counting_key_changes_with_what_a_ledger_counts_only() -> None:
    base = {"name": "b", "period": "day", "limit_usd": "10", "match": {"service": ["chat"]}}
    key = load_budgets([base])[0].counting_key
    same = [
        {**base, "limit_usd": "25"},
        {**base, "thresholds": [0.9, 1.0]},
        {**base, "per_request_limit_usd": "0.05"},
    ]
    changed = [
        {**base, "period": "week"},
        {**base, "timezone": "Europe/Paris"},
        {**base, "match": {"service": ["chat", "search"]}},
        {**base, "match": {"service": ["chat"], "tags": {"team": "growth"}}},
        {**base, "period": "rolling", "rolling_hours": 24},
    ]
    assert [load_budgets([b])[0].counting_key for b in same] == [key] * len(same)
    keys = [load_budgets([b])[0].counting_key for b in changed]
    assert key not in keys and len(set(keys)) == len(keys)
