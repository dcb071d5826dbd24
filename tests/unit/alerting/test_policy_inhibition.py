"""Inhibition: default higher-threshold rule and generic source/target/equal rules."""

from __future__ import annotations

from alerting.policy.inhibition import DEFAULT_RULE, InhibitRule, inhibited_by, inhibits
from alerting.policy.matchers import AlertMatch
from tests.unit.alerting.factories import resolved, spike_alert, threshold_alert

T50 = threshold_alert(threshold="0.5", severity="info")
T80 = threshold_alert(threshold="0.8", severity="warning")
T95 = threshold_alert(threshold="0.95", severity="critical")
RULES = (DEFAULT_RULE,)


def test_higher_threshold_inhibits_lower_same_budget_and_period() -> None:
    active = [T50, T80, T95]
    assert inhibited_by(T50, active, RULES) == T80
    assert inhibited_by(T80, active, RULES) == T95
    assert inhibited_by(T95, active, RULES) is None


def test_other_budget_or_period_not_inhibited() -> None:
    other_budget = threshold_alert(budget="other", threshold="0.5", severity="info")
    next_period = threshold_alert(period="2025-03-15", threshold="0.5", severity="info")
    assert inhibited_by(other_budget, [T95], RULES) is None
    assert inhibited_by(next_period, [T95], RULES) is None


def test_resolved_source_does_not_inhibit_and_resolved_target_never_inhibited() -> None:
    assert inhibited_by(T50, [resolved(T95)], RULES) is None
    assert inhibited_by(resolved(T50), [T95], RULES) is None


def test_threshold_compared_as_decimal_not_text() -> None:
    t100 = threshold_alert(threshold="1.0", severity="emergency")
    t9 = threshold_alert(threshold="0.9", severity="critical")
    assert inhibits(DEFAULT_RULE, t100, t9)  # "1.0" > "0.9" numerically
    assert not inhibits(DEFAULT_RULE, t9, t100)


def test_generic_rule_with_equal_labels_and_severity() -> None:
    rule = InhibitRule(
        source=AlertMatch.of(kind="spike", severity="critical"),
        target=AlertMatch.of(kind="spike"),
        equal=("service",),
        higher="severity",
    )
    crit = spike_alert(service="search", severity="critical", window="a")
    warn = spike_alert(service="search", severity="warning", window="b")
    elsewhere = spike_alert(service="chat", severity="warning", window="c")
    assert inhibited_by(warn, [crit], (rule,)) == crit
    assert inhibited_by(elsewhere, [crit], (rule,)) is None
    assert inhibited_by(crit, [crit], (rule,)) is None  # never itself
