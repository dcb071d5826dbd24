"""Exact money helpers and the alert / budget-status contracts."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from schemas.alerts import Alert, Contributor, alert_id_for
from schemas.budget_status import BudgetStatus
from schemas.money import format_usd, nusd_to_usd, usd_text, usd_to_nusd


def test_usd_to_nusd_exact_and_half_even() -> None:
    assert usd_to_nusd("2.00") == 2_000_000_000
    assert usd_to_nusd(Decimal("0.0000000015")) == 2  # half-even: 1.5 → 2
    assert usd_to_nusd(Decimal("0.0000000025")) == 2  # 2.5 → 2
    assert usd_to_nusd(3) == 3_000_000_000
    with pytest.raises(ValueError):
        usd_to_nusd(0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        usd_to_nusd("ten dollars")


def test_nusd_to_usd_and_format() -> None:
    assert nusd_to_usd(1_234_567_891) == Decimal("1.234567891")
    assert format_usd(1_234_567_891_000) == "$1,234.57"


def test_usd_text_keeps_every_digit_and_at_least_two_decimals() -> None:
    assert usd_text(12_500_000_000) == "12.50"
    assert usd_text(2_068_339_517) == "2.068339517"
    assert usd_text(123_000) == "0.000123"
    assert usd_text(0) == "0.00"
    assert usd_text(-5_000_000_000) == "-5.00"


def test_alert_ids_are_deterministic() -> None:
    a = alert_id_for("threshold", "fleet-daily", "2026-11-23T00:00:00+00:00", "0.5")
    b = alert_id_for("threshold", "fleet-daily", "2026-11-23T00:00:00+00:00", "0.5")
    c = alert_id_for("threshold", "fleet-daily", "2026-11-23T00:00:00+00:00", "0.8")
    assert a == b != c


def test_alert_json_round_trip() -> None:
    alert = Alert(
        alert_id="x",
        kind="threshold",
        severity="critical",
        title="t",
        summary="s",
        fired_at=datetime(2026, 11, 23, 12, tzinfo=UTC),
        labels={"budget": "b"},
        figures={"spent_usd": "1.90"},
        contributors=(Contributor("service", "a", 5, "0.5"),),
    )
    assert Alert.from_json(alert.to_json()) == alert
    with pytest.raises(ValueError):
        Alert("x", "threshold", "info", "t", "s", datetime(2026, 1, 1))  # naive


def test_budget_status_round_trip() -> None:
    t = datetime(2026, 11, 23, tzinfo=UTC)
    status = BudgetStatus("b", t, t, 5, 10, "0.5", "warning", t, projected_runout_at=t)
    assert BudgetStatus.from_json(status.to_json()) == status
