"""Inhibition: a firing source alert mutes matching target alerts (Alertmanager rules).

A rule applies when a *firing* alert matches ``source``, the candidate matches ``target``,
both have the same values for every label in ``equal``, and, when ``higher`` is set, the
source ranks above the target on it: ``higher="severity"`` compares severities, any other
value names a label compared as a decimal number (e.g. ``threshold``: 0.95 > 0.8). An alert
never inhibits itself.

The default rule (``DEFAULT_RULE``): once a higher threshold fires for a budget and period,
lower thresholds of the same budget and period are not sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from alerting.policy.matchers import AlertMatch, alert_value
from schemas.alerts import SEVERITY_RANK, Alert


@dataclass(frozen=True, slots=True)
class InhibitRule:
    source: AlertMatch
    target: AlertMatch
    equal: tuple[str, ...] = ()
    higher: str | None = None
    name: str = ""


DEFAULT_RULE = InhibitRule(
    source=AlertMatch.of(kind="threshold"),
    target=AlertMatch.of(kind="threshold"),
    equal=("budget", "period"),
    higher="threshold",
    name="higher-threshold",
)


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def _ranks_above(source: Alert, target: Alert, higher: str) -> bool:
    if higher == "severity":
        return SEVERITY_RANK[source.severity] > SEVERITY_RANK[target.severity]
    s, t = _decimal(alert_value(source, higher)), _decimal(alert_value(target, higher))
    return s is not None and t is not None and s > t


def inhibits(rule: InhibitRule, source: Alert, target: Alert) -> bool:
    """Whether ``source`` mutes ``target`` under ``rule``."""
    if source.alert_id == target.alert_id or source.status != "firing":
        return False
    if not (rule.source.matches(source) and rule.target.matches(target)):
        return False
    if any(alert_value(source, k) != alert_value(target, k) for k in rule.equal):
        return False
    return rule.higher is None or _ranks_above(source, target, rule.higher)


def inhibited_by(
    target: Alert, active: Iterable[Alert], rules: Iterable[InhibitRule]
) -> Alert | None:
    """The first active alert that inhibits ``target``, or None. Resolved notices are never
    inhibited (they close what was already sent)."""
    if target.status != "firing":
        return None
    rules = tuple(rules)
    for source in active:
        if any(inhibits(rule, source, target) for rule in rules):
            return source
    return None
