"""Routing: first match wins, continue, default receivers, escalations add receivers."""

from __future__ import annotations

from alerting.policy.matchers import AlertMatch
from alerting.policy.routing import GroupParams, Route, route_alert
from tests.unit.alerting.factories import spike_alert, threshold_alert

P = GroupParams(("budget",), 10, 60, 3600)
P2 = GroupParams(("service",), 1, 5, 600)
ROUTES = (
    Route(
        AlertMatch.of(kind="threshold", severity=["critical", "emergency"]),
        ("slack",),
        P,
        continue_=True,
    ),
    Route(AlertMatch.of(kind="threshold"), ("email",), P2),
    Route(AlertMatch.of(kind="threshold"), ("never",), P),  # shadowed by the one above
    Route(AlertMatch.of(min_severity="warning", service="search"), ("search-team",), P2),
)
ESCALATIONS = (Route(AlertMatch.of(severity="emergency"), ("finance", "slack"), P),)


def receivers(alert) -> list[tuple[str, str]]:
    return [(t.receiver, t.via) for t in route_alert(alert, ROUTES, ESCALATIONS, ("console",), P)]


def test_continue_then_first_match_stops() -> None:
    assert receivers(threshold_alert()) == [("slack", "routes[0]"), ("email", "routes[1]")]


def test_non_matching_first_route_falls_through() -> None:
    info = threshold_alert(threshold="0.5", severity="info")
    assert receivers(info) == [("email", "routes[1]")]


def test_escalation_adds_receivers_once() -> None:
    emergency = threshold_alert(threshold="1.0", severity="emergency")
    assert receivers(emergency) == [
        ("slack", "routes[0]"),
        ("email", "routes[1]"),
        ("finance", "escalations[0]"),
    ]


def test_label_match_with_min_severity_and_default() -> None:
    assert receivers(spike_alert(service="search", severity="warning")) == [
        ("search-team", "routes[3]")
    ]
    assert receivers(spike_alert(service="search", severity="info")) == [("console", "default")]
    assert receivers(spike_alert(service="other")) == [("console", "default")]


def test_each_target_carries_its_route_params() -> None:
    targets = route_alert(threshold_alert(), ROUTES, ESCALATIONS, ("console",), P)
    assert [t.params for t in targets] == [P, P2]
