"""The SDK's own copies of pipeline rules (it may not import the pipeline) agree with them:
money, scope patterns, the token fields, and the budget-status record the guard reads."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from spendwatch import event as sdk_event
from spendwatch import money as sdk_money
from spendwatch.status import BudgetStatus as SdkStatus

from schemas import events as pipeline_events
from schemas import money as pipeline_money
from schemas.budget_status import BudgetStatus
from streams.budgets.model import _pattern_matches

AMOUNTS = [
    "0",
    "1",
    "-2.5",
    "0.000000001",
    "0.0000000005",  # half-even: to 0
    "0.0000000015",  # half-even: to 2
    "0.0000000025",  # half-even: to 2
    "123456789.123456789",
    "1E+3",
    "2.000000000499",
    Decimal("0.1"),
    7,
]


@pytest.mark.parametrize("amount", AMOUNTS)
def test_money_conversions_agree(amount: object) -> None:
    nusd = pipeline_money.usd_to_nusd(amount)  # type: ignore[arg-type]
    assert sdk_money.usd_to_nusd(amount) == nusd  # type: ignore[arg-type]
    assert sdk_money.nusd_to_usd(nusd) == pipeline_money.nusd_to_usd(nusd)
    for places in (2, 4):
        assert sdk_money.format_usd(nusd, places) == pipeline_money.format_usd(nusd, places)


@pytest.mark.parametrize("bad", [0.1, "abc", "NaN", "Infinity"])
def test_money_refusals_agree(bad: object) -> None:
    for module in (pipeline_money, sdk_money):
        with pytest.raises(ValueError):
            module.usd_to_nusd(bad)  # type: ignore[arg-type]


def test_scope_patterns_agree() -> None:
    patterns = [("gpt-4o",), ("gpt-4o*",), ("*",), ("claude-*", "o3"), ("",)]
    values = ["gpt-4o", "gpt-4o-mini", "gpt-4", "claude-3", "o3", "o3-mini", "", None, 5]
    checked = 0
    for p in patterns:
        for v in values:
            assert sdk_money.pattern_matches(p, v) == _pattern_matches(p, v), (p, v)
            checked += 1
    assert checked == 45
    assert _pattern_matches(("gpt-4o*",), "gpt-4o-mini") and not _pattern_matches(("gpt-4o",), 5)


def test_budget_status_cannot_drift() -> None:
    """Every field the worker publishes is read by the SDK, with the same value."""
    t = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
    published = BudgetStatus(
        budget="fleet-daily",
        period_start=t,
        reset_at=t.replace(day=24),
        spent_nusd=1_500_000_001,
        limit_nusd=2_000_000_000,
        fraction="0.750000",
        state="warning",
        updated_at=t.replace(minute=5),
        projected_runout_at=t.replace(hour=20),
        per_request_limit_nusd=50_000_000,
        override_until=t.replace(hour=22),
        on_exhausted="degrade",
        degrade_to={"gpt-4o": "gpt-4o-mini"},
    )
    read = SdkStatus.from_json(published.to_json())
    pipeline_fields = {f.name for f in dataclasses.fields(BudgetStatus)} - {"schema_version"}
    sdk_fields = {f.name for f in dataclasses.fields(SdkStatus)} - {"received_at_monotonic"}
    assert pipeline_fields == sdk_fields
    for name in pipeline_fields:
        assert getattr(read, name) == getattr(published, name), name
    assert read.spent_usd == Decimal("1.500000001")


def test_token_fields_agree() -> None:
    assert sdk_event.TOKEN_FIELDS == pipeline_events.TOKEN_FIELDS
    assert len(set(pipeline_events.TOKEN_FIELDS)) == 5
